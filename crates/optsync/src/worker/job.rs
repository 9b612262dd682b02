//! One claimed job's steps: resolve the subject to contacts, load each contact, decide with
//! the rules, honour each address that must be opted out (verified by the client), and say
//! per address what was decided and why, in the job's [`JobReport`].

use crate::clock::Millis;
use crate::clock::Now as _;
use keap::{Contact, ContactId, EmailAddress, KeapClient, OptOutMethod};
use rand::Rng;

use super::paths::LearnedPath;
use crate::error::{Error, Result};
use crate::rules::{self, Action, AddressView, Decision, Reason, Signals};
use crate::state::AppState;
use crate::store::{
    AddressDecision, AuditAction, ClaimedJob, EventKind, EventPayload, EventRow, EventSource,
    JobReport, LedgerOrigin, OptOutApi, Proof, Rule, Subject, TenantRow, Write, WritePath,
};

/// Once an app's REST path is proven, one write in this many is still read back.
pub(super) const READ_BACK_SAMPLE: u32 = 20;

/// Longest a job's Keap call waits for room in its credential's pacer; past it the job is
/// deferred to when there is room and the worker moves on (to another tenant's work).
const PACER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A sweep's picture of a contact drives writes only while it is this fresh (ms); older, the
/// contact is read again.
const SNAPSHOT_MAX_AGE_MS: i64 = 5 * 60 * 1000;

/// Everything a job learned, to be recorded when it completes.
pub(super) struct Work {
    pub report: JobReport,
    pub writes: usize,
    /// Contacts Keap had (none: the subject names nobody Keap knows).
    pub found: usize,
    /// Some contact showed a stop status, or the job's events asked for a write.
    pub stop_seen: bool,
    /// Some event is Keap's post.
    pub keap_post: bool,
    /// Each event's source and arrival (epoch ms), for the time-to-honour histogram.
    pub received: Vec<(EventSource, Millis)>,
}

/// One claimed job's context: its tenant, Keap client and events.
pub(super) struct JobRun<'a> {
    pub state: &'a AppState,
    pub job: &'a ClaimedJob,
    pub tenant: TenantRow,
    pub client: KeapClient,
    events: Vec<EventRow>,
    signals: Signals,
    /// Every event came from a reconcile sweep (which has looked at every holder already).
    pub reconcile_only: bool,
    received_at: Millis,
    learned: LearnedPath,
    /// The local address index is recent enough to find other holders of an address.
    pub index_fresh: bool,
}

impl Work {
    /// Nothing found or decided yet.
    pub(super) fn new(state: &AppState, job: &ClaimedJob) -> Self {
        Self {
            report: JobReport {
                tenant_id: job.tenant_id,
                job_id: job.id,
                event_ids: Vec::new(),
                received_at: state.clock.now(),
                addresses: Vec::new(),
                push: Vec::new(),
            },
            writes: 0,
            found: 0,
            stop_seen: false,
            keap_post: false,
            received: Vec::new(),
        }
    }
}

/// Runs the job's steps into `work`: what it found and decided. The pushes a person's
/// opt-out asks for are in `work` before any Keap write, so a job that ends blocked still
/// queues them.
pub(super) async fn execute(state: &AppState, job: &ClaimedJob, work: &mut Work) -> Result<()> {
    let Some(run) = JobRun::start(state, job).await? else {
        // The tenant was removed while the job waited: nothing to do for it.
        return Ok(());
    };
    run.describe(work);
    for id in run.resolve_subject(work).await? {
        if run.try_fast(id, work).await? {
            continue;
        }
        let calls_before = run.client.calls_made();
        let Some(contact) = run.load_contact(id, work).await? else {
            continue;
        };
        work.found += 1;
        let read_calls = (run.client.calls_made() - calls_before) as i64;
        let (views, decision) = run.decide(&contact).await?;
        run.learn_from_read(&contact, &decision);
        work.stop_seen |= contact.addresses.iter().any(|a| a.status.is_stop())
            || decision.writes().next().is_some();
        add_pushes(&mut work.report.push, person_stopped(&decision));
        run.honour(&contact, &views, &decision, read_calls, work)
            .await?;
        if !run.reconcile_only {
            run.fan_out(id, &decision.sources).await?;
        }
    }
    if work.found == 0 {
        // A provider's unsubscribe or complaint for an address no contact holds is still the
        // person asking to stop.
        add_pushes(&mut work.report.push, run.signals.stops.iter());
    }
    Ok(())
}

