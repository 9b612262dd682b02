//! `optsync demo` (built with the default `demo` feature, which links the Keap emulator).

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Contacts to seed in the emulator.
    #[arg(long, default_value_t = 1_000)]
    contacts: usize,
    /// Seed for the emulator's contacts.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// After the report, keep the service, the emulator and the console running until
    /// Ctrl-C, and print the console's URL with a one-time password, to click through what
    /// the demo did.
    #[arg(long)]
    keep: bool,
}

pub async fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    crate::demo::run(a.contacts, a.seed, a.keep).await
}
