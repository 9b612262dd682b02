//! Credentials: API keys (`X-Keap-API-Key`), OAuth bearer tokens, and the `/token` endpoint's
//! grants. As Keap documents them (`reference/keap-api.md` §16): an authorization code works
//! once and only for a few minutes; a refresh token works once (the old one dies the moment a
//! new pair is issued) and expires after 45 days; an access token after 24 hours. Every
//! lifetime runs on the emulator's clock.

use std::collections::HashMap;

use rand::Rng;
use subtle::ConstantTimeEq;

/// Who a gateway call is made as; throttles are kept per principal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    ApiKey(String),
    OAuthClient(String),
}

impl Principal {
    pub fn throttle_key(&self) -> String {
        match self {
            Self::ApiKey(k) => format!("key:{k}"),
            Self::OAuthClient(c) => format!("client:{c}"),
        }
    }
}

/// A token or code: whose it is and until when (epoch ms) it is good.
#[derive(Debug, Clone)]
struct Issued {
    client: String,
    expires_ms: u64,
}

/// An authorization code, bound to the `redirect_uri` it was handed out for (if any).
#[derive(Debug, Clone)]
struct Code {
    issued: Issued,
    redirect_uri: Option<String>,
}

#[derive(Debug, Default)]
pub struct Auth {
    api_keys: Vec<String>,
    clients: HashMap<String, String>,
    access: HashMap<String, Issued>,
    refresh: HashMap<String, Issued>,
    codes: HashMap<String, Code>,
}

/// The lifetimes and the app a grant is made under (from the emulator's settings and clock).
#[derive(Debug, Clone)]
pub struct GrantTerms {
    pub now_ms: u64,
    pub access_ms: u64,
    pub refresh_ms: u64,
    pub code_ms: u64,
    /// `APP.infusionsoft.com`, named in the answer's `scope` (`full|APP.infusionsoft.com`).
    pub tenant_id: String,
}

/// A successful grant.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenGrant {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub scope: String,
}

/// Which grant was made (the control API counts refreshes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    AuthorizationCode,
    RefreshToken,
}

