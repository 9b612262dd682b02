//! `optsync reconcile APP`: one sweep now, that app's jobs run to completion (waiting out
//! Keap's rate limits), progress on standard error, and a report.

use std::process::ExitCode;

use super::progress::Shown;
use crate::app::App;
use crate::reconcile::{SweepKind, SweepOptions};
use crate::reconcile_run::{self, RunReport};

#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    app: String,
    /// Decide and report only: no write, no queued job, no state kept.
    #[arg(long)]
    dry_run: bool,
    /// Page through every contact even if an incremental sweep would do.
    #[arg(long)]
    full: bool,
}

pub async fn run(app: &App, a: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let tenant = app.tenants().get(&a.app).await?;
    let opts = SweepOptions {
        full: a.full,
        dry_run: a.dry_run,
        budget_share: app.settings().reconcile_budget_share,
        ..SweepOptions::default()
    };
    let mut shown = Shown::for_stderr(&a.app);
    let done = reconcile_run::run(app.state(), &tenant, &opts, &mut |p| shown.update(p)).await;
    shown.finish();
    let report = done?;
    print_report(&a.app, &report);
    Ok(if report.sweep.finished {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn print_report(app: &str, run: &RunReport) {
    let r = &run.sweep;
    let kind = r.kind.unwrap_or(SweepKind::Incremental);
    println!(
        "reconcile {app}: {kind} sweep{}{}",
        if r.resumed { " (resumed)" } else { "" },
        if r.dry_run { ", dry run" } else { "" }
    );
    println!("  pages read            {}", r.pages);
    println!("  contacts scanned      {}", r.contacts_scanned);
    if kind == SweepKind::Incremental {
        println!("  opted-out addresses   {}", r.addresses_listed);
        println!("  address lookups       {}", r.lookups);
    }
    println!("  Keap calls (sweep)    {}", r.calls);
    println!("  contacts to fix       {}", r.contacts_queued);
    for (k, n) in &r.discrepancies {
        println!("    stop source {k:<18} {n}");
    }
    if r.dry_run {
        println!("  writes that would be made  {}", r.addresses_to_write);
    } else {
        println!("  jobs run              {}", run.jobs_run);
        println!("  writes made           {}", run.writes);
        if run.dead > 0 {
            let n = run.dead;
            println!("  jobs dead             {n} (see `optsync events --state dead`)");
        }
        if run.blocked > 0 {
            let n = run.blocked;
            println!("  jobs blocked          {n} (see `optsync doctor {app}`)");
        }
    }
    match &r.paused {
        Some(why) => {
            println!("  not finished: {why}; the next run resumes from where this one stopped")
        }
        None => println!("  finished"),
    }
}
