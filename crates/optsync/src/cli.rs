//! The command line: `optsync serve`, `migrate`, `tenant …`, `events`, `retry`, `audit`,
//! `demo`.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use keap::OptOutMethod;

use crate::clock::{Clock, rfc3339};
use crate::config::{Overrides, Settings};
use crate::crypto::SecretBox;
use crate::state::AppState;
use crate::store::{JobState, Store, redact};
use crate::tenant::{KEAP_BASE_URL, StoredCredential, TenantSpec, Tenants};

/// Keeps the opt-out status of Email, Email 2 and Email 3 of every Keap contact in sync.
///
/// Configuration: flags, then OPTSYNC_* environment variables, then optsync.toml (see
/// optsync.example.toml), then defaults. By default the state lives in a SQLite file under
/// ./optsync-data; set OPTSYNC_DATABASE_URL=postgres://… to run several instances on one
/// PostgreSQL database. Secrets never go on the command line: Keap keys come from
/// OPTSYNC_KEAP_API_KEY, a file, or standard input; the master key that encrypts them at rest
/// from OPTSYNC_MASTER_KEY or DATA_DIR/master.key (created on first run, mode 0600).
#[derive(Debug, Parser)]
#[command(name = "optsync", version)]
pub struct Cli {
    #[command(flatten)]
    pub overrides: Overrides,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (hook routes, /healthz, /readyz) and the workers in one process.
    /// Applies migrations first. Stops gracefully on SIGTERM or Ctrl-C.
    Serve,
    /// Apply the embedded database migrations and exit.
    Migrate,
    /// Manage tenants (one Keap app each).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Configure the sending providers whose webhooks report unsubscribes, complaints and
    /// bounces for a tenant.
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// List received events with the state of their job, newest first.
    Events {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// Only events whose job is in this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Put a dead job (or all dead jobs) back in the queue, attempts reset.
    Retry {
        /// The job id (see `optsync events`).
        #[arg(required_unless_present = "dead", conflicts_with = "dead")]
        job: Option<i64>,
        /// Every dead job.
        #[arg(long)]
        dead: bool,
    },
    /// Run one reconciliation sweep of a tenant to completion, writes included, and print a
    /// report. Incremental (the opted-out list diffed against the last sweep) when a full
    /// sweep ran within the week, full otherwise; a stopped full sweep resumes from its cursor.
    Reconcile {
        app: String,
        /// Decide and report only: no write, no queued job, no state kept.
        #[arg(long)]
        dry_run: bool,
        /// Page through every contact even if an incremental sweep would do.
        #[arg(long)]
        full: bool,
    },
    /// Show the audit log: each decision about each address, with when it was honoured.
    Audit {
        #[arg(long)]
        tenant: Option<String>,
        /// Only this address.
        #[arg(long)]
        email: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Run the whole system against an in-process Keap emulator with seeded contacts, check
    /// the result against the rules, and print a report. Exits non-zero if anything is wrong.
    Demo {
        /// Contacts to seed in the emulator.
        #[arg(long, default_value_t = 1_000)]
        contacts: usize,
        /// Seed for the emulator's contacts.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateArg {
    Pending,
    Running,
    Done,
    Dead,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Add a tenant and print the Post URL to paste into Keap (alone on the last line).
    ///
    /// The Keap credential is read, in this order, from --api-key-file, standard input
    /// (--api-key-stdin), or OPTSYNC_KEAP_API_KEY; or, for OAuth, from --oauth-client-id with
    /// --oauth-client-secret-file and --oauth-refresh-token-file.
    Add {
        /// The Keap app name (the part before .infusionsoft.com).
        app: String,
        /// The URL Keap's API paths hang under (keap-sim: http://ADDR/crm).
        #[arg(long, default_value = KEAP_BASE_URL)]
        keap_base_url: String,
        /// File holding the service account key or personal access token.
        #[arg(long, value_name = "FILE", conflicts_with = "api_key_stdin")]
        api_key_file: Option<PathBuf>,
        /// Read the API key from standard input.
        #[arg(long)]
        api_key_stdin: bool,
        /// OAuth client id (instead of an API key).
        #[arg(long, requires_all = ["oauth_client_secret_file", "oauth_refresh_token_file"])]
        oauth_client_id: Option<String>,
        #[arg(long, value_name = "FILE")]
        oauth_client_secret_file: Option<PathBuf>,
        #[arg(long, value_name = "FILE")]
        oauth_refresh_token_file: Option<PathBuf>,
        /// Also accept the first 6 characters of a legacy API key as the token, as the old
        /// process_optout.php did. Weak (24 bits, leaks part of the key); refused for KeapAK
        /// keys. Only for migrating an existing setup.
        #[arg(long)]
        legacy_auth: bool,
        /// How addresses are opted out: REST v2 with XML-RPC fallback, or only one of them.
        #[arg(long, default_value = "auto", value_parser = parse_method)]
        opt_out_method: OptOutMethod,
    },
    /// List tenants.
    List,
    /// Print a tenant's Post URL, alone.
    Url { app: String },
    /// Replace a tenant's token; the old Post URL stops working at once. Prints the new one.
    RotateToken { app: String },
    /// Remove a tenant, its queue and its events. Its audit rows are kept.
    Remove { app: String },
}

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Add (or replace) a provider's settings for a tenant; prints the webhook URL to give the
    /// provider, alone on the last line. Secrets are read from files, never the command line.
    ///
    /// ses: --topic-arn (repeatable): the SNS topics this app's SES events come from; only
    /// these are accepted and only their subscriptions are confirmed.
    /// sendgrid: --public-key-file (the Signed Event Webhook's verification key).
    /// mailgun: --signing-key-file (the HTTP webhook signing key, not the API key).
    /// mandrill: --webhook-key-file, and --url if Mandrill was given another URL than the one
    /// printed (the URL is part of what Mandrill signs).
    /// postmark, mailjet: --basic-user with --basic-password-file.
    /// sparkpost, brevo: basic auth as above, or --bearer-token-file.
    Add(Box<ProviderAdd>),
    /// List a tenant's providers.
    List { app: String },
    /// Print the webhook URL to give a provider, alone.
    Url { app: String, provider: String },
}

/// What `provider add` takes.
#[derive(Debug, clap::Args)]
pub struct ProviderAdd {
    app: String,
    /// ses | sendgrid | mailgun | mandrill | postmark | sparkpost | mailjet | brevo
    provider: String,
    /// SES: an SNS topic ARN to accept (repeatable).
    #[arg(long = "topic-arn", value_name = "ARN")]
    topic_arns: Vec<String>,
    #[arg(long, value_name = "FILE")]
    public_key_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    signing_key_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    webhook_key_file: Option<PathBuf>,
    /// Mandrill: the webhook URL exactly as registered with Mandrill.
    #[arg(long)]
    url: Option<String>,
    #[arg(long)]
    basic_user: Option<String>,
    #[arg(long, value_name = "FILE")]
    basic_password_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    bearer_token_file: Option<PathBuf>,
    /// SendGrid and Mailgun: how old a signed timestamp may be, in seconds (defaults: 24 h
    /// 10 min for SendGrid, which retries for 24 h; 9 h for Mailgun).
    #[arg(long)]
    max_age_secs: Option<u64>,
}

fn parse_method(s: &str) -> Result<OptOutMethod, String> {
    s.parse()
}

fn read_secret_file(p: &PathBuf) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    let s = s.trim().to_string();
    if s.is_empty() {
        bail!("{} is empty", p.display());
    }
    Ok(s)
}

pub async fn open(settings: &Settings) -> anyhow::Result<(Store, SecretBox)> {
    let store = Store::open(&settings.database_url)
        .await
        .with_context(|| format!("opening the database {}", redact(&settings.database_url)))?;
    let secrets = SecretBox::load(settings.master_key.as_deref(), &settings.data_dir)?;
    Ok((store, secrets))
}

pub async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let settings = Settings::load(&cli.overrides)?;
    let ok = std::process::ExitCode::SUCCESS;
    match cli.command {
        Command::Demo { contacts, seed } => return crate::demo::run(contacts, seed).await,
        Command::Migrate => {
            Store::open(&settings.database_url).await?;
            println!("migrations applied to {}", redact(&settings.database_url));
        }
        Command::Serve => {
            let (store, secrets) = open(&settings).await?;
            let mut tenants =
                Tenants::new(store.clone(), secrets, Clock::System, &settings.public_url);
            if let Some(limits) = settings.keap_limits.clone() {
                tenants = tenants.with_pacing(keap::PacingConfig::new(limits));
            }
            let listen = settings.listen;
            let workers = settings.workers;
            let reconcile = settings.reconcile.then(|| crate::reconcile::SweepOptions {
                budget_share: settings.reconcile_budget_share,
                ..Default::default()
            });
            let state = AppState::new(store, tenants, settings, Clock::System);
            let running = crate::server::start(state.clone(), listen, workers).await?;
            let scheduler = reconcile.map(|opts| {
                tokio::spawn(crate::reconcile::schedule(
                    state,
                    opts,
                    running.stop_signal(),
                ))
            });
            tracing::info!(addr = %running.addr, workers, "optsync serving");
            crate::server::shutdown_signal().await;
            tracing::info!("shutting down: finishing jobs in hand");
            running.stop().await;
            if let Some(s) = scheduler {
                let _ = s.await;
            }
        }
        Command::Tenant(cmd) => {
            let (store, secrets) = open(&settings).await?;
            let tenants = Tenants::new(store.clone(), secrets, Clock::System, &settings.public_url);
            tenant(cmd, &tenants, &store).await?;
        }
        Command::Provider(cmd) => {
            let (store, secrets) = open(&settings).await?;
            let tenants = Tenants::new(store, secrets, Clock::System, &settings.public_url);
            provider(cmd, &tenants).await?;
        }
        Command::Events {
            tenant,
            state,
            limit,
        } => {
            let (store, _) = open(&settings).await?;
            let tid = tenant_id(&store, tenant.as_deref()).await?;
            let state = state.map(|s| match s {
                StateArg::Pending => JobState::Pending,
                StateArg::Running => JobState::Running,
                StateArg::Done => JobState::Done,
                StateArg::Dead => JobState::Dead,
            });
            println!(
                "{:>7}  {:<12} {:<10} {:<14} {:<10} {:<34} {:<25} {:<8} {:>4}  honoured / last error",
                "event", "tenant", "source", "kind", "contact", "email", "received", "job", "try"
            );
            for e in store.events(tid, state, limit.clamp(1, 10_000)).await? {
                let tail = match (e.honoured_at, &e.last_error) {
                    (Some(h), _) => rfc3339(h),
                    (None, Some(err)) => err.clone(),
                    (None, None) => String::new(),
                };
                println!(
                    "{:>7}  {:<12} {:<10} {:<14} {:<10} {:<34} {:<25} {:<8} {:>4}  {}",
                    e.id,
                    e.app,
                    e.source,
                    e.kind,
                    e.contact_id.map(|c| c.to_string()).unwrap_or_default(),
                    e.email.unwrap_or_default(),
                    rfc3339(e.received_at),
                    format!(
                        "{}:{}",
                        e.job_id.unwrap_or_default(),
                        e.job_state.unwrap_or_default()
                    ),
                    e.attempts.unwrap_or_default(),
                    tail
                );
            }
        }
        Command::Retry { job, dead } => {
            let (store, _) = open(&settings).await?;
            let now = Clock::System.now_ms();
            if dead {
                let n = store.retry_dead(now).await?;
                println!("{n} dead job(s) back in the queue");
            } else if let Some(id) = job {
                if !store.retry_job(id, now).await? {
                    bail!("job {id} is not dead or pending (or does not exist)");
                }
                println!("job {id} back in the queue");
            }
        }
        Command::Reconcile { app, dry_run, full } => {
            let (store, secrets) = open(&settings).await?;
            let mut tenants =
                Tenants::new(store.clone(), secrets, Clock::System, &settings.public_url);
            if let Some(limits) = settings.keap_limits.clone() {
                tenants = tenants.with_pacing(keap::PacingConfig::new(limits));
            }
            let tenant = tenants.get(&app).await?;
            let opts = crate::reconcile::SweepOptions {
                full,
                dry_run,
                budget_share: settings.reconcile_budget_share,
                ..Default::default()
            };
            let state = AppState::new(store, tenants, settings, Clock::System);
            let report = crate::reconcile::sweep(&state, &tenant, &opts).await?;
            let mut writes = 0;
            let mut dead = 0;
            if !dry_run {
                for o in crate::worker::Worker::new(state.clone()).drain().await? {
                    match o {
                        crate::worker::JobOutcome::Done { writes: w, .. } => writes += w,
                        crate::worker::JobOutcome::Dead { .. } => dead += 1,
                        _ => {}
                    }
                }
            }
            print_report(&app, &report, writes, dead);
            if !report.finished {
                return Ok(std::process::ExitCode::from(3));
            }
        }
        Command::Audit {
            tenant,
            email,
            limit,
        } => {
            let (store, _) = open(&settings).await?;
            let tid = tenant_id(&store, tenant.as_deref()).await?;
            println!(
                "{:>7}  {:<12} {:<10} {:<34} {:<24} {:<16} {:<16} {:<16} {:>5}  {:<25} honoured",
                "audit",
                "tenant",
                "contact",
                "email",
                "events",
                "before",
                "after",
                "action",
                "calls",
                "received"
            );
            for a in store
                .audit(tid, email.as_deref(), limit.clamp(1, 10_000))
                .await?
            {
                let r = &a.row;
                println!(
                    "{:>7}  {:<12} {:<10} {:<34} {:<24} {:<16} {:<16} {:<16} {:>5}  {:<25} {}",
                    a.id,
                    a.app.unwrap_or_else(|| format!("#{}", r.tenant_id)),
                    r.contact_id.map(|c| c.to_string()).unwrap_or_default(),
                    r.email,
                    r.event_ids,
                    r.status_before.clone().unwrap_or_default(),
                    r.status_after.clone().unwrap_or_default(),
                    r.action,
                    r.keap_calls,
                    rfc3339(r.received_at),
                    rfc3339(r.honoured_at)
                );
            }
        }
    }
    Ok(ok)
}

