//! Reconciliation: find the opt-outs nothing announced (a user's manual opt-out, API
//! opt-outs, List-Unsubscribe, imports) within Keap's API budget.
//!
//! - A **full sweep** pages every contact with its addresses and statuses (one call per
//!   1,000 contacts), applies the rules to each contact as it was *before* any of the sweep's
//!   writes, and queues a job (with what it saw) for each contact that needs writes. It
//!   rebuilds the local index of address → contacts and the set of not-marketable addresses.
//! - An **incremental sweep** lists the not-marketable addresses (one call per 1,000), diffs
//!   them against the set seen last time, and resolves only new stop statuses to contacts —
//!   through the local index, or one API lookup when the index does not know the address.
//! - Each page is committed with its jobs and the cursor after it, so a stopped sweep resumes
//!   where it was and queues nothing twice. A sweep spends at most a share of the credential's
//!   remaining daily quota (default half), then pauses until the budget returns.

use crate::clock::{Millis, Now as _};
use crate::logfmt::one_line;
use std::collections::{BTreeMap, HashMap, HashSet};

use keap::{Address, Contact, EmailAddress, EmailField, EmailStatus, KeapClient};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::rules::{self, AddressView, OwnWrite, Signals};
use crate::state::AppState;
pub use crate::store::SweepKind;
use crate::store::{
    ContactSnapshot, EventPayload, IndexedAddress, NewEvent, PageCommit, SweepRow, SweepState,
    TenantId, TenantRow,
};

#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// A full sweep even if an incremental one would do.
    pub full: bool,
    /// Decide and report, write and queue nothing, keep no state.
    pub dry_run: bool,
    /// Share of the remaining daily quota a sweep may spend (0–1).
    pub budget_share: f64,
    pub page_size: u32,
    /// Incremental sweeps turn into a full one when the last full sweep is older than this.
    pub full_every_ms: i64,
    /// Stop after this many pages, as if the process had been stopped (tests).
    pub stop_after_pages: Option<u32>,
}

impl Default for SweepOptions {
    fn default() -> Self {
        Self {
            full: false,
            dry_run: false,
            budget_share: 0.5,
            page_size: keap::MAX_PAGE_SIZE,
            // Daily: a full sweep costs one call per 1,000 contacts, and it keeps the local
            // address index fresh enough for the worker to find shared addresses without a
            // lookup (see `INDEX_FRESH_MS`).
            full_every_ms: 86_400_000,
            stop_after_pages: None,
        }
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepReport {
    pub kind: Option<SweepKind>,
    pub resumed: bool,
    pub dry_run: bool,
    pub pages: u64,
    pub contacts_scanned: u64,
    /// Not-marketable addresses listed (incremental).
    pub addresses_listed: u64,
    /// Addresses resolved to contacts through the API (the index did not know them).
    pub lookups: u64,
    /// Keap calls the sweep itself made (its jobs' writes are counted by the worker).
    pub calls: u64,
    /// Contacts needing writes, by the status of their stop source.
    pub discrepancies: BTreeMap<String, u64>,
    /// Addresses to opt out (written by the queued jobs; with --dry-run, that would be).
    pub addresses_to_write: u64,
    pub contacts_queued: u64,
    pub finished: bool,
    /// Why the sweep stopped early, if it did.
    pub paused: Option<String>,
}

/// The contact's addresses as the rules see them.
fn views(c: &Contact, own: &HashMap<String, OwnWrite>) -> Vec<AddressView> {
    c.addresses
        .iter()
        .map(|a| AddressView {
            email: a.email.clone(),
            status: a.status,
            own_write: own.get(&a.email.key()).copied(),
        })
        .collect()
}

/// Why a contact is a discrepancy: the status of its first stop source.
fn discrepancy(c: &Contact, decision: &rules::Decision) -> Option<(String, u64)> {
    let writes = decision.writes().count() as u64;
    if writes == 0 {
        return None;
    }
    let source = decision.sources.first()?;
    let status = c
        .addresses
        .iter()
        .find(|a| a.email.key() == source.key())
        .map(|a| a.status.type_name().to_string())?;
    Some((status, writes))
}

fn reconcile_event(tenant_id: TenantId, c: &Contact, now: Millis, snapshot: bool) -> NewEvent {
    let payload = EventPayload::Discrepancy {
        contact: c.id,
        snapshot: snapshot.then(|| ContactSnapshot::of(c, now)),
    };
    NewEvent::new(tenant_id, payload, now)
}

struct Sweeper<'a> {
    state: &'a AppState,
    tenant: &'a TenantRow,
    client: KeapClient,
    opts: &'a SweepOptions,
    own: HashMap<String, OwnWrite>,
    /// The last ledger row folded into `own`.
    own_upto: i64,
    report: SweepReport,
    /// Calls this sweep may make before pausing.
    allowance: Option<u64>,
}

impl Sweeper<'_> {
    /// Whether `next` more calls fit the sweep's share of the budget.
    fn affordable(&self, next: u64) -> bool {
        self.allowance
            .is_none_or(|a| self.client.calls_made() + next <= a)
    }

