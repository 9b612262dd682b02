//! `optsync reconcile APP`: one sweep now, its jobs run to completion, and a report.

use std::process::ExitCode;

use crate::app::App;
use crate::reconcile::{SweepKind, SweepOptions, SweepReport, sweep};
use crate::worker::JobOutcome;

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
    let report = sweep(app.state(), &tenant, &opts).await?;
    let (mut writes, mut dead) = (0, 0);
    if !a.dry_run {
        for o in app.worker().drain().await? {
            match o {
                JobOutcome::Done { writes: w, .. } => writes += w,
                JobOutcome::Dead { .. } => dead += 1,
                _ => {}
            }
        }
    }
    print_report(&a.app, &report, writes, dead);
    Ok(if report.finished {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn print_report(app: &str, r: &SweepReport, writes: usize, dead: usize) {
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
        println!("  writes made           {writes}");
        if dead > 0 {
            println!("  jobs dead             {dead} (see `optsync events --state dead`)");
        }
    }
    match &r.paused {
        Some(why) => {
            println!("  not finished: {why}; the next run resumes from where this one stopped")
        }
        None => println!("  finished"),
    }
}
