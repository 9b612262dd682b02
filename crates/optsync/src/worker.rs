//! The worker: claims a job and runs it in steps — resolve the subject to contacts, load each
//! contact, decide with the rules, honour each address that must be opted out (verified by
//! the client), record every decision — then completes the job or puts it back with a
//! backoff.

use crate::logfmt::one_line;
use std::time::Duration;

use std::sync::Mutex;

use keap::{Contact, ContactId, EmailAddress, KeapClient, OptOutMethod};
use rand::Rng;
use tracing::Instrument as _;

use crate::error::{Error, Result};
use crate::rules::{self, Action, AddressView, Decision, Reason, Signals};
use crate::state::AppState;
use crate::store::{
    AuditAction, AuditRow, ClaimedJob, EventKind, EventRow, EventSource, JobState, LedgerOrigin,
    NewEvent, OptOutApi, Requeue, Subject, TenantRow, WritePath,
};

/// What one job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Done {
        job_id: i64,
        writes: usize,
    },
    /// No opt-out path works for the app: tried again after the blocked-retry interval.
    Blocked {
        job_id: i64,
        reason: String,
    },
    /// Keap has no such contact (or no contact holds the address): nothing to honour.
    NotFound {
        job_id: i64,
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

impl JobOutcome {
    /// The outcome's name in metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Done { .. } => "done",
            Self::Blocked { .. } => "blocked",
            Self::NotFound { .. } => "not_found",
            Self::Retrying { .. } => "retrying",
            Self::Deferred { .. } => "deferred",
            Self::Dead { .. } => "dead",
            Self::LostLease { .. } => "lost_lease",
        }
    }
}

#[derive(Clone)]
pub struct Worker {
    state: AppState,
}

/// Once an app's REST path is proven, one write in this many is still read back.
const READ_BACK_SAMPLE: u32 = 20;

/// Longest a job's Keap call waits for room in its credential's pacer; past it the job is
/// deferred to when there is room and the worker moves on (to another tenant's work).
const PACER_WAIT: Duration = Duration::from_secs(2);

/// A sweep's picture of a contact drives writes only while it is this fresh (ms); older, the
/// contact is read again.
const SNAPSHOT_MAX_AGE_MS: i64 = 5 * 60 * 1000;

/// Everything a job learned, to be recorded when it completes.
struct Work {
    audits: Vec<AuditRow>,
    writes: usize,
    /// Contacts Keap had (none: the subject names nobody Keap knows).
    found: usize,
    /// Each event's source and arrival (epoch ms), for the time-to-honour histogram.
    received: Vec<(EventSource, i64)>,
}

/// One claimed job's context: its tenant, Keap client and events.
struct JobRun<'a> {
    state: &'a AppState,
    job: &'a ClaimedJob,
    tenant: TenantRow,
    client: KeapClient,
    events: Vec<EventRow>,
    signals: Signals,
    /// Every event came from a reconcile sweep (which has looked at every holder already).
    reconcile_only: bool,
    received_at: i64,
    event_ids: String,
    /// The app's opt-out path as last learned, updated as this job learns.
    learned: Mutex<Option<OptOutApi>>,
    /// The local address index is recent enough to find other holders of an address.
    index_fresh: bool,
}

impl Worker {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Claims and runs one job; `None` when nothing is due.
    pub async fn run_once(&self) -> Result<Option<JobOutcome>> {
        let s = &self.state;
        let now = s.clock.epoch_ms();
        let lease_ms = s.settings.lease.as_millis() as i64;
        let per_tenant = s.settings.tenant_workers as i64;
        let Some(job) = s.store.claim(now, lease_ms, per_tenant).await? else {
            return Ok(None);
        };
        let span = tracing::info_span!("job", job = job.id, tenant = job.tenant_id, subject = %job.subject);
        let started = std::time::Instant::now();
        let outcome = self.run_claimed(&job).instrument(span).await?;
        metrics::histogram!(crate::telemetry::JOB_DURATION).record(started.elapsed());
        metrics::counter!(crate::telemetry::JOBS_RUN, "outcome" => outcome.name()).increment(1);
        Ok(Some(outcome))
    }

