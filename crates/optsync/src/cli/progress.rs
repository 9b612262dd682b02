//! What `optsync reconcile` shows while it runs, on standard error (standard output keeps the
//! report alone): on a terminal one line redrawn in place (indicatif) — contacts scanned of
//! those known, Keap calls, jobs run and left, writes, rate and time left; piped, nothing (a
//! script reads the report alone, and a log gets no redrawn lines).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::clock::Millis;
use crate::reconcile_run::{Phase, Progress};

pub enum Shown {
    Terminal {
        bar: ProgressBar,
        /// When the first job ran (the run's clock), for the rate.
        jobs_since: Option<Millis>,
    },
    /// Standard error is not a terminal: nothing is shown.
    Quiet,
}

impl Shown {
    /// Redrawn in place when standard error is a terminal, nothing otherwise.
    pub fn for_stderr(app: &str) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(format!("reconcile {app}:"));
            bar.enable_steady_tick(Duration::from_millis(200));
            Self::Terminal {
                bar,
                jobs_since: None,
            }
        } else {
            Self::Quiet
        }
    }

    pub fn update(&mut self, p: &Progress) {
        match self {
            Self::Terminal { bar, jobs_since } => {
                if p.jobs_run > 0 && jobs_since.is_none() {
                    *jobs_since = Some(p.now);
                }
                bar.set_message(line(p, *jobs_since));
            }
            Self::Quiet => {}
        }
    }

    /// Takes the redrawn line away before the report is printed.
    pub fn finish(&self) {
        if let Self::Terminal { bar, .. } = self {
            bar.finish_and_clear();
        }
    }
}

/// The progress in words: what the run does now and its numbers so far.
fn line(p: &Progress, jobs_since: Option<Millis>) -> String {
    let scanned = if p.contacts_known > 0 {
        format!(
            "{} of ~{} contacts scanned",
            p.contacts_scanned, p.contacts_known
        )
    } else {
        format!("{} contacts scanned", p.contacts_scanned)
    };
    let jobs = format!(
        "{} jobs run, {} writes{}",
        p.jobs_run,
        p.writes,
        rate_and_time_left(p, jobs_since)
    );
    match p.phase {
        Phase::Sweeping => format!("sweeping: {scanned}, {} Keap calls", p.sweep_calls),
        Phase::RunningJobs => format!("running the sweep's jobs: {jobs}"),
        Phase::Waiting { until } => format!(
            "waiting {} s for Keap's rate limit: {jobs}, {} jobs left",
            ((until - p.now).max(0) as u64).div_ceil(1000),
            p.jobs_left
        ),
        Phase::Finished => format!("done: {scanned}, {jobs}"),
    }
}

fn rate_and_time_left(p: &Progress, jobs_since: Option<Millis>) -> String {
    let Some(since) = jobs_since else {
        return String::new();
    };
    let secs = (p.now - since) as f64 / 1000.0;
    if secs < 1.0 {
        return String::new();
    }
    let rate = p.jobs_run as f64 / secs;
    if p.jobs_left > 0 && rate > 0.0 {
        let left = (p.jobs_left as f64 / rate).ceil();
        format!(" ({rate:.1} jobs/s, ~{left} s left)")
    } else {
        format!(" ({rate:.1} jobs/s)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(phase: Phase) -> Progress {
        Progress {
            phase,
            contacts_scanned: 1_000,
            contacts_known: 3_000,
            sweep_calls: 1,
            jobs_run: 100,
            jobs_left: 200,
            writes: 150,
            now: Millis(60_000),
        }
    }

    #[test]
    fn the_line_names_scanned_of_known_rate_and_time_left() {
        let sweeping = line(&progress(Phase::Sweeping), None);
        assert_eq!(
            sweeping,
            "sweeping: 1000 of ~3000 contacts scanned, 1 Keap calls"
        );
        let waiting = line(
            &progress(Phase::Waiting {
                until: Millis(62_500),
            }),
            Some(Millis(10_000)),
        );
        assert_eq!(
            waiting,
            "waiting 3 s for Keap's rate limit: 100 jobs run, 150 writes (2.0 jobs/s, ~100 s left), 200 jobs left"
        );
    }
}