    /// Folds in what the workers wrote since: the sweep's own jobs run while it pages, and
    /// an address they opted out must not look like a person's opt-out on a later page.
    async fn refresh_own_writes(&mut self) -> Result<()> {
        let (more, upto) = self
            .state
            .store
            .own_writes_since(self.tenant.id, self.own_upto)
            .await?;
        self.own.extend(more);
        self.own_upto = upto;
        Ok(())
    }

    fn take_decision(&mut self, c: &Contact, jobs: &mut Vec<NewEvent>, now: Millis, snap: bool) {
        let decision = rules::decide(&views(c, &self.own), &Signals::default());
        if let Some((kind, writes)) = discrepancy(c, &decision) {
            *self.report.discrepancies.entry(kind).or_default() += 1;
            self.report.addresses_to_write += writes;
            self.report.contacts_queued += 1;
            jobs.push(reconcile_event(self.tenant.id, c, now, snap));
        }
    }

    async fn full(&mut self, mut cursor: Option<String>) -> Result<()> {
        let size = self.opts.page_size;
        loop {
            if !self.spend_one() {
                return Ok(());
            }
            if self
                .opts
                .stop_after_pages
                .is_some_and(|n| self.report.pages >= u64::from(n))
            {
                self.report.paused = Some("stopped on request".into());
                return Ok(());
            }
            let before = self.client.calls_made();
            let page = self.client.contacts_page(cursor.as_deref(), size).await?;
            self.refresh_own_writes().await?;
            let now = self.state.clock.now();
            let mut commit = PageCommit {
                cursor: page.next.clone(),
                contacts_scanned: page.contacts.len() as i64,
                calls: (self.client.calls_made() - before) as i64,
                ..PageCommit::default()
            };
            for c in &page.contacts {
                for a in &c.addresses {
                    commit.index.push(IndexedAddress {
                        contact_id: c.id,
                        field: a.field.rest_name().into(),
                        email: a.email.as_str().into(),
                    });
                    if !a.status.is_marketable() {
                        commit
                            .seen
                            .push((a.email.key(), a.status.type_name().into()));
                    }
                }
                self.take_decision(c, &mut commit.jobs, now, true);
            }
            self.report.pages += 1;
            self.report.contacts_scanned += page.contacts.len() as u64;
            commit.discrepancies =
                serde_json::to_string(&self.report.discrepancies).unwrap_or_default();
            if !self.opts.dry_run {
                self.state
                    .queue
                    .commit_page(self.tenant.id, &commit, now)
                    .await?;
            }
            cursor = page.next;
            if cursor.is_none() {
                self.report.finished = true;
                return Ok(());
            }
        }
    }

    /// Spends one call of the budget, or records why the sweep pauses.
    fn spend_one(&mut self) -> bool {
        if self.affordable(1) {
            return true;
        }
        self.report.paused = Some("the sweep's share of today's Keap budget is spent".into());
        false
    }

