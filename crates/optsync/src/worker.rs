//! The worker: claims a job, reads the contact from Keap, decides with the rules, opts out
//! what must be opted out (verified by the client), records every decision, and completes
//! the job — or puts it back with a backoff.

use std::time::Duration;

use keap::{ContactId, EmailAddress, KeapClient, OptOutPath};
use rand::Rng;

use crate::error::{Error, Result};
use crate::rules::{self, Action, AddressView, Reason, Signals};
use crate::state::AppState;
use crate::store::{AuditRow, ClaimedJob, EventRow, LedgerOrigin, NewEvent};

/// What one job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Done {
        job_id: i64,
        writes: usize,
    },
    Retrying {
        job_id: i64,
        error: String,
    },
    Deferred {
        job_id: i64,
        wait: Duration,
    },
    Dead {
        job_id: i64,
        error: String,
    },
    /// The lease ran out while working and another worker took the job over.
    LostLease {
        job_id: i64,
    },
}

#[derive(Clone)]
pub struct Worker {
    state: AppState,
}

fn path_name(p: OptOutPath) -> &'static str {
    match p {
        OptOutPath::Rest => "rest",
        OptOutPath::XmlRpc => "xmlrpc",
        OptOutPath::XmlRpcFallback => "xmlrpc_fallback",
    }
}

/// Everything a job learned, to be recorded when it completes.
struct Work {
    audits: Vec<AuditRow>,
    writes: usize,
}

impl Worker {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Claims and runs one job; `None` when nothing is due.
    pub async fn run_once(&self) -> Result<Option<JobOutcome>> {
        let s = &self.state;
        let now = s.clock.now_ms();
        let lease_ms = s.settings.lease.as_millis() as i64;
        let Some(job) = s.store.claim(now, lease_ms).await? else {
            return Ok(None);
        };
        let lease_until = now + lease_ms;
        tracing::debug!(job = job.id, subject = %job.subject, attempt = job.attempts, "claimed");
        let outcome = match self.execute(&job).await {
            Ok(work) => {
                let done_at = s.clock.now_ms();
                if s.store
                    .complete(job.id, Some(lease_until), done_at, &work.audits)
                    .await?
                {
                    tracing::info!(job = job.id, subject = %job.subject, writes = work.writes, "job done");
                    JobOutcome::Done {
                        job_id: job.id,
                        writes: work.writes,
                    }
                } else {
                    tracing::warn!(
                        job = job.id,
                        "lease ran out before completion; another worker has the job"
                    );
                    JobOutcome::LostLease { job_id: job.id }
                }
            }
            Err(e) => self.fail(&job, e).await?,
        };
        Ok(Some(outcome))
    }

    /// Runs jobs until none is due (tests and the demo drive the queue with this).
    pub async fn drain(&self) -> Result<Vec<JobOutcome>> {
        let mut out = Vec::new();
        while let Some(o) = self.run_once().await? {
            out.push(o);
        }
        Ok(out)
    }

