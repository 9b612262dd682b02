//! Fan-out: a stop source shared with other contacts makes their addresses targets too, so a
//! job queues one for each other holder, once per source.

use crate::clock::Now as _;
use keap::{ContactId, EmailAddress};

use super::job::JobRun;
use crate::error::Result;
use crate::store::{EventPayload, NewEvent};

impl JobRun<'_> {
    /// The contacts holding an address: from the local index while a recent full sweep keeps
    /// it fresh (no Keap call), else one lookup.
    async fn holders(&self, email: &EmailAddress) -> Result<Vec<ContactId>> {
        if !self.index_fresh {
            return Ok(self.client.contacts_with_address(email).await?);
        }
        self.state
            .store
            .indexed_holder_ids(self.tenant.id, &email.key())
            .await
    }

    /// Queues a job for each other holder of each stop source not fanned out before.
    pub(super) async fn fan_out(&self, contact: ContactId, sources: &[EmailAddress]) -> Result<()> {
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
                let payload = EventPayload::Fanout {
                    from_job: self.job.id,
                    contact: other,
                    source: source.clone(),
                };
                let ev = NewEvent::new(self.tenant.id, payload, s.clock.now());
                s.queue.enqueue_one(&ev).await?;
            }
            s.store
                .mark_fanned_out(self.tenant.id, &source.key(), s.clock.now())
                .await?;
        }
        Ok(())
    }
}