fn parse_provider(name: &str) -> anyhow::Result<crate::providers::Provider> {
    crate::providers::Provider::from_name(name).with_context(|| {
        format!("unknown provider {name:?}: ses, sendgrid, mailgun, mandrill, postmark, sparkpost, mailjet or brevo")
    })
}

async fn provider(cmd: ProviderCommand, tenants: &Tenants) -> anyhow::Result<()> {
    use crate::providers::{HttpAuth, Provider, ProviderConfig, sendgrid_key_ok};
    match cmd {
        ProviderCommand::Add(add) => {
            let ProviderAdd {
                app,
                provider,
                topic_arns,
                public_key_file,
                signing_key_file,
                webhook_key_file,
                url,
                basic_user,
                basic_password_file,
                bearer_token_file,
                max_age_secs,
            } = *add;
            let p = parse_provider(&provider)?;
            tenants.get(&app).await?;
            if max_age_secs.is_some_and(|a| a > crate::providers::MAX_SIGNED_AGE_SECS) {
                bail!(
                    "--max-age-secs may be at most {} (7 days)",
                    crate::providers::MAX_SIGNED_AGE_SECS
                );
            }
            let http = || -> anyhow::Result<HttpAuth> {
                match (&basic_user, &basic_password_file, &bearer_token_file) {
                    (Some(user), Some(f), None) => Ok(HttpAuth::Basic {
                        user: user.clone(),
                        password: read_secret_file(f)?,
                    }),
                    (None, None, Some(f)) if matches!(p, Provider::Sparkpost | Provider::Brevo) => {
                        Ok(HttpAuth::Bearer {
                            token: read_secret_file(f)?,
                        })
                    }
                    _ => bail!(
                        "{provider} needs --basic-user with --basic-password-file{}",
                        if matches!(p, Provider::Sparkpost | Provider::Brevo) {
                            ", or --bearer-token-file"
                        } else {
                            ""
                        }
                    ),
                }
            };
            let config = match p {
                Provider::Ses => {
                    if topic_arns.is_empty() || topic_arns.iter().any(|a| !a.starts_with("arn:aws"))
                    {
                        bail!(
                            "ses needs one or more --topic-arn arn:aws…:sns:REGION:ACCOUNT:TOPIC"
                        );
                    }
                    ProviderConfig::Ses {
                        topic_arns: topic_arns.clone(),
                    }
                }
                Provider::Sendgrid => {
                    let key = read_secret_file(
                        public_key_file
                            .as_ref()
                            .context("sendgrid needs --public-key-file")?,
                    )?;
                    sendgrid_key_ok(&key).map_err(anyhow::Error::msg)?;
                    ProviderConfig::Sendgrid {
                        public_key: key,
                        max_age_secs: max_age_secs
                            .unwrap_or(crate::providers::SENDGRID_MAX_AGE_SECS),
                    }
                }
                Provider::Mailgun => ProviderConfig::Mailgun {
                    signing_key: read_secret_file(
                        signing_key_file
                            .as_ref()
                            .context("mailgun needs --signing-key-file")?,
                    )?,
                    max_age_secs: max_age_secs.unwrap_or(crate::providers::MAILGUN_MAX_AGE_SECS),
                },
                Provider::Mandrill => ProviderConfig::Mandrill {
                    webhook_key: read_secret_file(
                        webhook_key_file
                            .as_ref()
                            .context("mandrill needs --webhook-key-file")?,
                    )?,
                    url: url.clone().unwrap_or_else(|| tenants.provider_url(&app, p)),
                },
                Provider::Postmark | Provider::Sparkpost | Provider::Mailjet | Provider::Brevo => {
                    ProviderConfig::Http(http()?)
                }
            };
            tenants.set_provider(&app, p, &config).await?;
            println!("{provider} configured for {app}. Give {provider} this webhook URL:");
            println!("{}", tenants.provider_url(&app, p));
        }
        ProviderCommand::List { app } => {
            let t = tenants.get(&app).await?;
            for (name, at) in tenants.store().providers(t.id).await? {
                println!("{name:<10} configured {}", rfc3339(at));
            }
        }
        ProviderCommand::Url { app, provider } => {
            let p = parse_provider(&provider)?;
            let t = tenants.get(&app).await?;
            if tenants.provider_config(&t, p).await?.is_none() {
                bail!("{provider} is not configured for {app}");
            }
            println!("{}", tenants.provider_url(&app, p));
        }
    }
    Ok(())
}