    /// Works until `shutdown` turns true; wakes on new events and polls for jobs other
    /// processes enqueued or whose time came.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.run_once().await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "worker could not reach the queue"),
            }
            let wake = self.state.wake.notified();
            tokio::select! {
                _ = wake => {}
                _ = tokio::time::sleep(self.state.settings.poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn fail(&self, job: &ClaimedJob, e: Error) -> Result<JobOutcome> {
        let s = &self.state;
        let now = s.clock.now_ms();
        let msg = e.to_string();
        if let Error::Keap(k) = &e
            && let Some(wait) = k.retry_after()
        {
            // Waiting for Keap's limits is not a failed attempt.
            tracing::info!(
                job = job.id,
                wait_ms = wait.as_millis() as u64,
                "deferred by Keap's rate limit"
            );
            s.store
                .requeue(
                    job.id,
                    now + wait.as_millis() as i64,
                    false,
                    false,
                    &msg,
                    now,
                )
                .await?;
            return Ok(JobOutcome::Deferred {
                job_id: job.id,
                wait,
            });
        }
        if job.attempts >= s.settings.max_attempts {
            tracing::error!(job = job.id, subject = %job.subject, attempts = job.attempts, error = %msg,
                "job is dead; re-drive it with `optsync retry`");
            s.store.requeue(job.id, now, true, true, &msg, now).await?;
            return Ok(JobOutcome::Dead {
                job_id: job.id,
                error: msg,
            });
        }
        let exp = (job.attempts - 1).clamp(0, 20) as u32;
        let ceiling = s
            .settings
            .retry_base
            .saturating_mul(1 << exp)
            .min(s.settings.retry_cap);
        // ±20 % jitter so that jobs failed together do not retry together.
        let factor = rand::rng().random_range(0.8..1.2);
        let wait = ceiling.mul_f64(factor);
        tracing::warn!(job = job.id, subject = %job.subject, attempt = job.attempts, retry_in_ms = wait.as_millis() as u64, error = %msg, "job failed; will retry");
        s.store
            .requeue(
                job.id,
                now + wait.as_millis() as i64,
                false,
                true,
                &msg,
                now,
            )
            .await?;
        Ok(JobOutcome::Retrying {
            job_id: job.id,
            error: msg,
        })
    }

    async fn execute(&self, job: &ClaimedJob) -> Result<Work> {
        let s = &self.state;
        let mut work = Work {
            audits: Vec::new(),
            writes: 0,
        };
        let Some(tenant) = s.store.tenant(job.tenant_id).await? else {
            // The tenant was removed while the job waited: nothing to do for it.
            return Ok(work);
        };
        let client = s.tenants.client(&tenant)?.scoped();
        let events = s.store.job_events(job.id).await?;
        let received_at = events
            .iter()
            .map(|e| e.received_at)
            .min()
            .unwrap_or_else(|| s.clock.now_ms());
        let event_ids = events
            .iter()
            .map(|e| e.id.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let signals = signals(&events);
        let audit = |contact: Option<i64>, email: &str, action: &str| AuditRow {
            tenant_id: tenant.id,
            job_id: Some(job.id),
            event_ids: event_ids.clone(),
            contact_id: contact,
            email: email.to_string(),
            status_before: None,
            status_after: None,
            action: action.to_string(),
            path: None,
            keap_calls: 0,
            received_at,
            honoured_at: 0,
            detail: None,
        };

        let contacts: Vec<ContactId> = match job.subject.split_once(':') {
            Some(("contact", id)) => vec![
                id.parse()
                    .map_err(|_| Error::Invalid(format!("bad subject {}", job.subject)))?,
            ],
            Some(("email", e)) => {
                let email =
                    EmailAddress::parse(e).map_err(|err| Error::Invalid(err.to_string()))?;
                let holders = client.contacts_with_address(&email).await?;
                if holders.is_empty() {
                    let mut a = audit(None, email.as_str(), "no_holder");
                    a.detail = Some("no contact in Keap holds this address".into());
                    work.audits.push(a);
                }
                holders
            }
            _ => return Err(Error::Invalid(format!("bad subject {}", job.subject))),
        };

        // A job queued by a reconcile sweep carries what the sweep saw; on its first run that
        // is as good as a fresh read (the opt-out itself is verified by reading back).
        let reconcile_only = !events.is_empty() && events.iter().all(|e| e.source == "reconcile");
        for id in contacts {
            let before_calls = client.calls_made();
            let snapshot = if reconcile_only && job.attempts == 1 {
                events.iter().rev().find_map(|e| {
                    e.snapshot
                        .as_deref()
                        .and_then(|s| crate::reconcile::snapshot_contact(s, id))
                })
            } else {
                None
            };
            let fetched = match snapshot {
                Some(c) => Ok(c),
                None => client.contact(id).await,
            };
            let contact = match fetched {
                Ok(c) => c,
                Err(keap::Error::NotFound(_)) => {
                    let mut a = audit(Some(id.get()), "", "contact_not_found");
                    a.detail = Some("Keap has no such contact".into());
                    work.audits.push(a);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let keys: Vec<String> = contact.addresses.iter().map(|a| a.email.key()).collect();
            let own = s.store.own_writes(tenant.id, &keys).await?;
            let views: Vec<AddressView> = contact
                .addresses
                .iter()
                .map(|a| AddressView {
                    email: a.email.clone(),
                    status: a.status,
                    own_write: own.get(&a.email.key()).copied(),
                })
                .collect();
            let decision = rules::decide(&views, &signals);
            // The contact read is charged to the first address's row.
            let mut read_calls = (client.calls_made() - before_calls) as i64;
            for (view, (email, action)) in views.iter().zip(&decision.actions) {
                let mut a = audit(Some(id.get()), email.as_str(), "");
                a.status_before = Some(view.status.type_name().to_string());
                a.status_after = a.status_before.clone();
                match action {
                    Action::OptOut(reason) => {
                        let (origin, source, text) = match reason {
                            Reason::Propagation { source } => (
                                LedgerOrigin::Propagation,
                                Some(source.as_str().to_string()),
                                format!("optsync: opted out of all email marketing via {source}"),
                            ),
                            Reason::Bounce => (
                                LedgerOrigin::Bounce,
                                None,
                                "optsync: hard bounce reported by the sending provider".to_string(),
                            ),
                        };
                        let intent = s
                            .store
                            .ledger_intent(
                                tenant.id,
                                &email.key(),
                                origin,
                                source.as_deref(),
                                job.id,
                                s.clock.now_ms(),
                            )
                            .await?;
                        let report = client.opt_out(email, &text).await?;
                        if let Some(after) = report.status_after {
                            s.store
                                .ledger_resolve(intent, after, s.clock.now_ms())
                                .await?;
                        }
                        if !report.verified {
                            return Err(Error::Invalid(format!(
                                "{email} is still {:?} after the opt-out ({:?})",
                                report.status_after, report.path
                            )));
                        }
                        tracing::info!(tenant = %tenant.app, contact = id.get(), email = %email,
                            status = ?report.status_after, path = path_name(report.path), "opted out");
                        a.action = "opted_out".into();
                        a.status_after = report.status_after.map(|s| s.type_name().to_string());
                        a.path = Some(path_name(report.path).into());
                        a.keap_calls = i64::from(report.calls);
                        a.detail = source
                            .map(|s| format!("source {s}"))
                            .or(Some("hard bounce".into()));
                        work.writes += 1;
                    }
                    Action::AlreadyStopped => a.action = "already_stopped".into(),
                    Action::Terminal => a.action = "terminal".into(),
                    Action::NotTargeted => a.action = "not_targeted".into(),
                }
                a.keap_calls += std::mem::take(&mut read_calls);
                work.audits.push(a);
            }
            // A sweep has already looked at every holder of its sources.
            if !reconcile_only {
                self.fan_out(&client, &tenant.id, id, &decision.sources, job)
                    .await?;
            }
        }
        let done = s.clock.now_ms();
        for a in &mut work.audits {
            a.honoured_at = done;
        }
        Ok(work)
    }

    /// A stop source shared with other contacts makes their addresses targets too: queue a
    /// job for each other holder, once per source.
    async fn fan_out(
        &self,
        client: &KeapClient,
        tenant_id: &i64,
        contact: ContactId,
        sources: &[EmailAddress],
        job: &ClaimedJob,
    ) -> Result<()> {
        let s = &self.state;
        // A job about an address has already worked on every contact holding it.
        let covered = job.subject.strip_prefix("email:");
        for source in sources {
            if covered == Some(source.key().as_str())
                || s.store.is_fanned_out(*tenant_id, &source.key()).await?
            {
                continue;
            }
            let holders = client.contacts_with_address(source).await?;
            for other in holders.into_iter().filter(|h| *h != contact) {
                let ev = NewEvent {
                    tenant_id: *tenant_id,
                    source: "fanout".into(),
                    kind: "shared_address".into(),
                    contact_id: Some(other.get()),
                    email: Some(source.as_str().to_string()),
                    provider_event_id: None,
                    body_digest: format!("job:{}", job.id),
                    received_at: s.clock.now_ms(),
                    snapshot: None,
                };
                s.store
                    .accept(&ev, &format!("contact:{}", other.get()))
                    .await?;
                s.wake.notify_waiters();
            }
            s.store
                .mark_fanned_out(*tenant_id, &source.key(), s.clock.now_ms())
                .await?;
        }
        Ok(())
    }
}

/// What the job's events say beyond "look at this contact".
fn signals(events: &[EventRow]) -> Signals {
    let mut sig = Signals::default();
    for e in events {
        let Some(email) = e.email.as_deref().and_then(|x| EmailAddress::parse(x).ok()) else {
            continue;
        };
        match e.kind.as_str() {
            "unsubscribe" | "complaint" => sig.stops.push(email),
            "hard_bounce" => sig.hard_bounces.push(email),
            _ => {}
        }
    }
    sig
}
