//! `keap-sim`: run the Keap emulator as a server.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use keap::EmailStatus;
use keap_sim::{
    ActionSetTriggers, KeapSim, RestOptOut, SimClock, SimConfig, Throttle, ThrottleBody,
    Unauthorized401,
};

/// A local emulator of Keap's (Infusionsoft's) API for tests and demos.
///
/// Serves REST v2 under /crm/rest/v2, XML-RPC at /crm/xmlrpc/v1 and /crm/xmlrpc, OAuth's
/// consent page at /app/oauth/authorize and its token endpoint at /token, and its own JSON
/// control API under /sim (see the README). Point a client at http://LISTEN/crm as its Keap
/// base URL.
#[derive(Debug, Parser)]
#[command(name = "keap-sim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: SocketAddr,

    /// How many contacts to seed (deterministic for a given --seed).
    #[arg(long, default_value_t = 0)]
    contacts: usize,

    /// Seed for the generated contacts.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// An accepted X-Keap-API-Key value (service account key or PAT, normally `KeapAK-…`).
    /// Repeatable. Test keys only: real keys never belong on a command line.
    #[arg(long = "api-key", value_name = "KEY")]
    api_keys: Vec<String>,

    /// An OAuth client as ID:SECRET: the consent page at /app/oauth/authorize?client_id=ID&
    /// redirect_uri=URI&response_type=code&scope=full&state=S grants it a code (one use, ten
    /// minutes) that POST /token exchanges for a pair: access token 24 h, refresh token 45
    /// days and one use, all on the emulator's clock. POST /sim/oauth/revoke
    /// {"client_id": ID} withdraws its grants. Repeatable. Test clients only.
    #[arg(long = "oauth-client", value_name = "ID:SECRET")]
    oauth_clients: Vec<String>,

    /// Gateway limits. `real`: API keys get 10/s, 240/min, 30,000/day, OAuth clients
    /// 1,500/min, 150,000/day. `pat` / `oauth`: that profile for every credential. All but
    /// `off` add the app's 10,000/min, 250,000/day.
    #[arg(long, value_enum, default_value_t = ThrottleArg::Real)]
    throttle: ThrottleArg,

    /// The body of a 429: chosen by the limit hit, or always one of the three seen shapes.
    #[arg(long, value_enum, default_value_t = BodyArg::ByLimit)]
    throttle_body: BodyArg,

    /// What REST v2 PATCH …/status {"opted_in": false} does (undocumented by Keap, so the
    /// default is a guess): write Admin, write Manual, answer 200 and change nothing (noop),
    /// or answer 400 (reject).
    #[arg(long, value_enum, default_value_t = RestOptOutArg::Admin)]
    rest_opt_out: RestOptOutArg,

    /// Serve XML-RPC (on), or answer its routes as a switched-off endpoint would (off: 503
    /// with an HTML page). PUT /sim/xmlrpc {"available": BOOL} switches it at run time.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    xmlrpc: OnOff,

    /// Include `id` in a contact read that names no `fields` (unknown; off by default, as
    /// the v2 document makes `id` a field to ask for).
    #[arg(long)]
    contact_id_by_default: bool,

    /// The body of the gateway's 401: Apigee's fault, or the v2 document's Error schema.
    #[arg(long, value_enum, default_value_t = Unauthorized401Arg::Apigee)]
    unauthorized_401: Unauthorized401Arg,

    /// The status APIEmailService.optOut writes (unknown; Admin is most plausible).
    #[arg(long, default_value = "Admin", value_parser = parse_status)]
    xmlrpc_opt_out_status: EmailStatus,

    /// Refuse REST v2 opt-in from Admin (by default it is allowed).
    #[arg(long)]
    no_rest_opt_in_from_admin: bool,

    /// URL of the "When someone opts out of all email marketing" HTTP post. Its query string
    /// is kept.
    #[arg(long)]
    action_set_url: Option<String>,

    /// Which opt-outs fire the action set, comma-separated from: manual, spam, admin, api,
    /// list_unsubscribe, feedback.
    #[arg(long, value_delimiter = ',', default_value = "manual,spam")]
    action_set_on: Vec<TriggerArg>,

    /// Attempts per action-set post (retries on non-2xx, with a doubling pause).
    #[arg(long, default_value_t = 3)]
    action_set_attempts: u32,

    /// Lifetime of issued OAuth access tokens, in seconds.
    #[arg(long, default_value_t = 86_400)]
    token_lifetime: u64,

    /// Accept ?access_token= on the URL (Mashery-era clients).
    #[arg(long)]
    accept_query_token: bool,

    /// Start a manual clock (frozen at start-up) that POST /sim/clock {"advance_ms": N}
    /// moves, so throttle windows can pass instantly.
    #[arg(long)]
    manual_clock: bool,

    /// Milliseconds added to every API call before it is answered (Keap's real round trip is
    /// hundreds of milliseconds).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,

    /// The app, APP.infusionsoft.com: reported in x-keap-tenant-id, named on the consent page
    /// and in every token answer's scope (full|APP.infusionsoft.com).
    #[arg(long, default_value = "sim.infusionsoft.com")]
    tenant_id: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ThrottleArg {
    Real,
    Pat,
    Oauth,
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BodyArg {
    ByLimit,
    V2,
    Quota,
    Spike,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RestOptOutArg {
    Admin,
    Manual,
    Noop,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Unauthorized401Arg {
    Apigee,
    ErrorSchema,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TriggerArg {
    Manual,
    Spam,
    Admin,
    Api,
    ListUnsubscribe,
    Feedback,
}

fn parse_status(s: &str) -> Result<EmailStatus, String> {
    s.parse().map_err(|e: keap::UnknownStatus| e.to_string())
}

fn config(args: &Args) -> Result<SimConfig, String> {
    let oauth_clients = args
        .oauth_clients
        .iter()
        .map(|c| {
            c.split_once(':')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| format!("--oauth-client {c:?}: expected ID:SECRET"))
        })
        .collect::<Result<_, _>>()?;
    let mut triggers = ActionSetTriggers {
        manual: false,
        spam: false,
        ..ActionSetTriggers::default()
    };
    for t in &args.action_set_on {
        match t {
            TriggerArg::Manual => triggers.manual = true,
            TriggerArg::Spam => triggers.spam = true,
            TriggerArg::Admin => triggers.admin = true,
            TriggerArg::Api => triggers.api = true,
            TriggerArg::ListUnsubscribe => triggers.list_unsubscribe = true,
            TriggerArg::Feedback => triggers.feedback = true,
        }
    }
    let throttle = match args.throttle {
        ThrottleArg::Real => Throttle::Real,
        ThrottleArg::Pat => Throttle::from_name("pat").unwrap_or(Throttle::Real),
        ThrottleArg::Oauth => Throttle::from_name("oauth").unwrap_or(Throttle::Real),
        ThrottleArg::Off => Throttle::Off,
    };
    Ok(SimConfig {
        api_keys: args.api_keys.clone(),
        oauth_clients,
        access_token_lifetime: Duration::from_secs(args.token_lifetime),
        accept_query_token: args.accept_query_token,
        throttle,
        throttle_body: match args.throttle_body {
            BodyArg::ByLimit => ThrottleBody::ByLimit,
            BodyArg::V2 => ThrottleBody::V2,
            BodyArg::Quota => ThrottleBody::QuotaViolation,
            BodyArg::Spike => ThrottleBody::SpikeArrest,
        },
        rest_opt_out: match args.rest_opt_out {
            RestOptOutArg::Admin => RestOptOut::Set(EmailStatus::Admin),
            RestOptOutArg::Manual => RestOptOut::Set(EmailStatus::Manual),
            RestOptOutArg::Noop => RestOptOut::SilentNoOp,
            RestOptOutArg::Reject => RestOptOut::Reject,
        },
        xmlrpc_available: args.xmlrpc == OnOff::On,
        contact_id_by_default: args.contact_id_by_default,
        unauthorized_401: match args.unauthorized_401 {
            Unauthorized401Arg::Apigee => Unauthorized401::Apigee,
            Unauthorized401Arg::ErrorSchema => Unauthorized401::ErrorSchema,
        },
        xmlrpc_opt_out_status: args.xmlrpc_opt_out_status,
        rest_opt_in_from_admin: !args.no_rest_opt_in_from_admin,
        action_set_url: args.action_set_url.clone(),
        action_set_triggers: triggers,
        action_set_attempts: args.action_set_attempts,
        tenant_id: args.tenant_id.clone(),
        latency: Duration::from_millis(args.latency_ms),
        ..SimConfig::default()
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "keap_sim=info".into()),
        )
        .init();
    let args = Args::parse();
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keap-sim: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let clock = if args.manual_clock {
        SimClock::manual(SimClock::system().now_ms())
    } else {
        SimClock::system()
    };
    let sim = match KeapSim::builder()
        .config(cfg)
        .clock(clock)
        .listen(args.listen)
        .seed(args.contacts, args.seed)
        .start()
        .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("keap-sim: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "keap-sim listening on {} — Keap base URL {} — {} contacts (seed {})",
        sim.base_url(),
        sim.crm_url(),
        args.contacts,
        args.seed
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