/// The id of the tenant named on the command line, if one was.
async fn tenant_id(store: &Store, app: Option<&str>) -> anyhow::Result<Option<i64>> {
    match app {
        Some(app) => Ok(Some(
            store
                .tenant_by_app(app)
                .await?
                .with_context(|| format!("unknown tenant {app:?}"))?
                .id,
        )),
        None => Ok(None),
    }
}

fn print_report(app: &str, r: &crate::reconcile::SweepReport, writes: usize, dead: usize) {
    let kind = match r.kind {
        Some(crate::reconcile::SweepKind::Full) => "full",
        _ => "incremental",
    };
    println!(
        "reconcile {app}: {kind} sweep{}{}",
        if r.resumed { " (resumed)" } else { "" },
        if r.dry_run { ", dry run" } else { "" }
    );
    println!("  pages read            {}", r.pages);
    println!("  contacts scanned      {}", r.contacts_scanned);
    if kind == "incremental" {
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

async fn tenant(cmd: TenantCommand, tenants: &Tenants, store: &Store) -> anyhow::Result<()> {
    match cmd {
        TenantCommand::Add {
            app,
            keap_base_url,
            api_key_file,
            api_key_stdin,
            oauth_client_id,
            oauth_client_secret_file,
            oauth_refresh_token_file,
            legacy_auth,
            opt_out_method,
        } => {
            let credential = match oauth_client_id {
                Some(client_id) => StoredCredential::OAuth {
                    client_id,
                    client_secret: read_secret_file(
                        oauth_client_secret_file
                            .as_ref()
                            .context("--oauth-client-secret-file")?,
                    )?,
                    refresh_token: read_secret_file(
                        oauth_refresh_token_file
                            .as_ref()
                            .context("--oauth-refresh-token-file")?,
                    )?,
                    access_token: None,
                    expires_at_ms: None,
                    token_url: None,
                },
                None => {
                    let key = if let Some(f) = &api_key_file {
                        read_secret_file(f)?
                    } else if api_key_stdin {
                        let mut s = String::new();
                        std::io::stdin()
                            .read_to_string(&mut s)
                            .context("reading the API key from stdin")?;
                        s.trim().to_string()
                    } else {
                        std::env::var("OPTSYNC_KEAP_API_KEY")
                            .unwrap_or_default()
                            .trim()
                            .to_string()
                    };
                    if key.is_empty() {
                        bail!(
                            "no Keap credential: give --api-key-file, --api-key-stdin, OPTSYNC_KEAP_API_KEY, or the --oauth-* options"
                        );
                    }
                    StoredCredential::ApiKey { key }
                }
            };
            tenants
                .add(TenantSpec {
                    app: app.clone(),
                    keap_base_url,
                    credential,
                    legacy_auth,
                    opt_out_method,
                })
                .await?;
            println!(
                "tenant {app} added. In Keap: Marketing → Settings → Email Defaults → \"When Someone Opts Out of All Email Marketing\" → Actions → Send an http post to another server, with this Post URL:"
            );
            println!("{}", tenants.post_url(&app).await?);
        }
        TenantCommand::List => {
            println!(
                "{:<20} {:<9} {:<8} {:<6} {:<40} created",
                "app", "auth", "method", "legacy", "keap base URL"
            );
            for t in store.tenants().await? {
                println!(
                    "{:<20} {:<9} {:<8} {:<6} {:<40} {}",
                    t.app,
                    t.credential_kind,
                    t.opt_out_method,
                    if t.legacy_prefix_hash.is_some() {
                        "yes"
                    } else {
                        "no"
                    },
                    t.keap_base_url,
                    rfc3339(t.created_at)
                );
            }
        }
        TenantCommand::Url { app } => println!("{}", tenants.post_url(&app).await?),
        TenantCommand::RotateToken { app } => {
            let url = tenants.rotate_token(&app).await?;
            eprintln!(
                "token rotated; the old Post URL no longer works. Update Keap's action set with:"
            );
            println!("{url}");
        }
        TenantCommand::Remove { app } => {
            tenants.remove(&app).await?;
            println!("tenant {app} removed (its audit rows are kept)");
        }
    }
    Ok(())
}