    async fn run_claimed(&self, job: &ClaimedJob) -> Result<JobOutcome> {
        let s = &self.state;
        tracing::debug!(attempt = job.attempts, "claimed");
        crate::current_job::holding(job.id);
        #[cfg(feature = "test-hooks")]
        if let Some(hook) = &s.before_job {
            hook(job.id);
        }
        let work = match self.execute(job).await {
            Ok(work) => work,
            Err(e) => return self.fail(job, e).await,
        };
        let done_at = s.clock.epoch_ms();
        let outcome = match work.found {
            0 => JobState::NotFound,
            _ => JobState::Done,
        };
        if s.store
            .complete(
                job.id,
                Some(job.lease_until),
                done_at,
                outcome,
                &work.audits,
            )
            .await?
        {
            for (source, received_at) in &work.received {
                let secs = (done_at - received_at).max(0) as f64 / 1000.0;
                metrics::histogram!(crate::telemetry::TIME_TO_HONOUR, "source" => source.to_string())
                    .record(secs);
            }
            if outcome == JobState::NotFound {
                tracing::warn!("job done: Keap has no such contact; nothing to honour");
                return Ok(JobOutcome::NotFound { job_id: job.id });
            }
            tracing::info!(writes = work.writes, "job done");
            Ok(JobOutcome::Done {
                job_id: job.id,
                writes: work.writes,
            })
        } else {
            tracing::warn!("lease ran out before completion; another worker has the job");
            Ok(JobOutcome::LostLease { job_id: job.id })
        }
    }

