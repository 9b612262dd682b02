//! The queue as one service: every way work enters it ([`Queue::enqueue`] for requests,
//! through group commit; [`Queue::enqueue_one`] for fan-out; [`Queue::commit_page`] for a
//! sweep's page) counts what was stored and wakes the idle workers here, in one place, so no
//! producer can forget to. Workers claim, complete and requeue through it; operators re-drive
//! jobs through [`Queue::retry`], the CLI and the console alike.

use crate::clock::Millis;
use std::sync::Arc;

use keap::EmailAddress;

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use crate::error::{Error, Result};
use crate::store::{
    Accepted, ClaimedJob, Committer, Delivery, DeliveryOutcome, GroupCommit, JobId, JobReport,
    NewEvent, Outcome, PageCommit, Requeue, Store, Suppression, TenantId,
};

#[derive(Debug, Clone)]
pub struct Queue {
    store: Store,
    intake: GroupCommit,
    wake: Arc<Notify>,
}

impl Queue {
    /// The queue on `store`; its group committer runs while something serves
    /// ([`Self::committer`]).
    pub fn new(store: Store) -> Self {
        Self {
            intake: GroupCommit::new(store.clone()),
            store,
            wake: Arc::new(Notify::new()),
        }
    }

    /// The group committer for the requests from now on, for the caller to run (and end with
    /// [`Self::close_intake`]); `None` if one runs already.
    pub fn committer(&self) -> Option<Committer> {
        self.intake.committer()
    }

    /// Ends the running committer once what it was handed is committed.
    pub fn close_intake(&self) {
        self.intake.close();
    }

    /// Stores what one request brought, in a transaction shared with the requests arriving
    /// together; returns once it is committed.
    pub async fn enqueue(&self, d: Delivery) -> Result<DeliveryOutcome> {
        let kinds: Vec<_> = d
            .events
            .iter()
            .map(|e| (e.payload.source(), e.payload.kind()))
            .collect();
        let out = self.intake.store(d).await?;
        for ((source, kind), acc) in kinds.into_iter().zip(&out.accepted) {
            if !acc.duplicate {
                crate::telemetry::events_stored(source, kind);
            }
        }
        if out.queued > 0 {
            self.wake();
        }
        Ok(out)
    }

    /// Stores one event produced here (fan-out) in a transaction of its own.
    pub async fn enqueue_one(&self, ev: &NewEvent) -> Result<Accepted> {
        let acc = self.store.accept(ev).await?;
        if !acc.duplicate {
            crate::telemetry::events_stored(ev.payload.source(), ev.payload.kind());
        }
        if acc.job_id.is_some() {
            self.wake();
        }
        Ok(acc)
    }

    /// Commits a sweep's page with the jobs it found.
    pub async fn commit_page(
        &self,
        tenant_id: TenantId,
        page: &PageCommit,
        now: Millis,
    ) -> Result<()> {
        self.store.commit_page(tenant_id, page, now).await?;
        if !page.jobs.is_empty() {
            self.wake();
        }
        Ok(())
    }

    /// The next job due, taking tenants in turns (see [`Store::claim`]).
    pub async fn claim(
        &self,
        now: Millis,
        lease_ms: i64,
        per_tenant: i64,
    ) -> Result<Option<ClaimedJob>> {
        self.store.claim(now, lease_ms, per_tenant).await
    }

    /// Claims the next job due of `tenant` alone (see [`Store::claim_tenant`]).
    pub async fn claim_tenant(
        &self,
        tenant: TenantId,
        now: Millis,
        lease_ms: i64,
    ) -> Result<Option<ClaimedJob>> {
        self.store.claim_tenant(tenant, now, lease_ms).await
    }

    /// Ends a claimed job with a terminal outcome and its report (queueing the pushes it
    /// asks for); false if its lease ran out and another worker has it.
    pub async fn complete(
        &self,
        job: &ClaimedJob,
        now: Millis,
        outcome: Outcome,
        report: &JobReport,
    ) -> Result<bool> {
        let done = self
            .store
            .complete(job.id, Some(job.lease_until), now, outcome, report)
            .await?;
        if done && !report.push.is_empty() {
            self.wake();
        }
        Ok(done)
    }

    /// Puts a job that did not complete back, or buries it.
    pub async fn requeue(&self, job: JobId, how: Requeue, error: &str, now: Millis) -> Result<()> {
        self.store.requeue(job, how, error, now).await
    }

    /// Puts a job back and queues the pushes of the addresses it leaves mailable (a job no
    /// Keap path can do), in one transaction.
    pub async fn requeue_pushing(
        &self,
        job: JobId,
        how: Requeue,
        error: &str,
        now: Millis,
        pushes: (&[EmailAddress], Millis),
    ) -> Result<()> {
        let (addresses, requested_at) = pushes;
        let queued = self
            .store
            .requeue_pushing(job, how, error, now, addresses, requested_at)
            .await?;
        if queued > 0 {
            self.wake();
        }
        Ok(())
    }

    /// Ends a claimed push job as done, recording what it wrote; false if its lease ran out.
    pub async fn complete_push(
        &self,
        job: &ClaimedJob,
        now: Millis,
        done: &Suppression,
    ) -> Result<bool> {
        self.store
            .complete_push(job.id, job.lease_until, now, done)
            .await
    }

    /// Re-drives a job that is [`crate::store::RETRYABLE`]: pending now, attempts reset.
    /// An error names what it may not.
    pub async fn retry(&self, job: JobId, now: Millis) -> Result<()> {
        if !self.store.retry_job(job, now).await? {
            return Err(Error::BadInput(format!(
                "job {job} is not {} (or does not exist)",
                crate::store::RETRYABLE_WORDS
            )));
        }
        self.wake();
        Ok(())
    }

    /// Keap answers the tenant again: its jobs backed off after failures are due now (still
    /// paced by its credential's pacer), and the workers are woken.
    pub async fn release_backoff(&self, tenant_id: TenantId, now: Millis) -> Result<u64> {
        let n = self.store.release_backoff(tenant_id, now).await?;
        if n > 0 {
            self.wake();
        }
        Ok(n)
    }

    /// Re-drives every dead job; how many.
    pub async fn retry_dead(&self, now: Millis) -> Result<usize> {
        let n = self.store.retry_dead(now).await?;
        if n > 0 {
            self.wake();
        }
        Ok(n)
    }

    /// Resolves when work is enqueued after this call (enable it before looking for work).
    pub fn woken(&self) -> Notified<'_> {
        self.wake.notified()
    }

    /// The one wake-up: every idle worker looks for work now.
    fn wake(&self) {
        self.wake.notify_waiters();
    }
}
