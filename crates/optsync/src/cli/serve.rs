//! `optsync serve` and `optsync migrate`.

use crate::app::{App, ServeOptions, shutdown_signal};
use crate::config::Settings;
use crate::store::{Store, redact};

/// Serves until SIGTERM or Ctrl-C, then finishes the jobs in hand.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    // SIGHUP re-reads the TLS files; without TLS it must not end the service either.
    let _hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let app = App::open(settings).await?;
    let mut opts = ServeOptions::from_settings(app.settings());
    let listener = App::bind(app.settings().listen).await?;
    if let Some(admin) = app.settings().admin_listen {
        opts.admin = Some(App::bind(admin).await?);
    }
    let serving = app.serve(listener, opts).await?;
    shutdown_signal().await;
    tracing::info!("shutting down: finishing jobs in hand");
    serving.stop().await;
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// List each migration this binary knows as applied or pending (and any applied by a
    /// newer binary); apply nothing.
    #[arg(long)]
    status: bool,
}

pub async fn migrate(settings: Settings, a: MigrateArgs) -> anyhow::Result<()> {
    let url = redact(&settings.database_url);
    if a.status {
        crate::layout::require_existing_database(&settings)?;
        let status = Store::connect(&settings.database_url)
            .await?
            .schema_status()
            .await?;
        for m in &status.known {
            let state = if m.applied { "applied" } else { "pending" };
            println!("{:04}  {state:<8} {}", m.version, m.description);
        }
        for v in &status.unknown {
            println!("{v:04}  applied  (unknown to this binary: a newer optsync's)");
        }
        println!(
            "{url}: schema version {}, this binary's {}; {} pending",
            status.database_version(),
            status.binary_version(),
            status.pending()
        );
        return Ok(());
    }
    App::open(settings).await?;
    println!("migrations applied to {url}");
    Ok(())
}