    async fn incremental(&mut self) -> Result<()> {
        let Some(current) = self.list_opted_out().await? else {
            return Ok(());
        };
        self.report.addresses_listed = current.len() as u64;
        let seen = self.state.store.opted_out_seen(self.tenant.id).await?;
        self.refresh_own_writes().await?;
        let now = self.state.clock.now();
        let mut jobs = Vec::new();
        let mut done: HashSet<i64> = HashSet::new();
        for email in self.fresh_stops(&current, &seen) {
            if !self
                .queue_holders(&email, &current, &mut jobs, &mut done, now)
                .await?
            {
                break;
            }
        }
        if self.report.paused.is_some() || self.opts.dry_run {
            return Ok(());
        }
        self.commit_incremental(current, jobs, now).await
    }

    /// Every not-marketable address, or `None` when the budget ran out first.
    async fn list_opted_out(
        &mut self,
    ) -> Result<Option<HashMap<String, (EmailAddress, EmailStatus)>>> {
        let mut current = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            if !self.spend_one() {
                return Ok(None);
            }
            let page = self
                .client
                .opted_out_page(cursor.as_deref(), self.opts.page_size)
                .await?;
            self.report.pages += 1;
            for a in page.addresses {
                current.insert(a.email.key(), (a.email, a.status));
            }
            cursor = page.next;
            if cursor.is_none() {
                return Ok(Some(current));
            }
        }
    }

    /// New stop statuses that optsync did not write: the opt-outs nobody announced.
    fn fresh_stops(
        &self,
        current: &HashMap<String, (EmailAddress, EmailStatus)>,
        seen: &HashMap<String, String>,
    ) -> Vec<EmailAddress> {
        let mut fresh: Vec<EmailAddress> = current
            .iter()
            .filter(|(k, (_, st))| {
                st.is_stop()
                    && seen.get(*k).map(String::as_str) != Some(st.type_name())
                    && !matches!(self.own.get(*k), Some(OwnWrite::Intended))
                    && self.own.get(*k) != Some(&OwnWrite::Wrote(*st))
            })
            .map(|(_, (e, _))| e.clone())
            .collect();
        fresh.sort();
        fresh
    }

    /// Queues the contacts holding a fresh stop source: from the index, with statuses from
    /// the list just read, or (unindexed) through one lookup, the worker reading the contact
    /// itself. False when the budget ran out.
    async fn queue_holders(
        &mut self,
        email: &EmailAddress,
        current: &HashMap<String, (EmailAddress, EmailStatus)>,
        jobs: &mut Vec<NewEvent>,
        done: &mut HashSet<i64>,
        now: Millis,
    ) -> Result<bool> {
        let holders = self
            .state
            .store
            .indexed_holders(self.tenant.id, &email.key())
            .await?;
        if holders.is_empty() {
            if !self.spend_one() {
                return Ok(false);
            }
            self.report.lookups += 1;
            for id in self.client.contacts_with_address(email).await? {
                if done.insert(id.get()) {
                    let c = Contact {
                        id,
                        addresses: Vec::new(),
                    };
                    self.report.contacts_queued += 1;
                    *self
                        .report
                        .discrepancies
                        .entry("unindexed".into())
                        .or_default() += 1;
                    jobs.push(reconcile_event(self.tenant.id, &c, now, false));
                }
            }
            return Ok(true);
        }
        for (cid, addrs) in holders {
            if !done.insert(cid.get()) {
                continue;
            }
            // What is not in the list just read is marketable.
            let addresses = addrs
                .iter()
                .filter_map(|a| {
                    let email = EmailAddress::from_stored(&a.email);
                    let status = current
                        .get(&email.key())
                        .map_or(EmailStatus::SingleOptIn, |(_, s)| *s);
                    Some(Address {
                        field: a.field.parse::<EmailField>().ok()?,
                        email,
                        status,
                    })
                })
                .collect();
            let c = Contact { id: cid, addresses };
            self.take_decision(&c, jobs, now, true);
        }
        Ok(true)
    }

    /// Commits the incremental sweep's jobs and its new seen set.
    async fn commit_incremental(
        &mut self,
        current: HashMap<String, (EmailAddress, EmailStatus)>,
        jobs: Vec<NewEvent>,
        now: Millis,
    ) -> Result<()> {
        let commit = PageCommit {
            cursor: None,
            calls: self.client.calls_made() as i64,
            jobs,
            discrepancies: serde_json::to_string(&self.report.discrepancies).unwrap_or_default(),
            ..PageCommit::default()
        };
        self.state
            .queue
            .commit_page(self.tenant.id, &commit, now)
            .await?;
        let seen: HashMap<String, String> = current
            .into_iter()
            .map(|(k, (_, s))| (k, s.type_name().to_string()))
            .collect();
        self.state
            .store
            .replace_opted_out_seen(self.tenant.id, &seen)
            .await?;
        self.report.finished = true;
        Ok(())
    }
}