    /// Runs jobs until none is due (tests and the CLI drive the queue with this).
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
            // Registered before the claim, so a job stored while the claim runs still wakes
            // this worker instead of waiting for the next poll.
            let wake = self.state.wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            match self.run_once().await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %one_line(&e), "worker could not reach the queue")
                }
            }
            tokio::select! {
                _ = wake => {}
                _ = tokio::time::sleep(self.state.settings.poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Puts a failed job back: deferred for Keap's rate limit (not an attempt), retried with
    /// backoff, or buried when its attempts are spent.
    async fn fail(&self, job: &ClaimedJob, e: Error) -> Result<JobOutcome> {
        let s = &self.state;
        let now = s.clock.epoch_ms();
        let msg = e.to_string();
        if is_blocking(&e) {
            return self.block(job, msg, now).await;
        }
        if let Error::Keap(k) = &e
            && let Some(wait) = k.retry_after()
        {
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "deferred by Keap's rate limit"
            );
            let at = now + wait.as_millis() as i64;
            s.store
                .requeue(job.id, Requeue::Defer(at), &msg, now)
                .await?;
            // The credential has no room: the tenant's other jobs wait too, without a
            // worker claiming each in turn to find that out.
            s.store.pace_tenant(job.tenant_id, at).await?;
            return Ok(JobOutcome::Deferred {
                job_id: job.id,
                wait,
            });
        }
        let age = Duration::from_millis((now - job.created_at).max(0) as u64);
        if job.attempts >= s.settings.max_attempts && age >= s.settings.bury_after {
            tracing::error!(attempts = job.attempts, error = %one_line(&msg),
                "job is dead; re-drive it with `optsync retry`");
            s.store.requeue(job.id, Requeue::Bury, &msg, now).await?;
            return Ok(JobOutcome::Dead {
                job_id: job.id,
                error: msg,
            });
        }
        let wait = self.backoff(job.attempts);
        tracing::warn!(attempt = job.attempts, retry_in_ms = wait.as_millis() as u64, error = %one_line(&msg),
            "job failed; will retry");
        let at = now + wait.as_millis() as i64;
        s.store
            .requeue(job.id, Requeue::Retry(at), &msg, now)
            .await?;
        Ok(JobOutcome::Retrying {
            job_id: job.id,
            error: msg,
        })
    }

    /// No path can opt the addresses out: blocked, not an attempt, tried again on schedule.
    /// Said loudly once per job; quietly while it stays blocked.
    async fn block(&self, job: &ClaimedJob, reason: String, now: i64) -> Result<JobOutcome> {
        let s = &self.state;
        let at = now + s.settings.blocked_retry.as_millis() as i64;
        if job.blocked_since.is_none() {
            tracing::error!(reason = %one_line(&reason), retry_in_s = s.settings.blocked_retry.as_secs(),
                "job BLOCKED: no opt-out path works for this app; these addresses can still be mailed (see `optsync doctor`)");
        } else {
            tracing::info!(reason = %one_line(&reason), "job still blocked");
        }
        s.store
            .requeue(job.id, Requeue::Block(at), &reason, now)
            .await?;
        Ok(JobOutcome::Blocked {
            job_id: job.id,
            reason,
        })
    }

    /// Exponential in the attempts, capped, with ±20 % jitter so that jobs failed together
    /// do not retry together.
    fn backoff(&self, attempts: i64) -> Duration {
        let s = &self.state.settings;
        let exp = (attempts - 1).clamp(0, 20) as u32;
        let ceiling = s.retry_base.saturating_mul(1 << exp).min(s.retry_cap);
        ceiling.mul_f64(rand::rng().random_range(0.8..1.2))
    }

    async fn execute(&self, job: &ClaimedJob) -> Result<Work> {
        let mut work = Work {
            audits: Vec::new(),
            writes: 0,
            found: 0,
            received: Vec::new(),
        };
        let Some(run) = JobRun::start(&self.state, job).await? else {
            // The tenant was removed while the job waited: nothing to do for it.
            return Ok(work);
        };
        work.received = run
            .events
            .iter()
            .map(|e| (e.source, e.received_at))
            .collect();
        for id in run.resolve_subject(&mut work).await? {
            let calls_before = run.client.calls_made();
            let Some(contact) = run.load_contact(id, &mut work).await? else {
                continue;
            };
            work.found += 1;
            let read_calls = (run.client.calls_made() - calls_before) as i64;
            let (views, decision) = run.decide(&contact).await?;
            run.honour(&contact, &views, &decision, read_calls, &mut work)
                .await?;
            if !run.reconcile_only {
                run.fan_out(id, &decision.sources).await?;
            }
        }
        let done = self.state.clock.epoch_ms();
        for a in &mut work.audits {
            a.honoured_at = done;
        }
        Ok(work)
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
            .unwrap_or_else(|| state.clock.epoch_ms());
        let event_ids = events
            .iter()
            .map(|e| e.id.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let index_fresh = state
            .store
            .sweep(tenant.id)
            .await?
            .and_then(|s| s.last_full_at)
            .is_some_and(|t| state.clock.epoch_ms() - t <= crate::reconcile::INDEX_FRESH_MS);
        Ok(Some(Self {
            state,
            job,
            client,
            index_fresh,
            learned: Mutex::new(tenant.opt_out_path),
            signals: signals(&events),
            reconcile_only: !events.is_empty()
                && events.iter().all(|e| e.source == EventSource::Reconcile),
            events,
            received_at,
            event_ids,
            tenant,
        }))
    }

    fn audit(&self, contact: Option<ContactId>, email: &str, action: AuditAction) -> AuditRow {
        AuditRow {
            tenant_id: self.tenant.id,
            job_id: Some(self.job.id),
            event_ids: self.event_ids.clone(),
            contact_id: contact.map(ContactId::get),
            email: email.to_string(),
            status_before: None,
            status_after: None,
            action,
            path: None,
            keap_calls: 0,
            received_at: self.received_at,
            honoured_at: 0,
            detail: None,
        }
    }

    /// The contacts the job is about: its contact, or every contact holding its address.
    async fn resolve_subject(&self, work: &mut Work) -> Result<Vec<ContactId>> {
        match &self.job.subject {
            Subject::Contact(id) => Ok(vec![*id]),
            Subject::Address(email) => {
                let holders = self.client.contacts_with_address(email).await?;
                if holders.is_empty() {
                    let mut a = self.audit(None, email.as_str(), AuditAction::NoHolder);
                    a.detail = Some("no contact in Keap holds this address".into());
                    work.audits.push(a);
                }
                Ok(holders)
            }
        }
    }

    /// The contact as Keap has it, or as the sweep that queued the job saw it (on its first
    /// run and within minutes that is as good as a fresh read: the opt-out itself is verified
    /// by reading back; a snapshot left waiting longer is stale and read again).
    /// `None` (recorded) when Keap has no such contact.
    async fn load_contact(&self, id: ContactId, work: &mut Work) -> Result<Option<Contact>> {
        let fresh = self.state.clock.epoch_ms() - self.received_at <= SNAPSHOT_MAX_AGE_MS;
        let snapshot = (self.reconcile_only && self.job.attempts == 1 && fresh)
            .then(|| {
                self.events.iter().rev().find_map(|e| {
                    e.snapshot
                        .as_deref()
                        .and_then(|s| crate::reconcile::snapshot_contact(s, id))
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
                let mut a = self.audit(Some(id), "", AuditAction::ContactNotFound);
                a.detail = Some("Keap has no such contact".into());
                work.audits.push(a);
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

    /// Carries out the decision for each address, one audit row each; the contact read's
    /// calls are charged to the first address's row.
    async fn honour(
        &self,
        contact: &Contact,
        views: &[AddressView],
        decision: &Decision,
        mut read_calls: i64,
        work: &mut Work,
    ) -> Result<()> {
        for (view, (email, action)) in views.iter().zip(&decision.actions) {
            let mut a = self.audit(Some(contact.id), email.as_str(), AuditAction::NotTargeted);
            a.status_before = Some(view.status.type_name().to_string());
            a.status_after = a.status_before.clone();
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
            work.audits.push(a);
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
        a: &mut AuditRow,
    ) -> Result<()> {
        let s = self.state;
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
                self.tenant.id,
                &email.key(),
                origin,
                source.as_deref(),
                self.job.id,
                s.clock.epoch_ms(),
            )
            .await?;
        let order = self.write_order();
        let trust = self.trust_answer();
        let report = self.client.opt_out_via(email, &text, &order, trust).await?;
        if let Some(after) = report.status_after {
            s.store
                .ledger_resolve(intent, after, s.clock.epoch_ms())
                .await?;
        }
        let path = WritePath::from(report.path);
        if !report.verified {
            let said: Vec<String> = report.attempts.iter().map(|a| a.to_string()).collect();
            return Err(Error::NoOptOutPath(said.join("; ")));
        }
        self.learned_path(report.attempts.last().map(|a| a.api))
            .await?;
        tracing::info!(contact = contact.get(), email = %email, status = ?report.status_after, %path, "opted out");
        a.action = AuditAction::OptedOut;
        a.status_after = report.status_after.map(|s| s.type_name().to_string());
        a.path = Some(path);
        a.keap_calls = i64::from(report.calls);
        a.detail = source
            .map(|s| format!("source {s}"))
            .or(Some("hard bounce".into()));
        Ok(())
    }

    /// The write paths to try, in order: the tenant's method, and for `auto` the path last
    /// learned first (so an app whose Keap ignores the PATCH does not pay for it each time).
    fn write_order(&self) -> Vec<keap::Api> {
        use keap::Api;
        match self.tenant.opt_out_method {
            OptOutMethod::Rest => vec![Api::Rest],
            OptOutMethod::XmlRpc => vec![Api::XmlRpc],
            OptOutMethod::Auto => match *self.learned.lock().unwrap_or_else(|e| e.into_inner()) {
                Some(OptOutApi::XmlRpc) => vec![Api::XmlRpc, Api::Rest],
                _ => vec![Api::Rest, Api::XmlRpc],
            },
        }
    }

    /// Whether to take the REST write's answer as proof: only for an app whose REST path
    /// read-backs have proven (learned before this job, unchanged since), and even then one
    /// write in [`READ_BACK_SAMPLE`] is read back, so a path that starts lying is caught.
    fn trust_answer(&self) -> bool {
        let proven = self.tenant.opt_out_path == Some(OptOutApi::Rest)
            && *self.learned.lock().unwrap_or_else(|e| e.into_inner()) == Some(OptOutApi::Rest);
        proven && !rand::rng().random_ratio(1, READ_BACK_SAMPLE)
    }

    /// Records the path that just worked (a read-back proved it), for this job and the app.
    async fn learned_path(&self, api: Option<keap::Api>) -> Result<()> {
        let Some(api) = api.map(OptOutApi::from) else {
            return Ok(());
        };
        let changed = {
            let mut l = self.learned.lock().unwrap_or_else(|e| e.into_inner());
            l.replace(api) != Some(api)
        };
        if changed {
            tracing::info!(path = %api, "learned the app's working opt-out path");
        }
        self.state
            .store
            .record_opt_out_path(self.tenant.id, api, self.state.clock.epoch_ms())
            .await
    }

    /// The contacts holding an address: from the local index while a recent full sweep keeps
    /// it fresh (no Keap call), else one lookup.
    async fn holders(&self, email: &EmailAddress) -> Result<Vec<ContactId>> {
        if !self.index_fresh {
            return Ok(self.client.contacts_with_address(email).await?);
        }
        let ids = self
            .state
            .store
            .indexed_holder_ids(self.tenant.id, &email.key())
            .await?;
        Ok(ids.into_iter().filter_map(ContactId::new).collect())
    }

    /// A stop source shared with other contacts makes their addresses targets too: queue a
    /// job for each other holder, once per source.
    async fn fan_out(&self, contact: ContactId, sources: &[EmailAddress]) -> Result<()> {
        let s = self.state;
        for source in sources {
            // A job about an address has already worked on every contact holding it.
            if self.job.subject.covers_address(source)
                || s.store.is_fanned_out(self.tenant.id, &source.key()).await?
            {
                continue;
            }
            for other in self
                .holders(source)
                .await?
                .into_iter()
                .filter(|h| *h != contact)
            {
                let mut ev = NewEvent::new(
                    self.tenant.id,
                    EventSource::Fanout,
                    EventKind::SharedAddress,
                    Subject::Contact(other),
                    s.clock.epoch_ms(),
                );
                ev.contact_id = Some(other);
                ev.email = Some(source.clone());
                ev.body_digest = format!("job:{}", self.job.id);
                s.store.accept(&ev).await?;
                s.wake.notify_waiters();
            }
            s.store
                .mark_fanned_out(self.tenant.id, &source.key(), s.clock.epoch_ms())
                .await?;
        }
        Ok(())
    }
}

/// What the job's events say beyond "look at this contact".
fn signals(events: &[EventRow]) -> Signals {
    let mut sig = Signals::default();
    for e in events {
        let Some(email) = e.address() else {
            continue;
        };
        match e.kind {
            EventKind::Unsubscribe | EventKind::Complaint => sig.stops.push(email),
            EventKind::HardBounce | EventKind::Suppressed => sig.hard_bounces.push(email),
            _ => {}
        }
    }
    sig
}

/// Whether an error means no opt-out path works just now (rather than a failed attempt):
/// also an OAuth app Keap refused for good, until it is connected again.
fn is_blocking(e: &Error) -> bool {
    matches!(
        e,
        Error::NoOptOutPath(_)
            | Error::Keap(keap::Error::XmlRpcUnavailable(_) | keap::Error::ReconnectNeeded(_))
    )
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
