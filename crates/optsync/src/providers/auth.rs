//! Basic auth and bearer tokens, for the providers that sign nothing.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Reject, Request};

#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "auth", rename_all = "snake_case")]
pub enum HttpAuth {
    Basic { user: String, password: String },
    Bearer { token: String },
}

/// Constant-time equality of two secrets of any length (compared as digests).
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
}

impl HttpAuth {
    pub fn check(&self, req: &Request<'_>) -> Result<(), Reject> {
        let header = req
            .header("authorization")
            .ok_or_else(|| Reject::Unauthorized("no Authorization header".into()))?;
        let ok = match self {
            Self::Basic { user, password } => {
                let given = header
                    .strip_prefix("Basic ")
                    .and_then(|b| {
                        base64::engine::general_purpose::STANDARD
                            .decode(b.trim())
                            .ok()
                    })
                    .unwrap_or_default();
                same_secret(&given, format!("{user}:{password}").as_bytes())
            }
            Self::Bearer { token } => {
                let given = header.strip_prefix("Bearer ").unwrap_or_default().trim();
                same_secret(given.as_bytes(), token.as_bytes())
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Reject::Unauthorized("wrong credentials".into()))
        }
    }
}
