//! `optsync serve` and `optsync migrate`.

use crate::app::{App, ServeOptions, shutdown_signal};
use crate::config::Settings;
use crate::store::redact;

/// Serves until SIGTERM or Ctrl-C, then finishes the jobs in hand.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
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

pub async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let url = redact(&settings.database_url);
    App::open(settings).await?;
    println!("migrations applied to {url}");
    Ok(())
}