/// An OAuth error, as `{"error": …, "error_description": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantError {
    InvalidClient,
    InvalidGrant(&'static str),
    UnsupportedGrantType,
    InvalidRequest(&'static str),
}

fn random_token(prefix: &str) -> String {
    let mut rng = rand::rng();
    let bytes: [u8; 24] = rng.random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// Takes `key` out of `map` if it is there, `client`'s, and not expired. Presenting it
/// spends it either way: a code or refresh token is never good twice.
fn spend<T>(
    map: &mut HashMap<String, T>,
    key: &str,
    client: &str,
    now_ms: u64,
    issued: impl Fn(&T) -> &Issued,
) -> Option<T> {
    let owned = map.get(key).is_some_and(|v| issued(v).client == client);
    if !owned {
        return None;
    }
    map.remove(key).filter(|v| issued(v).expires_ms > now_ms)
}

impl Auth {
    pub fn new(api_keys: &[String], clients: &[(String, String)]) -> Self {
        Self {
            api_keys: api_keys.to_vec(),
            clients: clients.iter().cloned().collect(),
            ..Self::default()
        }
    }

    pub fn add_api_key(&mut self, key: &str) {
        if !self.api_keys.iter().any(|k| k == key) {
            self.api_keys.push(key.to_string());
        }
    }

    pub fn add_client(&mut self, id: &str, secret: &str) {
        self.clients.insert(id.to_string(), secret.to_string());
    }

    pub fn has_client(&self, id: &str) -> bool {
        self.clients.contains_key(id)
    }

    pub fn check_api_key(&self, key: &str) -> Option<Principal> {
        self.api_keys
            .iter()
            .any(|k| bool::from(k.as_bytes().ct_eq(key.as_bytes())))
            .then(|| Principal::ApiKey(key.to_string()))
    }

    pub fn check_bearer(&self, token: &str, now_ms: u64) -> Option<Principal> {
        match self.access.get(token) {
            Some(i) if i.expires_ms > now_ms => Some(Principal::OAuthClient(i.client.clone())),
            _ => None,
        }
    }

    /// Issues an authorization code for a client, as the consent screen does when the user
    /// allows. A code given for a `redirect_uri` is exchanged only with that same URI.
    pub fn issue_code(
        &mut self,
        client_id: &str,
        redirect_uri: Option<&str>,
        terms: &GrantTerms,
    ) -> Option<String> {
        if !self.clients.contains_key(client_id) {
            return None;
        }
        let code = random_token("code-");
        let issued = Issued {
            client: client_id.to_string(),
            expires_ms: terms.now_ms + terms.code_ms,
        };
        self.codes.insert(
            code.clone(),
            Code {
                issued,
                redirect_uri: redirect_uri.map(str::to_string),
            },
        );
        Some(code)
    }

    /// Withdraws every grant of a client (the app's owner removed its access): its access
    /// and refresh tokens and unused codes stop working at once. How many were withdrawn.
    pub fn revoke(&mut self, client_id: &str) -> Option<usize> {
        if !self.clients.contains_key(client_id) {
            return None;
        }
        let before = self.access.len() + self.refresh.len() + self.codes.len();
        self.access.retain(|_, i| i.client != client_id);
        self.refresh.retain(|_, i| i.client != client_id);
        self.codes.retain(|_, c| c.issued.client != client_id);
        Some(before - self.access.len() - self.refresh.len() - self.codes.len())
    }

    fn authenticate_client(&self, id: &str, secret: &str) -> Result<(), GrantError> {
        match self.clients.get(id) {
            Some(s) if bool::from(s.as_bytes().ct_eq(secret.as_bytes())) => Ok(()),
            _ => Err(GrantError::InvalidClient),
        }
    }

    fn mint(&mut self, client_id: &str, terms: &GrantTerms) -> TokenGrant {
        let access = random_token("sim-at-");
        let refresh = random_token("sim-rt-");
        let issued = |ms: u64| Issued {
            client: client_id.to_string(),
            expires_ms: terms.now_ms + ms,
        };
        self.access.insert(access.clone(), issued(terms.access_ms));
        self.refresh
            .insert(refresh.clone(), issued(terms.refresh_ms));
        TokenGrant {
            access_token: access,
            token_type: "bearer",
            expires_in: terms.access_ms / 1000,
            refresh_token: refresh,
            scope: format!("full|{}", terms.tenant_id),
        }
    }

    /// Runs a `/token` grant for an authenticated client.
    pub fn grant(
        &mut self,
        client: (&str, &str),
        form: &HashMap<String, String>,
        terms: &GrantTerms,
    ) -> Result<(GrantKind, TokenGrant), GrantError> {
        self.authenticate_client(client.0, client.1)?;
        let get = |k: &'static str| {
            form.get(k)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
                .ok_or(GrantError::InvalidRequest(k))
        };
        match get("grant_type")? {
            "authorization_code" => {
                let code = get("code")?;
                let c = spend(&mut self.codes, code, client.0, terms.now_ms, |c| &c.issued)
                    .ok_or(GrantError::InvalidGrant("Invalid authorization code"))?;
                if let Some(bound) = &c.redirect_uri
                    && form.get("redirect_uri") != Some(bound)
                {
                    return Err(GrantError::InvalidGrant("Redirect URI mismatch"));
                }
                Ok((GrantKind::AuthorizationCode, self.mint(client.0, terms)))
            }
            "refresh_token" => {
                let token = get("refresh_token")?;
                spend(&mut self.refresh, token, client.0, terms.now_ms, |i| i)
                    .ok_or(GrantError::InvalidGrant("Invalid refresh token"))?;
                Ok((GrantKind::RefreshToken, self.mint(client.0, terms)))
            }
            _ => Err(GrantError::UnsupportedGrantType),
        }
    }
}
