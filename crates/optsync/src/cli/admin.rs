//! `optsync admin set-password`: the console's sign-in.

use crate::clock::Now as _;
use std::io::BufRead as _;

use anyhow::bail;
use clap::Subcommand;

use crate::app::App;
use crate::console::auth::{MIN_PASSWORD_CHARS, hash_password};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Set (or replace) a console account's password, read as one line from standard input
    /// (never the command line), e.g. `printf '%s\n' "$PASSWORD" | optsync admin
    /// set-password`. Stored as an Argon2id hash; the account's open sessions end.
    SetPassword {
        /// The account (created if new).
        #[arg(long, default_value = "admin")]
        user: String,
    },
}

pub async fn run(app: &App, cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::SetPassword { user } => {
            let user = user.trim().to_string();
            if user.is_empty() || user.len() > 64 || user.chars().any(char::is_control) {
                bail!("the user name must be 1 to 64 printable characters");
            }
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.chars().count() < MIN_PASSWORD_CHARS {
                bail!("the password must be at least {MIN_PASSWORD_CHARS} characters");
            }
            let hash = hash_password(password)?;
            let now = app.state().clock.now();
            app.store().set_admin_password(&user, &hash, now).await?;
            println!("password set for {user}; sign in at the admin listener's address");
        }
    }
    Ok(())
}