/// The addresses of a contact that a person's opt-out covers: none when nobody asked to stop
/// (a bounce or a suppression echo alone), else its stop sources and every address opted out
/// or already stopped because of them.
fn person_stopped(decision: &Decision) -> impl Iterator<Item = &EmailAddress> {
    let asked = !decision.sources.is_empty();
    let covered = decision.actions.iter().filter_map(move |(email, action)| {
        let by_person = matches!(
            action,
            Action::AlreadyStopped | Action::OptOut(Reason::Propagation { .. })
        );
        (asked && by_person).then_some(email)
    });
    decision.sources.iter().chain(covered)
}

/// Adds addresses to the push list, each once.
pub(super) fn add_pushes<'e>(
    list: &mut Vec<EmailAddress>,
    more: impl Iterator<Item = &'e EmailAddress>,
) {
    for e in more {
        if !list.iter().any(|p| p.key() == e.key()) {
            list.push(e.clone());
        }
    }
}

impl<'a> JobRun<'a> {
    async fn start(state: &'a AppState, job: &'a ClaimedJob) -> Result<Option<Self>> {
        let Some(tenant) = state.store.tenant(job.tenant_id).await? else {
            return Ok(None);
        };
        let client = state
            .clients
            .client(&tenant)?
            .scoped_for(keap::CallPolicy::job(PACER_WAIT));
        let events = state.store.job_events(job.id).await?;
        let received_at = events
            .iter()
            .map(|e| e.received_at)
            .min()
            .unwrap_or_else(|| state.clock.now());
        let index_fresh = state
            .store
            .sweep(tenant.id)
            .await?
            .and_then(|s| s.last_full_at)
            .is_some_and(|t| state.clock.now() - t <= crate::reconcile::INDEX_FRESH_MS);
        Ok(Some(Self {
            state,
            job,
            client,
            index_fresh,
            learned: LearnedPath::new(tenant.opt_out_path),
            signals: signals(&events),
            reconcile_only: !events.is_empty()
                && events
                    .iter()
                    .all(|e| e.payload.source() == EventSource::Reconcile),
            events,
            received_at,
            tenant,
        }))
    }

    /// The job's events.
    pub(super) fn events(&self) -> &[EventRow] {
        &self.events
    }

    /// The app's working opt-out path as this job knows it.
    pub(super) fn learned_api(&self) -> Option<OptOutApi> {
        self.learned.get()
    }

    /// What the job serves, into its report.
    fn describe(&self, work: &mut Work) {
        work.report.tenant_id = self.tenant.id;
        work.report.received_at = self.received_at;
        work.report.event_ids = self.events.iter().map(|e| e.id).collect();
        work.received = self
            .events
            .iter()
            .map(|e| (e.payload.source(), e.received_at))
            .collect();
        work.keap_post = self
            .events
            .iter()
            .any(|e| matches!(e.payload, EventPayload::KeapPost { .. }));
        work.stop_seen = !self.signals.stops.is_empty() || !self.signals.hard_bounces.is_empty();
    }

    /// The contacts the job is about: its contact, or every contact holding its address.
    async fn resolve_subject(&self, work: &mut Work) -> Result<Vec<ContactId>> {
        match &self.job.subject {
            Subject::Contact(id) => Ok(vec![*id]),
            Subject::Address(email) => {
                let holders = self.client.contacts_with_address(email).await?;
                if holders.is_empty() {
                    work.report.addresses.push(AddressDecision::found(
                        None,
                        Some(email.clone()),
                        AuditAction::NoHolder,
                    ));
                }
                Ok(holders)
            }
            // The worker runs push jobs through their own step, never here.
            Subject::Push { .. } => Err(Error::CorruptState(format!(
                "push job {} run as an opt-out",
                self.job.id
            ))),
        }
    }

