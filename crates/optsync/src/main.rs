//! `optsync`: see `optsync --help`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OPTSYNC_LOG")
                .unwrap_or_else(|_| "optsync=info,keap=warn,keap_sim=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = optsync::cli::Cli::parse();
    match optsync::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("optsync: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
