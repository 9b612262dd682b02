//! Group commit: concurrent deliveries (Keap's posts, providers' webhooks) share one
//! transaction and one fsync, each answered only after the commit that holds it.
//!
//! Requests hand their [`Delivery`] to one committer task and wait for its outcome. While a
//! transaction commits, the next requests queue; the next transaction takes all of them (up to
//! a bound). A lone request is committed at once — no batching window adds latency — and a
//! burst costs one fsync per batch instead of one per request. Durability is unchanged: a
//! request is answered after its transaction commits. If a batch cannot be committed, each
//! delivery is tried in a transaction of its own, so one bad request cannot fail the others.

use crate::logfmt::one_line;
use tokio::sync::{mpsc, oneshot};

use super::Store;
use super::providers::{Delivery, DeliveryOutcome};
use crate::error::{Error, Result};

/// Deliveries in one transaction at most.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<DeliveryOutcome>>;

/// The handle requests store through.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<(Delivery, Reply)>,
}

impl GroupCommit {
    /// Starts the committer task on `store`; it ends when the last handle is dropped.
    pub fn start(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(store, rx));
        Self { tx }
    }

    /// Stores a delivery; returns once the transaction holding it has committed.
    pub async fn store(&self, d: Delivery) -> Result<DeliveryOutcome> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((d, reply))
            .await
            .map_err(|_| Error::Config("the committer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Config("the committer dropped a delivery".into()))?
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<(Delivery, Reply)>) {
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
