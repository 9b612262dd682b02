//! The command line: one module per command, each with its own arguments and `run`.

mod admin;
mod audit;
mod backup;
mod config;
mod demo;
mod docs;
mod doctor;
mod events;
mod progress;
mod provider;
mod push;
mod reconcile;
mod report;
mod serve;
mod table;
mod tenant;

use crate::store::TenantId;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::{Overrides, Settings};

pub use provider::ProviderCommand;
pub use tenant::TenantCommand;

/// The version and the git commit it was built from ("unknown" outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("OPTSYNC_GIT_COMMIT"),
    ")"
);

/// Keeps the opt-out status of Email, Email 2 and Email 3 of every Keap contact in sync.
///
/// Configuration: flags, then OPTSYNC_* environment variables, then optsync.toml (see
/// optsync.example.toml), then defaults; `optsync config` shows the result. Every secret
/// setting may also be given as a file: OPTSYNC_MASTER_KEY_FILE, OPTSYNC_DATABASE_URL_FILE. By default the state lives in a SQLite file under
/// ./optsync-data; set OPTSYNC_DATABASE_URL=postgres://… to run several instances on one
/// PostgreSQL database. Secrets never go on the command line: Keap keys come from
/// OPTSYNC_KEAP_API_KEY, a file, or standard input; the master key that encrypts them at rest
/// from OPTSYNC_MASTER_KEY or DATA_DIR/master.key (created on first run, mode 0600).
#[derive(Debug, Parser)]
#[command(name = "optsync", version = VERSION)]
pub struct Cli {
    #[command(flatten)]
    pub overrides: Overrides,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (hook routes, /healthz, /readyz), the workers and the scheduled
    /// sweeps in one process. Applies migrations first. Stops gracefully on SIGTERM or Ctrl-C.
    /// Serves HTTPS with OPTSYNC_TLS_CERT and OPTSYNC_TLS_KEY (re-read on SIGHUP), or with a
    /// certificate it obtains and renews through ACME for OPTSYNC_ACME_DOMAINS (TLS-ALPN-01 on
    /// its own port, 443).
    Serve,
    /// Apply the embedded database migrations and exit (only this and `serve` migrate; every
    /// other command refuses an older schema). With --status, list applied and pending
    /// migrations and change nothing.
    Migrate(serve::MigrateArgs),
    /// Print the effective settings, each with where its value came from (default, file,
    /// env, flag); secrets are redacted. Exits non-zero when a value is not valid.
    Config,
    /// Manage tenants (one Keap app each).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Configure the sending providers whose webhooks report unsubscribes, complaints and
    /// bounces for a tenant.
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// List received events with the state of their job, newest first.
    Events(events::EventsArgs),
    /// Put a dead, blocked or pending job (or all dead jobs) back in the queue, attempts
    /// reset; the console's retry button does the same.
    Retry(events::RetryArgs),
    /// Run one reconciliation sweep of a tenant to completion, writes included, and print a
    /// report. Incremental (the opted-out list diffed against the last sweep) when a full
    /// sweep ran within the week, full otherwise; a stopped full sweep resumes from its
    /// cursor. Then runs that tenant's jobs (no other tenant's) until every job the sweep
    /// queued has ended, waiting out Keap's rate limits; the report counts that tenant's
    /// writes. Progress goes to standard error: one line redrawn in place on a terminal, a
    /// plain line per phase otherwise. Exits 3 when the sweep could not finish (its budget
    /// share was spent).
    Reconcile(reconcile::ReconcileArgs),
    /// Write a consistent copy of the SQLite database into the new directory DEST, also while
    /// `serve` runs (SQLite's VACUUM INTO). The master key is left out unless --include-key.
    /// On PostgreSQL it exits non-zero: use pg_dump.
    Backup(backup::BackupArgs),
    /// Restore a backup made by `optsync backup` into an empty data directory (refuses a
    /// non-empty one). Start `serve` afterwards: the copy's pending jobs run.
    Restore(backup::RestoreArgs),
    /// Show the audit log: each decision about each address, with when it was honoured.
    Audit(audit::AuditArgs),
    /// The console's accounts (the console and /metrics are on OPTSYNC_ADMIN_LISTEN).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// The compliance report for a period: every opt-out received (source, contact, each
    /// address and what was done, received, honoured, latency) and a summary: the count,
    /// p50/p99 time to honour (nearest rank), the share honoured within 48 hours and within
    /// 10 business days, and those not honoured with the reason.
    Report(report::ReportArgs),
    /// Check each app live and say in plain words what works: the credential, the quota
    /// left, REST, XML-RPC (and the days to its sunset on 2026-12-31), the opt-out path that
    /// works, blocked and dead jobs, the last Keap post and sweep. Exits 1 when an app has a
    /// broken credential or no working opt-out path.
    Doctor(doctor::DoctorArgs),
    /// Run the whole system against an in-process Keap emulator with seeded contacts, check
    /// the result against the rules, and print a report. Exits non-zero if anything is wrong.
    /// Only in builds with the `demo` feature (a source checkout's default; not the package).
    Demo(demo::DemoArgs),
    /// Write man pages and shell completions generated from this command line into DIR.
    #[command(hide = true)]
    GenerateDocs(docs::GenerateDocsArgs),
}

