//! The Keap-post fast path in a job: once an app's REST opt-out path is proven, a Keap post
//! that carried the contact's addresses is honoured by writing the post's other addresses
//! without reading the contact first (`rules::fast` decides, and judges each answer). A
//! surprise sends the job on to the read-first steps of `job.rs`, the writes made so far
//! kept in its report.

use crate::clock::Now as _;
use keap::{Contact, ContactId, EmailAddress};
use rand::Rng;

use super::job::{JobRun, READ_BACK_SAMPLE, Work, add_pushes};
use crate::error::Result;
use crate::rules::fast::{self, Known, Plan, Verdict};
use crate::rules::{Decision, OwnWrite};
use crate::store::{
    AddressDecision, AuditAction, EventPayload, LedgerOrigin, OptOutApi, PostedAddresses, Proof,
    Rule, Subject, Write, WritePath,
};

impl JobRun<'_> {
    /// Honours the post's contact without reading it when the rules allow; `false` when the
    /// job must read the contact first (nothing written, or a surprise).
    pub(super) async fn try_fast(&self, id: ContactId, work: &mut Work) -> Result<bool> {
        let Some(posted) = self.posted_for(id) else {
            return Ok(false);
        };
        let (source, targets, expect) = match self.fast_plan(id, posted).await? {
            Plan::Write {
                source,
                targets,
                expect,
            } => (source, targets, expect),
            Plan::ReadFirst(why) => {
                tracing::debug!(
                    contact = id.get(),
                    why,
                    "Keap post: reading the contact first"
                );
                return Ok(false);
            }
        };
        let mut written = Vec::new();
        for t in &targets {
            match self.fast_write(id, t, &source, expect).await? {
                Some(a) => written.push(a),
                None => {
                    work.writes += written.len();
                    work.report.addresses.extend(written);
                    return Ok(false);
                }
            }
        }
        work.found += 1;
        work.stop_seen = true;
        work.writes += written.len();
        add_pushes(
            &mut work.report.push,
            std::iter::once(&source).chain(&targets),
        );
        // The post says the person stopped here; the fast path took its word for it.
        let said =
            AddressDecision::found(Some(id), Some(source.clone()), AuditAction::AlreadyStopped);
        work.report.addresses.push(said);
        work.report.addresses.extend(written);
        if !self.reconcile_only {
            self.fan_out(id, std::slice::from_ref(&source)).await?;
        }
        Ok(true)
    }

    /// The addresses Keap's post gave for this contact: only on the job's first run, and only
    /// when every event of the job is a Keap post about the contact.
    fn posted_for(&self, id: ContactId) -> Option<&PostedAddresses> {
        if self.job.attempts != 1 || self.job.subject != Subject::Contact(id) {
            return None;
        }
        let mut posted = None;
        for e in self.events() {
            match &e.payload {
                EventPayload::KeapPost {
                    subject: Subject::Contact(c),
                    addresses,
                } if *c == id => posted = Some(addresses),
                _ => return None,
            }
        }
        posted.filter(|p| !p.is_empty())
    }

    /// What the job knows without Keap, put to `rules::fast::plan`.
    async fn fast_plan(&self, id: ContactId, posted: &PostedAddresses) -> Result<Plan> {
        if !self.path_proven() {
            return Ok(Plan::ReadFirst("the app's REST path is not proven"));
        }
        let s = self.state;
        let keys: Vec<String> = posted.fields().iter().map(|(_, e)| e.key()).collect();
        let index_agrees = self.index_fresh && {
            let mut indexed = s.store.indexed_keys(self.tenant.id, id).await?;
            let mut want = keys.clone();
            indexed.sort();
            want.sort();
            want.dedup();
            indexed == want
        };
        let own_writes = s.store.own_writes(self.tenant.id, &keys).await?;
        let own: Vec<Option<OwnWrite>> = keys.iter().map(|k| own_writes.get(k).copied()).collect();
        Ok(fast::plan(&Known {
            posted: posted.fields(),
            own: &own,
            source_field: s.post_hints.source_field(self.tenant.id),
            written: s.post_hints.written(self.tenant.id),
            index_agrees,
        }))
    }

    /// One write without a read: the ledger intent, the PATCH (read back one time in
    /// [`READ_BACK_SAMPLE`]), and the answer judged. `None`: a surprise (the intent taken back
    /// when the answer shows the address as it was) or an error (the intent kept: the write
    /// may have happened).
    async fn fast_write(
        &self,
        contact: ContactId,
        email: &EmailAddress,
        source: &EmailAddress,
        expect: keap::EmailStatus,
    ) -> Result<Option<AddressDecision>> {
        let s = self.state;
        let intent = s
            .store
            .ledger_intent(
                self.tenant.id,
                &email.key(),
                LedgerOrigin::Propagation,
                Some(source.as_str()),
                self.job.id,
                s.clock.now(),
            )
            .await?;
        let text = format!("optsync: opted out of all email marketing via {source}");
        let trust = !rand::rng().random_ratio(1, READ_BACK_SAMPLE);
        let report = match self
            .client
            .opt_out_via(email, &text, &[keap::Api::Rest], trust)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(contact = contact.get(), email = %email, error = %e, "fast write failed; reading the contact first");
                return Ok(None);
            }
        };
        let answer = report.status_after.filter(|_| report.verified);
        let Verdict::Written(after) = fast::judge(answer, expect) else {
            s.store.ledger_withdraw(intent).await?;
            tracing::warn!(contact = contact.get(), email = %email, answer = ?report.status_after, expected = %expect, "fast write surprised; reading the contact first");
            return Ok(None);
        };
        s.store.ledger_resolve(intent, after, s.clock.now()).await?;
        self.learned_path(Some(keap::Api::Rest)).await?;
        let mut a =
            AddressDecision::found(Some(contact), Some(email.clone()), AuditAction::OptedOut);
        a.after = Some(after);
        a.rule = Some(Rule::Propagation {
            source: source.clone(),
        });
        a.write = Some(Write {
            path: WritePath::Rest,
            proof: if trust && report.calls == 1 {
                Proof::Trusted
            } else {
                Proof::ReadBack
            },
        });
        a.keap_calls = i64::from(report.calls);
        Ok(Some(a))
    }

    /// The app's REST path is proven: learned before this job, unchanged since, and the
    /// app's method lets REST write.
    pub(super) fn path_proven(&self) -> bool {
        self.tenant.opt_out_method != keap::OptOutMethod::XmlRpc
            && self.tenant.opt_out_path == Some(OptOutApi::Rest)
            && self.learned_api() == Some(OptOutApi::Rest)
    }

    /// What a read-first job teaches the fast path: the field of a Keap post's stop source.
    pub(super) fn learn_from_read(&self, contact: &Contact, decision: &Decision) {
        let Some(source) = decision.sources.first() else {
            return;
        };
        let posted = self
            .events()
            .iter()
            .any(|e| matches!(e.payload, EventPayload::KeapPost { .. }));
        let field = contact
            .addresses
            .iter()
            .find(|a| a.email.key() == source.key())
            .map(|a| a.field);
        if let (true, Some(f)) = (posted, field) {
            self.state.post_hints.learn_source_field(self.tenant.id, f);
        }
    }

    /// What a read-first write teaches the fast path: the status a REST write that took left.
    pub(super) fn learn_write(&self, path: WritePath, status: Option<keap::EmailStatus>) {
        if path == WritePath::Rest {
            self.state.post_hints.learn_written(self.tenant.id, status);
        }
    }
}
