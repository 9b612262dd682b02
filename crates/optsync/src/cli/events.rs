//! `optsync events` and `optsync retry`.

use anyhow::bail;
use clap::ValueEnum;

use super::table::Table;
use super::tenant_id;
use crate::app::App;
use crate::clock::rfc3339;
use crate::retry::Retried;
use crate::store::{JobId, JobState};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateArg {
    Pending,
    Running,
    Done,
    /// Keap has no such contact: nothing to honour.
    NotFound,
    Dead,
    /// No opt-out path works for the app (see `optsync doctor`); the last column says what
    /// each path answered and which addresses can still be mailed.
    Blocked,
    /// Keap's post named a contact that Keap showed with no stop status, read again for a
    /// few minutes: not honoured.
    NoOptOut,
}

impl From<StateArg> for JobState {
    fn from(s: StateArg) -> Self {
        match s {
            StateArg::Pending => Self::Pending,
            StateArg::Running => Self::Running,
            StateArg::Done => Self::Done,
            StateArg::NotFound => Self::NotFound,
            StateArg::Dead => Self::Dead,
            StateArg::Blocked => Self::Blocked,
            StateArg::NoOptOut => Self::NoOptOut,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Only this tenant's.
    #[arg(long)]
    tenant: Option<String>,
    /// Only events whose job is in this state.
    #[arg(long, value_enum)]
    state: Option<StateArg>,
    /// At most this many events, the newest first (1 to 10,000).
    #[arg(long, default_value_t = 50)]
    limit: i64,
}

pub async fn events(app: &App, a: EventsArgs) -> anyhow::Result<()> {
    let tid = tenant_id(app, a.tenant.as_deref()).await?;
    let rows = app
        .store()
        .events(tid, a.state.map(JobState::from), a.limit.clamp(1, 10_000))
        .await?;
    let mut t = Table::new(&[
        "event",
        "tenant",
        "source",
        "kind",
        "contact",
        "email",
        "received",
        "job",
        "try",
        "honoured / last error",
    ]);
    for e in rows {
        let tail = match (e.honoured_at, &e.last_error) {
            (Some(h), _) => rfc3339(h),
            (None, Some(err)) => err.clone(),
            (None, None) => String::new(),
        };
        let job = match (e.job_id, e.job_state) {
            (Some(id), Some(s)) => format!("{id}:{s}"),
            _ => "-".into(),
        };
        t.row(vec![
            e.id.to_string(),
            e.app,
            e.source.to_string(),
            e.kind.to_string(),
            e.contact_id.map(|c| c.to_string()).unwrap_or_default(),
            e.email.unwrap_or_default(),
            rfc3339(e.received_at),
            job,
            e.attempts.unwrap_or_default().to_string(),
            tail,
        ]);
    }
    t.print();
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// The job id (see `optsync events`); the job must be dead, blocked or pending.
    #[arg(required_unless_present = "dead", conflicts_with = "dead")]
    job: Option<JobId>,
    /// Every dead job.
    #[arg(long)]
    dead: bool,
}

pub async fn retry(app: &App, a: RetryArgs) -> anyhow::Result<()> {
    if a.dead {
        let n = crate::retry::dead(app.state()).await?;
        println!("{n} dead job(s) back in the queue");
    } else if let Some(id) = a.job {
        match crate::retry::job(app.state(), id, None).await? {
            Retried::Requeued => println!("job {id} back in the queue"),
            Retried::NotRetryable => bail!("job {id} is {}", Retried::NOT_RETRYABLE),
            Retried::NoSuchJob => bail!(
                "job {id} is {}: there is no such job",
                Retried::NOT_RETRYABLE
            ),
        }
    }
    Ok(())
}