impl Command {
    /// The demo prints its own progress and report; the service logs what it does.
    pub fn default_log_filter(&self) -> &'static str {
        if matches!(self, Self::Demo(_)) {
            return "optsync=warn,keap=error,keap_sim=error";
        }
        "optsync=info,keap=warn,keap_sim=warn"
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Config = cli.command {
        return config::run(&cli.overrides).map(|()| ExitCode::SUCCESS);
    }
    let ok = Ok(ExitCode::SUCCESS);
    // Neither reads settings nor state.
    let settings = match cli.command {
        Command::Demo(a) => return demo::run(a).await,
        Command::GenerateDocs(a) => return docs::run(a).and(ok),
        _ => Settings::load(&cli.overrides)?,
    };
    match cli.command {
        Command::Serve => serve::run(settings).await.and(ok),
        Command::Migrate(a) => serve::migrate(settings, a).await.and(ok),
        Command::Backup(a) => backup::backup(settings, a).await.and(ok),
        Command::Restore(a) => backup::restore(settings, a).await.and(ok),
        Command::Tenant(c) => tenant::run(&App::open_existing(settings).await?, c)
            .await
            .and(ok),
        Command::Provider(c) => provider::run(&App::open_existing(settings).await?, c)
            .await
            .and(ok),
        Command::Events(a) => events::events(&App::open_existing(settings).await?, a)
            .await
            .and(ok),
        Command::Retry(a) => events::retry(&App::open_existing(settings).await?, a)
            .await
            .and(ok),
        Command::Audit(a) => audit::run(&App::open_existing(settings).await?, a)
            .await
            .and(ok),
        Command::Report(a) => report::run(&App::open_existing(settings).await?, a)
            .await
            .and(ok),
        Command::Admin(c) => admin::run(&App::open_existing(settings).await?, c)
            .await
            .and(ok),
        Command::Reconcile(a) => reconcile::run(&App::open_existing(settings).await?, a).await,
        Command::Doctor(a) => doctor::run(&App::open_existing(settings).await?, a).await,
        Command::Demo(_) | Command::GenerateDocs(_) | Command::Config => ok,
    }
}

/// A secret from a file, trimmed; an empty file is an error.
fn read_secret_file(p: impl AsRef<Path>) -> anyhow::Result<String> {
    let p = p.as_ref();
    let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    let s = s.trim().to_string();
    if s.is_empty() {
        bail!("{} is empty", p.display());
    }
    Ok(s)
}

/// The id of the tenant named on the command line, if one was.
async fn tenant_id(app: &App, name: Option<&str>) -> anyhow::Result<Option<TenantId>> {
    match name {
        Some(name) => Ok(Some(app.tenants().get(name).await?.id)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_tree_is_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
