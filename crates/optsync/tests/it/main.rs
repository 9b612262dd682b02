//! optsync end to end: the real service on a real SQLite file and a real PostgreSQL server,
//! against keap-sim, driven from the tests.

mod acme;
mod alert_rules;
mod backups;
mod config_cmd;
mod console;
mod console_limits;
mod customers;
mod esp;
mod fairness;
mod fast_path;
mod fuzz_regressions;
mod harness;
mod https;
mod in_flight;
mod intake;
mod keap_connect;
mod limits;
mod metrics;
mod metrics_outage;
mod module_graph;
mod nginx;
mod oauth;
mod outage;
mod overview;
pub mod processes;
mod promises;
mod providers_posted;
mod proxy;
mod push;
mod push_jobs;
mod queue;
mod reconcile;
mod report;
mod ses;
mod sharing;
mod state_and_schema;
mod store;
mod supervision;
mod wake;
mod worlds;

pub use harness::*;
