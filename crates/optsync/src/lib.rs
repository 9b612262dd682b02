//! optsync: keeps the opt-out status of every email address of a Keap contact in sync.
//!
//! Events come in (Keap's opt-out post, the providers' webhooks, reconciliation sweeps), are
//! stored with a job in one transaction, and workers honour them against Keap: read the
//! contact, decide with the pure [`rules`], opt out what must be, and record each decision in
//! an append-only audit log. [`app`] wires it all; ARCHITECTURE.md is the map.

pub mod acme;
pub mod app;
pub mod capped_body;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod console;
pub mod crypto;
pub mod current_job;
#[cfg(feature = "demo")]
pub mod demo;
pub mod doctor;
pub mod error;
pub mod exposition;
pub mod fuzzing;
pub mod housekeeping;
pub mod http;
pub mod keap_clients;
pub mod keap_connect;
pub mod layout;
pub mod logfmt;
pub mod oauth_tokens;
pub mod post_hints;
pub mod providers;
pub mod push;
pub mod queue;
pub mod reconcile;
pub mod reconcile_run;
pub mod report;
pub mod retry;
pub mod rules;
pub mod state;
pub mod store;
pub mod supervise;
pub mod telemetry;
pub mod tenant;
pub mod tls;
pub mod worker;

pub use error::{Error, Result};
