//! `optsync doctor`: for each app, checked live and said in plain words — the credential, the
//! quota left, REST, XML-RPC and the days to its sunset, the opt-out path that works, blocked
//! and dead jobs, the last Keap post and the last sweep. An app is unhealthy when its
//! credential is broken or no opt-out path is known to work; with a probe address, each path
//! is tried on it and the one that works is recorded.

use crate::clock::Millis;
use crate::clock::Now as _;
use crate::logfmt::one_line;
use keap::{Api, EmailAddress, KeapClient, OptOutMethod};

use crate::clock::rfc3339;
use crate::error::Result;
use crate::state::AppState;
use crate::store::{EventSource, JobState, OptOutApi, TenantRow};

/// The day Keap switches XML-RPC off (Keap/Thryv's migration guide: no extensions).
pub const XMLRPC_SUNSET_MS: i64 = 1_798_675_200_000; // 2026-12-31T00:00:00Z

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub what: &'static str,
    /// `None`: information, not a verdict.
    pub ok: Option<bool>,
    pub detail: String,
}

/// What the doctor found for one app.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub app: String,
    pub checks: Vec<Check>,
    pub credential_ok: bool,
    /// An opt-out path is known to work (or was just proven by the probe).
    pub opt_out_path: Option<OptOutApi>,
    /// Push credentials a provider refused or could not read with.
    pub push_failures: usize,
}

impl Diagnosis {
    pub fn healthy(&self) -> bool {
        self.credential_ok && self.opt_out_path.is_some() && self.push_failures == 0
    }

    fn say(&mut self, what: &'static str, ok: Option<bool>, detail: impl Into<String>) {
        self.checks.push(Check {
            what,
            ok,
            detail: detail.into(),
        });
    }
}

/// Examines one app; `probe` is an address the operator owns and agrees to opt out.
pub async fn examine(
    state: &AppState,
    tenant: &TenantRow,
    probe: Option<&EmailAddress>,
) -> Result<Diagnosis> {
    let mut d = Diagnosis {
        app: tenant.app.clone(),
        checks: Vec::new(),
        credential_ok: false,
        opt_out_path: None,
        push_failures: 0,
    };
    let client = match state.clients.client(tenant) {
        Ok(c) => c.scoped(),
        Err(e) => {
            d.say("credential", Some(false), format!("cannot be used: {e}"));
            return Ok(d);
        }
    };
    let xmlrpc_up = check_apis(state, &client, &mut d).await;
    if let Some(address) = probe {
        d.opt_out_path = probe_paths(state, tenant, &client, address, &mut d).await?;
    } else {
        d.opt_out_path = known_path(tenant, xmlrpc_up, &mut d);
    }
    check_queue(state, tenant, &mut d).await?;
    check_pushes(state, tenant, &mut d).await?;
    Ok(d)
}

/// Each push credential, with one read call at its provider.
async fn check_pushes(state: &AppState, tenant: &TenantRow, d: &mut Diagnosis) -> Result<()> {
    let options = suppress::Options::default();
    for config in crate::push::load(&state.store, state.tenants.secrets(), tenant).await? {
        let outcome = match crate::push::PushClient::new(&config, options.clone()) {
            Ok(client) => client.check().await,
            Err(e) => Err(e),
        };
        let name = &config.provider;
        match outcome {
            Ok(()) => d.say(
                "push",
                Some(true),
                format!("{name}: {} readable", config.scope()),
            ),
            Err(e) => {
                d.push_failures += 1;
                d.say(
                    "push",
                    Some(false),
                    format!("{name} for {}: {e}", tenant.app),
                );
            }
        }
    }
    Ok(())
}

/// The credential and REST (one cheap call), the quota, and XML-RPC; whether XML-RPC answers.
async fn check_apis(state: &AppState, client: &KeapClient, d: &mut Diagnosis) -> bool {
    match client.probe_rest().await {
        Ok(()) => {
            d.credential_ok = true;
            d.say("credential", Some(true), "Keap accepts it");
            d.say("REST v2", Some(true), "reachable");
        }
        Err(keap::Error::Unauthorized(why)) => {
            d.say("credential", Some(false), format!("Keap refuses it: {why}"))
        }
        Err(keap::Error::ReconnectNeeded(why)) => d.say(
            "credential",
            Some(false),
            format!("RECONNECT NEEDED: Keap refused the app's OAuth grant ({why}); its jobs are blocked until the app is connected again"),
        ),
        Err(e) => d.say("REST v2", Some(false), format!("not reachable: {e}")),
    }
    let b = client.pacer().budget();
    if let (Some(left), Some(limit)) = (b.daily_remaining, b.daily_limit) {
        let low = u64::from(left) * 10 < u64::from(limit);
        d.say(
            "quota",
            Some(!low),
            format!("{left} of {limit} calls left today"),
        );
    }
    let days = (Millis(XMLRPC_SUNSET_MS) - state.clock.now()).div_euclid(86_400_000);
    let sunset = if days > 0 {
        format!("Keap switches it off on 2026-12-31, in {days} days")
    } else {
        "past Keap's sunset of 2026-12-31".to_string()
    };
    match client.probe_xmlrpc().await {
        Ok(()) => {
            d.say("XML-RPC", Some(true), format!("reachable; {sunset}"));
            true
        }
        Err(e) => {
            d.say("XML-RPC", None, format!("not reachable ({e}); {sunset}"));
            false
        }
    }
}

