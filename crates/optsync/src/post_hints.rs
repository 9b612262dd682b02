//! What the workers have learned, per app, that lets a Keap post skip the contact read: the
//! status the app's REST write leaves, and the field that held the person's stop in its last
//! post. Kept in memory: after a restart each app's first post reads first and teaches them
//! again (see `rules::fast`).

use std::collections::HashMap;
use std::sync::Mutex;

use keap::{EmailField, EmailStatus};

use crate::store::TenantId;

#[derive(Debug, Clone, Copy, Default)]
struct Hint {
    written: Option<EmailStatus>,
    source_field: Option<EmailField>,
}

/// Every app's hints; shared by the workers.
#[derive(Debug, Default)]
pub struct PostHints(Mutex<HashMap<TenantId, Hint>>);

impl PostHints {
    fn with<R>(&self, tenant: TenantId, f: impl FnOnce(&mut Hint) -> R) -> R {
        // A worker that panicked mid-update leaves at worst a stale hint, which a surprise
        // corrects: keep going rather than poison every later job.
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(tenant).or_default())
    }

    /// The status the app's REST write left when last it took, if known.
    pub fn written(&self, tenant: TenantId) -> Option<EmailStatus> {
        self.with(tenant, |h| h.written)
    }

    /// The field that held the person's stop in the app's last post (`Email` at first).
    pub fn source_field(&self, tenant: TenantId) -> EmailField {
        self.with(tenant, |h| h.source_field.unwrap_or(EmailField::Email1))
    }

    /// A REST write to a marketable address took and left `status`; `None` forgets it.
    pub fn learn_written(&self, tenant: TenantId, status: Option<EmailStatus>) {
        self.with(tenant, |h| h.written = status);
    }

    pub fn learn_source_field(&self, tenant: TenantId, field: EmailField) {
        self.with(tenant, |h| h.source_field = Some(field));
    }
}
