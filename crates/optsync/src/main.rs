//! `optsync`: see `optsync --help`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = optsync::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("OPTSYNC_LOG")
        .unwrap_or_else(|_| cli.command.default_log_filter().into());
    // Colour only for a person at a terminal: journald and files get plain text.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // JSON lines for a log pipeline: every line carries its span's fields (job, tenant,
    // subject; route) as `span` and the enclosing ones as `spans`.
    match std::env::var("OPTSYNC_LOG_FORMAT").as_deref() {
        Ok("json") => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
        Ok("text") | Err(_) => logs.init(),
        Ok(other) => {
            eprintln!("optsync: OPTSYNC_LOG_FORMAT={other:?}: expected text or json");
            return std::process::ExitCode::FAILURE;
        }
    }
    match optsync::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("optsync: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
