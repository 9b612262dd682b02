//! Credentials: API keys (`X-Keap-API-Key`), OAuth bearer tokens, and the `/token` endpoint's
//! grants with rotating refresh tokens (a refresh token works once).

use std::collections::HashMap;

use rand::Rng;

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

#[derive(Debug, Default)]
pub struct Auth {
    api_keys: Vec<String>,
    clients: HashMap<String, String>,
    /// access token → (client id, expiry epoch ms)
    access: HashMap<String, (String, u64)>,
    /// refresh token → client id
    refresh: HashMap<String, String>,
    /// authorization code → client id
    codes: HashMap<String, String>,
}

/// A successful grant.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenGrant {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub scope: &'static str,
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

    pub fn check_api_key(&self, key: &str) -> Option<Principal> {
        self.api_keys
            .iter()
            .any(|k| k == key)
            .then(|| Principal::ApiKey(key.to_string()))
    }

    pub fn check_bearer(&self, token: &str, now_ms: u64) -> Option<Principal> {
        match self.access.get(token) {
            Some((client, exp)) if *exp > now_ms => Some(Principal::OAuthClient(client.clone())),
            _ => None,
        }
    }

    /// Issues an authorization code for a client, as the consent screen would.
    pub fn issue_code(&mut self, client_id: &str) -> Option<String> {
        if !self.clients.contains_key(client_id) {
            return None;
        }
        let code = random_token("code-");
        self.codes.insert(code.clone(), client_id.to_string());
        Some(code)
    }

    fn authenticate_client(&self, id: &str, secret: &str) -> Result<(), GrantError> {
        match self.clients.get(id) {
            Some(s) if s == secret => Ok(()),
            _ => Err(GrantError::InvalidClient),
        }
    }

    fn mint(&mut self, client_id: &str, now_ms: u64, lifetime_ms: u64) -> TokenGrant {
        let access = random_token("sim-at-");
        let refresh = random_token("sim-rt-");
        self.access.insert(
            access.clone(),
            (client_id.to_string(), now_ms + lifetime_ms),
        );
        self.refresh.insert(refresh.clone(), client_id.to_string());
        TokenGrant {
            access_token: access,
            token_type: "bearer",
            expires_in: lifetime_ms / 1000,
            refresh_token: refresh,
            scope: "full",
        }
    }

    /// Runs a `/token` grant. Using a refresh token consumes it.
    pub fn grant(
        &mut self,
        client: (&str, &str),
        form: &HashMap<String, String>,
        now_ms: u64,
        lifetime_ms: u64,
    ) -> Result<TokenGrant, GrantError> {
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
                match self.codes.remove(code) {
                    Some(owner) if owner == client.0 => {
                        Ok(self.mint(client.0, now_ms, lifetime_ms))
                    }
                    _ => Err(GrantError::InvalidGrant("Invalid authorization code")),
                }
            }
            "refresh_token" => {
                let token = get("refresh_token")?;
                match self.refresh.get(token) {
                    Some(owner) if owner == client.0 => {
                        self.refresh.remove(token);
                        Ok(self.mint(client.0, now_ms, lifetime_ms))
                    }
                    _ => Err(GrantError::InvalidGrant("Invalid refresh token")),
                }
            }
            _ => Err(GrantError::UnsupportedGrantType),
        }
    }
}
