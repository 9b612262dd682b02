//! optsync: keeps the opt-out status of every email address of a Keap contact in sync.

pub mod rules;
