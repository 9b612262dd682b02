//! Connecting a Keap app through Keap's OAuth consent, the service behind the console's
//! "Connect a Keap app" and "Reconnect": the authorize URL a flow sends the browser to, and
//! what its callback does with the code — exchanged once with the operator's developer app,
//! the app read from the grant's `scope`, then a new tenant with the OAuth credential, or,
//! for an app already there, its credential replaced and its blocked jobs resumed.

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::clock::Now as _;
use crate::config::KeapOAuth;
use crate::error::{Error, Result};
use crate::oauth_tokens::PairSeal;
use crate::state::AppState;
use crate::tenant::{StoredCredential, TenantSpec, validate_app};

/// The suffix of the host a grant's `scope` names (`full|xy123.infusionsoft.com`).
const KEAP_HOST_SUFFIX: &str = ".infusionsoft.com";

/// What a completed connection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    pub app: String,
    /// A new tenant, rather than an app connected again.
    pub created: bool,
}

/// Whose flow it is: an operator connects any app; a customer connects a new app (granted to
/// them) or reconnects one of theirs, never an app another account has connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connector {
    Operator,
    Customer { account: String, apps: Vec<String> },
}

impl Connector {
    /// Refuses a customer's grant of an app that is here already and not theirs.
    fn may_take(&self, app: &str, exists: bool) -> Result<()> {
        match self {
            Connector::Customer { apps, .. } if exists && !apps.iter().any(|a| a == app) => {
                Err(Error::BadInput(format!(
                    "the Keap app {app} is connected here under another account: nothing changed; ask the service's operator"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The consent page's URL for one flow: Keap shows it to the app's owner and sends the
/// browser back to the redirect URI with `code` and this `state`.
pub fn authorize_url(k: &KeapOAuth, state: &str) -> Url {
    let mut u = k.authorize_url.clone();
    u.query_pairs_mut()
        .append_pair("client_id", &k.client_id)
        .append_pair("redirect_uri", &k.redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", "full")
        .append_pair("state", state);
    u
}

/// The tenant name of the app a grant names: `xy123.infusionsoft.com` → `xy123`.
pub fn app_name(host: &str) -> Result<String> {
    let host = host.trim().to_ascii_lowercase();
    let name = host.strip_suffix(KEAP_HOST_SUFFIX).unwrap_or(&host);
    validate_app(name)?;
    Ok(name.to_string())
}

fn settings(state: &AppState) -> Result<&KeapOAuth> {
    state.settings.keap_oauth.as_ref().ok_or_else(|| {
        Error::Config("connecting Keap apps needs OPTSYNC_KEAP_CLIENT_ID and its secret".into())
    })
}

/// Exchanges the callback's code (Keap takes a code once: a replayed one is refused and
/// nothing is created) and connects the app it names; `expected`: a reconnect's app, which
/// the grant must name; `who`: whose flow it is, and so which apps it may take.
pub async fn complete(
    state: &AppState,
    code: &str,
    expected: Option<&str>,
    who: &Connector,
) -> Result<Connected> {
    let k = settings(state)?;
    let client = keap::OAuthClient::new(
        k.client_id.clone(),
        SecretString::from(k.client_secret.to_string()),
        k.token_url.clone(),
        state.clock.clone(),
    )?;
    let grant = client.exchange_code(code, &k.redirect_uri).await?;
    let host = grant
        .app()
        .ok_or_else(|| Error::BadInput("Keap's answer names no app in its scope".into()))?;
    let app = app_name(host)?;
    if let Some(e) = expected.filter(|e| *e != app) {
        return Err(Error::BadInput(format!(
            "access was allowed to the Keap app {app}, but {e} was to be reconnected: nothing changed"
        )));
    }
    let tokens = &grant.tokens;
    let credential = StoredCredential::OAuth {
        client_id: k.client_id.clone(),
        client_secret: k.client_secret.to_string(),
        refresh_token: tokens.refresh_token.expose_secret().to_string(),
        access_token: Some(tokens.access_token.expose_secret().to_string()),
        expires_at_ms: Some(tokens.expires_at_ms),
        token_url: Some(k.token_url.to_string()),
    };
    let pair = PairSeal::new(state.tenants.secrets().clone(), &app).seal(tokens)?;
    let now = state.clock.now();
    let existing = state.store.tenant_by_app(&app).await?;
    who.may_take(&app, existing.is_some())?;
    let created = match existing {
        Some(t) => {
            let sealed = credential.seal(state.tenants.secrets(), &app)?;
            state
                .store
                .reconnect_oauth_tenant(t.id, &sealed, &pair, now)
                .await?;
            false
        }
        None => {
            let (t, _token) = state.tenants.add(spec(k, &app, credential)).await?;
            state.store.connect_oauth_tokens(t.id, &pair, now).await?;
            if let Connector::Customer { account, .. } = who {
                state.store.grant_app(account, t.id, now).await?;
            }
            true
        }
    };
    tracing::info!(%app, created, "Keap app connected through the console");
    Ok(Connected { app, created })
}

fn spec(k: &KeapOAuth, app: &str, credential: StoredCredential) -> TenantSpec {
    TenantSpec {
        app: app.to_string(),
        keap_base_url: k.api_url.as_str().trim_end_matches('/').to_string(),
        credential,
        legacy_auth: false,
        opt_out_method: keap::OptOutMethod::Auto,
        // The setting was held to https, or http on a loopback address, when it was read.
        allow_http: k.api_is_plain(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_takes_only_new_apps_or_their_own() {
        let c = Connector::Customer {
            account: "c".into(),
            apps: vec!["mine".into()],
        };
        assert!(c.may_take("new", false).is_ok());
        assert!(c.may_take("mine", true).is_ok());
        assert!(c.may_take("theirs", true).is_err());
        assert!(Connector::Operator.may_take("theirs", true).is_ok());
    }

    #[test]
    fn the_app_is_the_first_label_of_keaps_host() {
        assert_eq!(app_name("xy123.infusionsoft.com").unwrap(), "xy123");
        assert_eq!(app_name("XY123.infusionsoft.com").unwrap(), "xy123");
        assert_eq!(app_name("other.example").unwrap(), "other.example");
        assert!(app_name("bad/app.infusionsoft.com").is_err());
        assert!(app_name("").is_err());
    }
}