/// The path known to work without writing anything: the learned one, or XML-RPC while it
/// answers (its opt-out is documented).
fn known_path(t: &TenantRow, xmlrpc_up: bool, d: &mut Diagnosis) -> Option<OptOutApi> {
    let learned = t.opt_out_path.filter(|p| allowed(t.opt_out_method, *p));
    let when = t.opt_out_path_at.map(rfc3339).unwrap_or_default();
    let path = match (learned, xmlrpc_up) {
        (Some(OptOutApi::XmlRpc), false) => None,
        (Some(p), _) => Some(p),
        (None, true) if allowed(t.opt_out_method, OptOutApi::XmlRpc) => Some(OptOutApi::XmlRpc),
        (None, _) => None,
    };
    match path {
        Some(p) if learned == Some(p) => {
            d.say("opt-out path", Some(true), format!("{p}, last worked {when}"))
        }
        Some(p) => d.say(
            "opt-out path",
            Some(true),
            format!("{p} (documented; not yet used for this app)"),
        ),
        None => d.say(
            "opt-out path",
            Some(false),
            "NONE: XML-RPC is unavailable and the REST PATCH has not been proven for this app. Opt-outs are blocked until a path works; run `optsync doctor APP --probe-opt-out ADDRESS` with an address you own",
        ),
    }
    path
}

fn allowed(method: OptOutMethod, path: OptOutApi) -> bool {
    match method {
        OptOutMethod::Auto => true,
        OptOutMethod::Rest => path == OptOutApi::Rest,
        OptOutMethod::XmlRpc => path == OptOutApi::XmlRpc,
    }
}

/// Tries each path on the operator's address and records the first that works.
async fn probe_paths(
    state: &AppState,
    t: &TenantRow,
    client: &KeapClient,
    address: &EmailAddress,
    d: &mut Diagnosis,
) -> Result<Option<OptOutApi>> {
    let mut found = None;
    for api in [Api::Rest, Api::XmlRpc] {
        if !allowed(t.opt_out_method, api.into()) {
            continue;
        }
        let report = client
            .opt_out_via(address, "optsync doctor: opt-out path probe", &[api], false)
            .await?;
        let said = report
            .attempts
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        d.say("probe", Some(report.verified), format!("{address}: {said}"));
        if report.verified && found.is_none() {
            found = Some(OptOutApi::from(api));
        }
    }
    match found {
        Some(p) => {
            state
                .store
                .record_opt_out_path(t.id, p, state.clock.now())
                .await?;
            d.say("opt-out path", Some(true), format!("{p}, proven just now"));
        }
        None => d.say(
            "opt-out path",
            Some(false),
            "NONE: no path opted the probe address out. Opt-outs for this app are blocked",
        ),
    }
    Ok(found)
}

/// Blocked and dead jobs, the last Keap post and the last sweep.
/// Jobs Keap keeps failing (an outage, a refused key): said long before any is buried.
async fn check_failing(state: &AppState, t: &TenantRow, d: &mut Diagnosis) -> Result<()> {
    let f = state.store.failing_jobs(t.id).await?;
    let Some(oldest) = f.oldest_created_at.filter(|_| f.count > 0) else {
        d.say("failing jobs", Some(true), "none");
        return Ok(());
    };
    let bury_at = oldest + state.settings.bury_after.as_millis() as i64;
    d.say(
        "failing jobs",
        Some(false),
        format!(
            "{} retrying with backoff, the oldest queued {}; last error: {}; none is buried before {}",
            f.count,
            rfc3339(oldest),
            one_line(f.last_error.as_deref().unwrap_or("?")),
            rfc3339(bury_at)
        ),
    );
    Ok(())
}

async fn check_queue(state: &AppState, t: &TenantRow, d: &mut Diagnosis) -> Result<()> {
    let counts = state.store.tenant_job_counts(t.id).await?;
    let n = |s: JobState| counts.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    let (blocked, dead) = (n(JobState::Blocked), n(JobState::Dead));
    d.say(
        "jobs",
        Some(blocked == 0 && dead == 0),
        format!(
            "{} pending, {blocked} blocked, {dead} dead (see `optsync events --tenant {} --state blocked|dead`)",
            n(JobState::Pending),
            t.app
        ),
    );
    check_failing(state, t, d).await?;
    let post = state
        .store
        .last_received(t.id, EventSource::KeapPost)
        .await?;
    d.say(
        "last Keap post",
        None,
        post.map_or("none received yet".into(), rfc3339),
    );
    let sweep = state.store.sweep(t.id).await?;
    d.say(
        "last sweep",
        None,
        match sweep {
            Some(s) => format!(
                "{} sweep {}, started {}",
                s.kind,
                s.state,
                rfc3339(s.started_at)
            ),
            None => "none yet".into(),
        },
    );
    Ok(())
}
