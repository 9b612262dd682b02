//! Group commit: concurrent deliveries (Keap's posts, providers' webhooks) share one
//! transaction and one fsync, each answered only after the commit that holds it.
//!
//! Requests hand their [`Delivery`] to one committer task and wait for its outcome. While a
//! transaction commits, the next requests queue; the next transaction takes all of them (up to
//! a bound). A lone request is committed at once — no batching window adds latency — and a
//! burst costs one fsync per batch instead of one per request. Durability is unchanged: a
//! request is answered after its transaction commits. If a batch cannot be committed, each
//! delivery is tried in a transaction of its own, so one bad request cannot fail the others.

use std::sync::{Arc, Mutex};

use crate::logfmt::one_line;
use tokio::sync::{mpsc, oneshot};

use super::Store;
use super::providers::{Delivery, DeliveryOutcome};
use crate::error::{Error, Result};

/// Deliveries in one transaction at most.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<DeliveryOutcome>>;

/// Where requests hand their deliveries to the running committer.
type Intake = mpsc::Sender<(Delivery, Reply)>;

/// Requests still queued, with where each waits for its outcome.
type Queued = mpsc::Receiver<(Delivery, Reply)>;

/// The handle requests store through. The committer runs only while something serves (it is
/// one of the tasks [`crate::app::Serving`] owns); without one, each delivery is stored in a
/// transaction of its own, as a command that enqueues outside `serve` needs.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    store: Store,
    running: Arc<Mutex<Option<Intake>>>,
}

/// The running committer: [`Committer::run`] commits until [`GroupCommit::close`] and every
/// request that had already handed its delivery over is committed, so a shutdown loses none.
#[derive(Debug)]
pub struct Committer {
    store: Store,
    rx: Queued,
}

impl GroupCommit {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            running: Arc::default(),
        }
    }

    /// A committer for requests from now on; `None` if one runs already (a second `serve`
    /// of the same application shares it).
    pub fn committer(&self) -> Option<Committer> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.is_some() {
            return None;
        }
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        *running = Some(tx);
        Some(Committer {
            store: self.store.clone(),
            rx,
        })
    }

    /// Takes no more requests into the running committer: it ends once the requests that hold
    /// it have handed their deliveries over and those are committed. Later requests are stored
    /// each alone.
    pub fn close(&self) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Stores a delivery; returns once the transaction holding it has committed.
    pub async fn store(&self, d: Delivery) -> Result<DeliveryOutcome> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(tx) = running else {
            return self.store.store_delivery(&d).await;
        };
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError((d, _))) = tx.send((d, reply)).await {
            // The committer ended (it panicked): this delivery alone, as without one.
            return self.store.store_delivery(&d).await;
        }
        answer
            .await
            .map_err(|_| Error::Config("the committer dropped a delivery".into()))?
    }
}

impl Committer {
    /// Commits batches until every handle to it is gone and nothing is left queued.
    pub async fn run(self) {
        run(self.store, self.rx).await
    }
}

async fn run(store: Store, mut rx: Queued) {
    let mut batch: Vec<(Delivery, Reply)> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit(&store, std::mem::take(&mut batch)).await;
    }
}

async fn commit(store: &Store, batch: Vec<(Delivery, Reply)>) {
    let (deliveries, replies): (Vec<Delivery>, Vec<Reply>) = batch.into_iter().unzip();
    match store.store_deliveries(&deliveries).await {
        Ok(outs) => {
            for (reply, out) in replies.into_iter().zip(outs) {
                let _ = reply.send(Ok(out));
            }
        }
        Err(e) if deliveries.len() > 1 => {
            tracing::warn!(error = %one_line(&e), batch = deliveries.len(), "group commit failed; storing each delivery alone");
            for (d, reply) in deliveries.iter().zip(replies) {
                let _ = reply.send(store.store_delivery(d).await);
            }
        }
        Err(e) => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
    }
}
