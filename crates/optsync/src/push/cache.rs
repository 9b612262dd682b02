//! Built push clients, kept per app and provider: building one sets up an HTTP client and
//! its TLS roots, which costs more than the push itself. A client is rebuilt when its app's
//! push setting changed (its configuration, credential included, no longer matches).

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use super::{PushClient, PushConfig};
use crate::store::TenantId;

type Key = (TenantId, suppress::Provider);

#[derive(Debug, Default)]
pub struct PushClients {
    built: Mutex<HashMap<Key, ([u8; 32], PushClient)>>,
}

impl PushClients {
    /// The client for `config` of `tenant`, built once per configuration.
    pub fn get(
        &self,
        tenant: TenantId,
        config: &PushConfig,
        options: suppress::Options,
    ) -> Result<PushClient, suppress::Error> {
        let json = serde_json::to_vec(config)
            .map_err(|e| suppress::Error::Config(format!("push setting: {e}")))?;
        let digest: [u8; 32] = Sha256::digest(&json).into();
        let key = (tenant, config.provider());
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((d, client)) = built.get(&key)
            && *d == digest
        {
            return Ok(client.clone());
        }
        let client = PushClient::new(config, options)?;
        built.insert(key, (digest, client.clone()));
        Ok(client)
    }
}
