//! The Keap client against keap-sim, started in-process on 127.0.0.1.

mod after_429;
mod errors;
mod oauth;
mod ops;
mod pacing;

use std::sync::Arc;

use keap::{Credential, KeapClient, Limits, OptOutMethod, Pacer, PacingConfig};
use keap_sim::KeapSim;

pub const KEY: &str = "KeapAK-9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928";

/// A pacer without limits, for tests that are not about pacing.
pub fn unpaced() -> Arc<Pacer> {
    Arc::new(Pacer::new(PacingConfig::new(Limits {
        windows: vec![],
        daily: None,
    })))
}

pub fn client(sim: &KeapSim, method: OptOutMethod) -> KeapClient {
    KeapClient::builder(sim.crm_url(), Credential::api_key(KEY))
        .opt_out_method(method)
        .pacer(unpaced())
        .build()
        .expect("client")
}