/// Runs one sweep of a tenant's contacts to completion (or until its budget share is spent,
/// or `stop_after_pages`). Writes happen in the jobs it queues.
pub async fn sweep(
    state: &AppState,
    tenant: &TenantRow,
    opts: &SweepOptions,
) -> Result<SweepReport> {
    if !(0.0..=1.0).contains(&opts.budget_share) {
        return Err(Error::BadInput(
            "budget share must be between 0 and 1".into(),
        ));
    }
    // A sweep may not spend the share of the budget reserved for real-time opt-outs.
    let client = state
        .clients
        .client(tenant)?
        .scoped_for(keap::CallPolicy::sweep());
    let allowance = client
        .pacer()
        .budget()
        .daily_remaining
        .map(|r| (f64::from(r) * opts.budget_share).floor() as u64);
    let now = state.clock.now();
    let previous = state.store.sweep(tenant.id).await?;
    let (kind, resumable) = choose_kind(previous.as_ref(), opts, now);
    let mut sw = Sweeper {
        state,
        tenant,
        client,
        opts,
        own: HashMap::new(),
        own_upto: 0,
        report: SweepReport {
            kind: Some(kind),
            dry_run: opts.dry_run,
            ..SweepReport::default()
        },
        allowance,
    };
    tracing::info!(tenant = %tenant.app, ?kind, dry_run = opts.dry_run, allowance, "sweep starting");
    match (kind, resumable) {
        // Resume a full sweep where it stopped.
        (SweepKind::Full, Some(p)) => {
            sw.report.resumed = true;
            sw.report.discrepancies = serde_json::from_str(&p.discrepancies).unwrap_or_default();
            sw.full(p.cursor.clone()).await?;
        }
        (kind, _) => {
            if !opts.dry_run {
                state.store.begin_sweep(tenant.id, kind, now).await?;
            }
            match kind {
                SweepKind::Full => sw.full(None).await?,
                SweepKind::Incremental => sw.incremental().await?,
            }
        }
    }
    sw.report.calls = sw.client.calls_made();
    record_end(state, tenant, &sw.report, kind, opts.dry_run).await?;
    Ok(sw.report)
}

/// Full when asked, when the last full sweep is too old, or when one stopped part-way (it is
/// resumed unless a fresh one was asked for); incremental otherwise.
fn choose_kind<'p>(
    previous: Option<&'p SweepRow>,
    opts: &SweepOptions,
    now: Millis,
) -> (SweepKind, Option<&'p SweepRow>) {
    let resumable = previous.filter(|p| {
        p.kind == SweepKind::Full && p.state != SweepState::Finished && p.cursor.is_some()
    });
    let stale_full = previous
        .and_then(|p| p.last_full_at)
        .is_none_or(|t| now - t > opts.full_every_ms);
    if opts.full {
        (SweepKind::Full, None)
    } else if stale_full || resumable.is_some() {
        (SweepKind::Full, resumable)
    } else {
        (SweepKind::Incremental, None)
    }
}

