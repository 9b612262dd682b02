//! The operator's Keap developer app, through which the console connects Keap apps: its
//! client, Keap's consent page, token endpoint and API base, and the redirect URI Keap sends
//! the browser back to (the console's own URL + `/keap/callback`).

use url::Url;

use super::{Secret, Values};
use crate::error::{Error, Result};

/// Where the console's OAuth callback hangs under `admin_public_url`.
pub const CALLBACK_PATH: &str = "/keap/callback";

/// The settings of the console's "Connect a Keap app".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeapOAuth {
    pub client_id: String,
    pub client_secret: Secret,
    pub authorize_url: Url,
    pub token_url: Url,
    /// The API base a connected app gets.
    pub api_url: Url,
    /// `admin_public_url` + [`CALLBACK_PATH`], as registered with Keap.
    pub redirect_uri: String,
}

impl KeapOAuth {
    /// Whether the API base is an `http` emulator on this machine (checked at load: a plain
    /// URL is only ever a loopback one).
    pub fn api_is_plain(&self) -> bool {
        self.api_url.scheme() == "http"
    }
}

/// The developer app from the settings: none without a client id; with one, the secret and
/// the console's own URL are required and every URL must be https (or http on loopback).
pub fn from_values(v: &Values, admin_public_url: Option<&str>) -> Result<Option<KeapOAuth>> {
    let id = v.text("keap_client_id")?;
    let secret = v.text("keap_client_secret")?;
    let (client_id, client_secret) = match (id, secret) {
        (None, None) => return Ok(None),
        (Some(id), Some(secret)) => (id.trim().to_string(), Secret::from(secret)),
        _ => {
            return Err(Error::Config(
                "keap_client_id and keap_client_secret (OPTSYNC_KEAP_CLIENT_ID, OPTSYNC_KEAP_CLIENT_SECRET or _FILE) go together".into(),
            ));
        }
    };
    let Some(console) = admin_public_url else {
        return Err(Error::Config(
            "connecting Keap apps needs admin_public_url (OPTSYNC_ADMIN_PUBLIC_URL): Keap sends the browser back to it + /keap/callback".into(),
        ));
    };
    let console = secure_url("admin_public_url", console)?;
    let redirect_uri = format!("{}{CALLBACK_PATH}", console.as_str().trim_end_matches('/'));
    Ok(Some(KeapOAuth {
        client_id,
        client_secret,
        authorize_url: secure_url(
            "keap_authorize_url",
            &v.get::<String>("keap_authorize_url")?,
        )?,
        token_url: secure_url("keap_token_url", &v.get::<String>("keap_token_url")?)?,
        api_url: secure_url("keap_api_url", &v.get::<String>("keap_api_url")?)?,
        redirect_uri,
    }))
}

/// An `https` URL, or an `http` one on a loopback address (an emulator in tests): codes,
/// tokens and the client secret travel on these.
pub fn secure_url(name: &str, raw: &str) -> Result<Url> {
    let u = Url::parse(raw.trim())
        .map_err(|e| Error::Config(format!("{name} {raw:?} is not a URL: {e}")))?;
    match u.scheme() {
        "https" => Ok(u),
        "http" if loopback(&u) => Ok(u),
        _ => Err(Error::Config(format!(
            "{name} {raw:?} must be https (http only on a loopback address)"
        ))),
    }
}

fn loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Values {
        Values::from_file_text(text).unwrap()
    }

    #[test]
    fn urls_are_https_or_loopback_http() {
        assert!(secure_url("x", "https://accounts.infusionsoft.com/app").is_ok());
        assert!(secure_url("x", "http://127.0.0.1:9000/token").is_ok());
        assert!(secure_url("x", "http://[::1]:9000/token").is_ok());
        assert!(secure_url("x", "http://localhost/token").is_ok());
        assert!(secure_url("x", "http://10.0.0.5/token").is_err());
        assert!(secure_url("x", "http://keap.example/token").is_err());
        assert!(secure_url("x", "ftp://127.0.0.1/").is_err());
    }

    #[test]
    fn the_developer_app_needs_its_secret_and_the_consoles_url() {
        assert_eq!(from_values(&values(""), None).unwrap(), None);
        let mut v = values("keap_client_id = \"dev\"");
        assert!(from_values(&v, Some("https://console.example")).is_err());
        v.set("keap_client_secret", "s3cret");
        assert!(from_values(&v, None).is_err(), "no admin_public_url");
        assert!(
            from_values(&v, Some("http://10.0.0.5:9090")).is_err(),
            "Keap would send the code over plain http"
        );
        let k = from_values(&v, Some("https://console.example/"))
            .unwrap()
            .unwrap();
        assert_eq!(k.redirect_uri, "https://console.example/keap/callback");
        assert_eq!(k.token_url.as_str(), "https://api.infusionsoft.com/token");
        assert!(!k.api_is_plain());
        v.set("keap_token_url", "http://keap.example/token");
        assert!(from_values(&v, Some("https://console.example")).is_err());
    }
}
