//! `optsync demo`: runs the service against the Keap emulator, linked only with the `demo`
//! feature (a source checkout's default). A build without it (the package) keeps the command
//! so that it can say why it does nothing.

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

#[cfg(feature = "demo")]
pub async fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    crate::demo::run(a.contacts, a.seed, a.keep).await
}

/// The emulator is not linked into this build: say so, and where the demo lives.
#[cfg(not(feature = "demo"))]
pub async fn run(_: DemoArgs) -> anyhow::Result<ExitCode> {
    eprintln!(
        "optsync: the demo is not in this build (it was built without the `demo` feature, \
         which links the Keap emulator). Run it from a source checkout: \
         cargo run -p optsync -- demo"
    );
    Ok(ExitCode::from(2))
}