    /// The contact as Keap has it, or as the sweep that queued the job saw it (on its first
    /// run and within minutes that is as good as a fresh read: the opt-out itself is verified
    /// by reading back; a snapshot left waiting longer is stale and read again).
    /// `None` (recorded) when Keap has no such contact.
    async fn load_contact(&self, id: ContactId, work: &mut Work) -> Result<Option<Contact>> {
        let fresh = self.state.clock.now() - self.received_at <= SNAPSHOT_MAX_AGE_MS;
        let snapshot = (self.reconcile_only && self.job.attempts == 1 && fresh)
            .then(|| {
                self.events.iter().rev().find_map(|e| match &e.payload {
                    EventPayload::Discrepancy {
                        contact,
                        snapshot: Some(s),
                    } if *contact == id => Some(s.contact(id)),
                    _ => None,
                })
            })
            .flatten();
        if let Some(c) = snapshot {
            return Ok(Some(c));
        }
        match self.client.contact(id).await {
            Ok(c) => {
                // Keep the index as current as the reads: fan-out relies on it.
                if self.index_fresh {
                    self.state.store.index_contact(self.tenant.id, &c).await?;
                }
                Ok(Some(c))
            }
            Err(keap::Error::NotFound(_)) => {
                work.report.addresses.push(AddressDecision::found(
                    Some(id),
                    None,
                    AuditAction::ContactNotFound,
                ));
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The rules applied to the contact as it is, knowing which statuses are our own writes.
    async fn decide(&self, contact: &Contact) -> Result<(Vec<AddressView>, Decision)> {
        let keys: Vec<String> = contact.addresses.iter().map(|a| a.email.key()).collect();
        let own = self.state.store.own_writes(self.tenant.id, &keys).await?;
        let views: Vec<AddressView> = contact
            .addresses
            .iter()
            .map(|a| AddressView {
                email: a.email.clone(),
                status: a.status,
                own_write: own.get(&a.email.key()).copied(),
            })
            .collect();
        let decision = rules::decide(&views, &self.signals);
        Ok((views, decision))
    }

    /// Carries out the decision for each address, one decision each in the report; the
    /// contact read's calls are charged to the first address.
    async fn honour(
        &self,
        contact: &Contact,
        views: &[AddressView],
        decision: &Decision,
        mut read_calls: i64,
        work: &mut Work,
    ) -> Result<()> {
        for (view, (email, action)) in views.iter().zip(&decision.actions) {
            let mut a = AddressDecision::found(
                Some(contact.id),
                Some(email.clone()),
                AuditAction::NotTargeted,
            );
            a.before = Some(view.status);
            a.after = Some(view.status);
            match action {
                Action::OptOut(reason) => {
                    if let Err(e) = self.opt_out(contact.id, email, reason, &mut a).await {
                        return Err(still_mailable(contact, decision, e));
                    }
                    work.writes += 1;
                }
                Action::AlreadyStopped => a.action = AuditAction::AlreadyStopped,
                Action::Terminal => a.action = AuditAction::Terminal,
                Action::NotTargeted => {}
            }
            a.keap_calls += std::mem::take(&mut read_calls);
            work.report.addresses.push(a);
        }
        Ok(())
    }

    /// Opts one address out: the ledger intent first (so a crash mid-write still knows the
    /// status is ours), the verified write, then the status Keap reported.
    async fn opt_out(
        &self,
        contact: ContactId,
        email: &EmailAddress,
        reason: &Reason,
        a: &mut AddressDecision,
    ) -> Result<()> {
        let s = self.state;
        let (origin, rule, text) = match reason {
            Reason::Propagation { source } => (
                LedgerOrigin::Propagation,
                Rule::Propagation {
                    source: source.clone(),
                },
                format!("optsync: opted out of all email marketing via {source}"),
            ),
            Reason::Bounce => (
                LedgerOrigin::Bounce,
                Rule::Bounce,
                "optsync: hard bounce reported by the sending provider".to_string(),
            ),
        };
        let source = match &rule {
            Rule::Propagation { source } => Some(source.as_str()),
            Rule::Bounce => None,
        };
        let now = s.clock.now();
        let intent = s
            .store
            .ledger_intent(
                self.tenant.id,
                &email.key(),
                origin,
                source,
                self.job.id,
                now,
            )
            .await?;
        let order = self.write_order();
        let trust = self.trust_answer();
        let report = self.client.opt_out_via(email, &text, &order, trust).await?;
        if let Some(after) = report.status_after {
            s.store.ledger_resolve(intent, after, s.clock.now()).await?;
        }
        let path = WritePath::from(report.path);
        if !report.verified {
            let said: Vec<String> = report.attempts.iter().map(|a| a.to_string()).collect();
            return Err(Error::NoOptOutPath(said.join("; ")));
        }
        self.learned_path(report.attempts.last().map(|a| a.api))
            .await?;
        self.learn_write(path, report.status_after);
        tracing::info!(contact = contact.get(), email = %email, status = ?report.status_after, %path, "opted out");
        // A trusted REST write that took at once made one call: no read-back.
        let trusted = trust && path == WritePath::Rest && report.calls == 1;
        a.action = AuditAction::OptedOut;
        a.after = report.status_after;
        a.rule = Some(rule);
        a.write = Some(Write {
            path,
            proof: if trusted {
                Proof::Trusted
            } else {
                Proof::ReadBack
            },
        });
        a.keap_calls = i64::from(report.calls);
        Ok(())
    }

    /// The write paths to try, in order: the tenant's method, and for `auto` the path last
    /// learned first.
    fn write_order(&self) -> Vec<keap::Api> {
        match self.tenant.opt_out_method {
            OptOutMethod::Rest => vec![keap::Api::Rest],
            OptOutMethod::XmlRpc => vec![keap::Api::XmlRpc],
            OptOutMethod::Auto => self.learned.auto_order(),
        }
    }

    /// Whether to take the REST write's answer as proof: only for an app whose REST path
    /// read-backs have proven (learned before this job, unchanged since), and even then one
    /// write in [`READ_BACK_SAMPLE`] is read back, so a path that starts lying is caught.
    fn trust_answer(&self) -> bool {
        let proven = self.tenant.opt_out_path == Some(OptOutApi::Rest)
            && self.learned.get() == Some(OptOutApi::Rest);
        proven && !rand::rng().random_ratio(1, READ_BACK_SAMPLE)
    }

    /// Records the path that just worked (a read-back proved it), for this job and the app.
    pub(super) async fn learned_path(&self, api: Option<keap::Api>) -> Result<()> {
        let Some(api) = api.map(OptOutApi::from) else {
            return Ok(());
        };
        if self.learned.learn(api) {
            tracing::info!(path = %api, "learned the app's working opt-out path");
        }
        self.state
            .store
            .record_opt_out_path(self.tenant.id, api, self.state.clock.now())
            .await
    }
}

/// What the job's events say beyond "look at this contact".
fn signals(events: &[EventRow]) -> Signals {
    let mut sig = Signals::default();
    for e in events {
        let Some(email) = e.payload.address().cloned() else {
            continue;
        };
        match e.payload.kind() {
            EventKind::Unsubscribe | EventKind::Complaint => sig.stops.push(email),
            EventKind::HardBounce | EventKind::Suppressed => sig.hard_bounces.push(email),
            _ => {}
        }
    }
    sig
}

/// A blocking error, reworded to name the contact and the addresses it leaves mailable.
fn still_mailable(contact: &Contact, decision: &Decision, e: Error) -> Error {
    let Error::NoOptOutPath(why) = e else {
        return e;
    };
    let mailable: Vec<&str> = decision.writes().map(|(email, _)| email.as_str()).collect();
    Error::NoOptOutPath(format!(
        "contact {}: {} still mailable; {why}",
        contact.id,
        mailable.join(", ")
    ))
}
