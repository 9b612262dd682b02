//! `optsync`: see `optsync --help`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = optsync::cli::Cli::parse();
    let default = cli.command.default_log_filter();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OPTSYNC_LOG")
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match optsync::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("optsync: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