/// Records the sweep finished or paused (nothing for a dry run), and logs it.
async fn record_end(
    state: &AppState,
    tenant: &TenantRow,
    r: &SweepReport,
    kind: SweepKind,
    dry_run: bool,
) -> Result<()> {
    let end = state.clock.now();
    if !dry_run {
        if r.finished {
            state
                .store
                .finish_sweep(tenant.id, kind == SweepKind::Full, end)
                .await?;
        } else {
            state.store.pause_sweep(tenant.id, end).await?;
        }
    }
    tracing::info!(tenant = %tenant.app, pages = r.pages, contacts = r.contacts_scanned,
        calls = r.calls, queued = r.contacts_queued, finished = r.finished,
        paused = ?r.paused, "sweep ended");
    // What this run read and queued (a resumed sweep's report counts this run's pages only).
    let app = tenant.app.clone();
    metrics::counter!(crate::telemetry::SWEEP_PAGES, "app" => app.clone()).increment(r.pages);
    metrics::counter!(crate::telemetry::SWEEP_CONTACTS, "app" => app.clone())
        .increment(r.contacts_scanned);
    metrics::counter!(crate::telemetry::SWEEP_JOBS, "app" => app).increment(r.contacts_queued);
    Ok(())
}

/// How recent the last full sweep must be for the worker to trust the local address index
/// (a day's sweep interval and slack); older, it looks shared addresses up in Keap.
pub const INDEX_FRESH_MS: i64 = 26 * 3_600_000;

/// How often to sweep a tenant: as often as its budget share allows, between five minutes
/// and a day. `calls_per_sweep` is what the last sweep cost.
pub fn interval_ms(calls_per_sweep: u64, daily_limit: Option<u32>, budget_share: f64) -> i64 {
    const MIN: i64 = 5 * 60_000;
    const DAY: i64 = 86_400_000;
    let Some(limit) = daily_limit else {
        return MIN;
    };
    // Sweeps may use a quarter of the share on average, leaving room for catch-up sweeps.
    let per_day = (f64::from(limit) * budget_share / 4.0) / calls_per_sweep.max(1) as f64;
    if per_day < 1.0 {
        return DAY;
    }
    ((DAY as f64 / per_day) as i64).clamp(MIN, DAY)
}

/// Sweeps every tenant when due, until shutdown. Runs inside `optsync serve`.
pub async fn schedule(
    state: AppState,
    opts: SweepOptions,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut last_cost: HashMap<TenantId, u64> = HashMap::new();
    loop {
        if *shutdown.borrow() {
            return;
        }
        match state.store.tenants().await {
            Ok(tenants) => {
                for t in tenants {
                    if *shutdown.borrow() {
                        return;
                    }
                    let prev = match state.store.sweep(t.id).await {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::warn!(tenant = %t.app, error = %one_line(&e), "cannot read sweep state; skipping this round");
                            continue;
                        }
                    };
                    let limit = state
                        .clients
                        .client(&t)
                        .ok()
                        .and_then(|c| c.pacer().budget().daily_limit);
                    let every = interval_ms(
                        *last_cost.get(&t.id).unwrap_or(&1),
                        limit,
                        opts.budget_share,
                    );
                    let last = prev.as_ref().map(|p| p.finished_at.unwrap_or(p.started_at));
                    let due = last.is_none_or(|l| state.clock.now() - l >= every);
                    if !due {
                        continue;
                    }
                    match sweep(&state, &t, &opts).await {
                        Ok(r) => {
                            last_cost.insert(t.id, r.calls.max(1));
                        }
                        Err(e) => {
                            tracing::warn!(tenant = %t.app, error = %one_line(&e), "sweep failed; will try again")
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "scheduler cannot read tenants"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_follow_size_and_budget() {
        // 10,000 contacts (10 calls) on a 30,000/day key: every five minutes.
        assert_eq!(interval_ms(10, Some(30_000), 0.5), 5 * 60_000);
        // A huge account on a small key: once a day.
        assert_eq!(interval_ms(10_000, Some(30_000), 0.5), 86_400_000);
        let mid = interval_ms(500, Some(30_000), 0.5);
        assert!(mid > 5 * 60_000 && mid < 86_400_000);
    }
}
