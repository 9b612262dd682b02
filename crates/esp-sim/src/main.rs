//! `esp-sim`: run the sending-provider suppression-API emulator as a server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use esp_sim::{
    Credential, EspSim, MailgunRegion, Provider, RateLimit, ReAdd, SesReason, SimClock, SimConfig,
};

/// A local emulator of the sending providers' suppression-list APIs, for tests and demos.
///
/// Serves, each under its own prefix: SES v2 at /ses/REGION, SendGrid at /sendgrid, Mailgun at
/// /mailgun/us and /mailgun/eu, Postmark at /postmark, SparkPost at /sparkpost, Mandrill at
/// /mandrill, Mailjet at /mailjet, Brevo at /brevo; and its JSON control API under /sim
/// (GET /sim/lists/PROVIDER lists every entry with its scope). Point a client at
/// http://LISTEN/PREFIX as the provider's API base URL.
#[derive(Debug, Parser)]
#[command(name = "esp-sim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8095")]
    listen: SocketAddr,

    /// An accepted credential as PROVIDER=SECRET (repeatable). SES takes
    /// ACCESS_KEY_ID:SECRET_ACCESS_KEY, Mailjet PUBLIC:PRIVATE, the others their API key or
    /// server token. Test keys only: real keys never belong on a command line.
    #[arg(long = "credential", value_name = "PROVIDER=SECRET")]
    credentials: Vec<Credential>,

    /// A file of PROVIDER=SECRET lines (blank lines and # comments skipped), read at start.
    #[arg(long, value_name = "PATH")]
    credentials_file: Option<PathBuf>,

    /// The SES account's enforced suppression reasons (GET /v2/email/account
    /// SuppressionAttributes.SuppressedReasons), in every region, comma-separated from BOUNCE
    /// and COMPLAINT. An empty value enforces none (an account from before 2019-11-25).
    #[arg(long, default_value = "BOUNCE,COMPLAINT", value_name = "REASONS", value_parser = parse_reasons)]
    ses_suppressed_reasons: Reasons,

    /// A provider's rate limit as PROVIDER=N/s, N/min, N/h or PROVIDER=off (repeatable).
    /// Defaults: sendgrid=600/min, brevo=150/s, none for the others.
    #[arg(long = "rate-limit", value_name = "PROVIDER=RATE", value_parser = parse_rate)]
    rate_limits: Vec<(Provider, Option<RateLimit>)>,

    /// A Mailgun sending domain as us:DOMAIN or eu:DOMAIN (repeatable). None: every domain
    /// exists in both regions.
    #[arg(long = "mailgun-domain", value_name = "REGION:DOMAIN", value_parser = parse_domain)]
    mailgun_domains: Vec<(MailgunRegion, String)>,

    /// A Postmark message stream of the server (repeatable). None: every stream id exists.
    #[arg(long = "postmark-stream", value_name = "ID")]
    postmark_streams: Vec<String>,

    /// Milliseconds before a new Postmark suppression becomes active ("can take a minute").
    #[arg(long, default_value_t = 60_000)]
    postmark_activation_delay_ms: u64,

    /// Most addresses in one Postmark create call (unconfirmed; 50).
    #[arg(long, default_value_t = 50)]
    postmark_max_per_call: usize,

    /// Largest request body accepted; larger ones get 413.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,

    /// How long an injected `timeout` fault holds a request before answering 504, in ms.
    #[arg(long, default_value_t = 60_000)]
    fault_timeout_ms: u64,

    /// What SendGrid, Mailgun and Mandrill answer when an address already on the list is
    /// added again (undocumented): `accept` as a first add, or `refuse` (SendGrid echoes only
    /// new addresses, Mailgun's form insert is a 400 "Address already exists", Mandrill says
    /// "added": false).
    #[arg(long, value_enum, default_value_t = ReAddArg::Accept)]
    readd: ReAddArg,

    /// Start a manual clock (frozen at start-up) that POST /sim/clock {"advance_ms": N}
    /// moves: rate windows, SigV4 request times and Postmark's delay follow it.
    #[arg(long)]
    manual_clock: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReAddArg {
    Accept,
    Refuse,
}

/// The SES reasons a flag names (a newtype, so that clap takes the whole list at once).
#[derive(Debug, Clone)]
struct Reasons(Vec<SesReason>);

fn parse_reasons(s: &str) -> Result<Reasons, String> {
    s.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| r.parse::<SesReason>().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()
        .map(Reasons)
}

fn parse_rate(s: &str) -> Result<(Provider, Option<RateLimit>), String> {
    let (p, rate) = s.split_once('=').ok_or("expected PROVIDER=RATE")?;
    let p: Provider = p.parse().map_err(|e| format!("{e}"))?;
    if rate == "off" {
        return Ok((p, None));
    }
    Ok((p, Some(rate.parse().map_err(|e| format!("{e}"))?)))
}

fn parse_domain(s: &str) -> Result<(MailgunRegion, String), String> {
    match s.split_once(':') {
        Some(("us", d)) if !d.is_empty() => Ok((MailgunRegion::Us, d.to_string())),
        Some(("eu", d)) if !d.is_empty() => Ok((MailgunRegion::Eu, d.to_string())),
        _ => Err("expected us:DOMAIN or eu:DOMAIN".into()),
    }
}

fn credentials(args: &Args) -> Result<Vec<Credential>, String> {
    let mut all = args.credentials.clone();
    if let Some(path) = &args.credentials_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--credentials-file {}: {e}", path.display()))?;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            all.push(
                line.parse()
                    .map_err(|e| format!("--credentials-file: {e}"))?,
            );
        }
    }
    Ok(all)
}

fn config(args: &Args) -> Result<SimConfig, String> {
    let mut cfg = SimConfig {
        credentials: credentials(args)?,
        ses_suppressed_reasons: args.ses_suppressed_reasons.0.clone(),
        mailgun_domains: args.mailgun_domains.clone(),
        postmark_streams: args.postmark_streams.clone(),
        postmark_activation_delay: Duration::from_millis(args.postmark_activation_delay_ms),
        postmark_max_per_call: args.postmark_max_per_call,
        max_body_bytes: args.max_body_bytes,
        fault_timeout_delay: Duration::from_millis(args.fault_timeout_ms),
        readd: match args.readd {
            ReAddArg::Accept => ReAdd::Accept,
            ReAddArg::Refuse => ReAdd::Refuse,
        },
        ..SimConfig::default()
    };
    for (p, rate) in &args.rate_limits {
        match rate {
            Some(r) => cfg.rate_limits.insert(*p, *r),
            None => cfg.rate_limits.remove(p),
        };
    }
    Ok(cfg)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "esp_sim=info".into()),
        )
        .init();
    let args = Args::parse();
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("esp-sim: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let clock = if args.manual_clock {
        SimClock::manual(SimClock::system().now_ms())
    } else {
        SimClock::system()
    };
    let sim = match EspSim::builder()
        .config(cfg)
        .clock(clock)
        .listen(args.listen)
        .start()
        .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("esp-sim: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "esp-sim listening on {} — e.g. SES {}, SendGrid {}",
        sim.base_url(),
        sim.url("/ses/us-east-1"),
        sim.url("/sendgrid")
    );
    shutdown_signal().await;
    sim.shutdown().await;
    std::process::ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
