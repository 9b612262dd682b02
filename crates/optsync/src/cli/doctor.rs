//! `optsync doctor [APP] [--probe-opt-out ADDRESS]`.

use std::process::ExitCode;

use anyhow::Context;

use crate::app::App;
use crate::doctor::{Diagnosis, examine};

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Only this app (default: every tenant).
    app: Option<String>,
    /// Try each opt-out path on this address — one you own and agree to have opted out — and
    /// record the one that works. Needs APP.
    #[arg(long, value_name = "ADDRESS", requires = "app")]
    probe_opt_out: Option<String>,
}

/// Prints a diagnosis per app; exits 1 when any app has a broken credential or no working
/// opt-out path, so it can run from cron or a monitoring check.
pub async fn run(app: &App, a: DoctorArgs) -> anyhow::Result<ExitCode> {
    let probe = a
        .probe_opt_out
        .as_deref()
        .map(keap::EmailAddress::parse)
        .transpose()
        .context("--probe-opt-out")?;
    let tenants = match &a.app {
        Some(name) => vec![app.tenants().get(name).await?],
        None => app.store().tenants().await?,
    };
    let mut healthy = true;
    for t in &tenants {
        let d = examine(app.state(), t, probe.as_ref()).await?;
        print(&d);
        healthy &= d.healthy();
    }
    if tenants.is_empty() {
        println!("no tenants yet: add one with `optsync tenant add APP`");
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print(d: &Diagnosis) {
    let verdict = if d.healthy() { "OK" } else { "NEEDS ATTENTION" };
    println!("{} — {verdict}", d.app);
    for c in &d.checks {
        let mark = match c.ok {
            Some(true) => "ok  ",
            Some(false) => "FAIL",
            None => "    ",
        };
        println!("  {mark} {:<15} {}", c.what, c.detail);
    }
}
