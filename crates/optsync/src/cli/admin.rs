//! `optsync admin set-password|invite`: the console's accounts.

use std::io::BufRead as _;

use anyhow::bail;
use clap::Subcommand;

use crate::app::App;
use crate::clock::{Now as _, rfc3339};
use crate::console::auth::{check_new_password, hash_password};
use crate::console::invite::invite;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Set (or replace) a console account's password, read as one line from standard input
    /// (never the command line), e.g. `printf '%s\n' "$PASSWORD" | optsync admin
    /// set-password`. Stored as an Argon2id hash; the account's open sessions end. A new
    /// account is an operator's (it sees every app); a customer's stays a customer's.
    SetPassword {
        /// The account (created if new).
        #[arg(long, default_value = "admin")]
        user: String,
    },
    /// Invite a customer: prints a one-time link (valid 72 hours) with which they set their
    /// password and sign in, alone on the last line. It is under `OPTSYNC_ADMIN_PUBLIC_URL`,
    /// which must be set. The customer sees only the apps granted to them.
    Invite {
        /// The customer's email address, which becomes their account's name.
        email: String,
        /// The app to grant them. Without it the link is an onboarding link: the customer
        /// connects their own Keap app from the console, and it is granted to them.
        #[arg(long)]
        app: Option<String>,
    },
}

pub async fn run(app: &App, cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::SetPassword { user } => set_password(app, user).await,
        AdminCommand::Invite { email, app: tenant } => {
            if app.state().settings.admin_public_url.is_none() {
                bail!(
                    "set OPTSYNC_ADMIN_PUBLIC_URL (admin_public_url) to the console's address: the link is made under it"
                );
            }
            let by = format!("cli:{}", whoami());
            let i = invite(app.state(), &email, tenant.as_deref(), &by).await?;
            match &tenant {
                Some(t) => println!("invited {} to {t}", email.trim()),
                None => println!("invited {} to connect their own Keap app", email.trim()),
            }
            println!(
                "the link works once, until {}; send it to them:",
                rfc3339(i.expires_at)
            );
            println!("{}", i.link);
            Ok(())
        }
    }
}

async fn set_password(app: &App, user: String) -> anyhow::Result<()> {
    let user = user.trim().to_string();
    if user.is_empty() || user.len() > 64 || user.chars().any(char::is_control) {
        bail!("the user name must be 1 to 64 printable characters");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if let Err(why) = check_new_password(password) {
        bail!("{why}");
    }
    let hash = hash_password(password)?;
    let now = app.state().clock.now();
    app.store().set_admin_password(&user, &hash, now).await?;
    println!("password set for {user}; sign in at the admin listener's address");
    Ok(())
}

/// Who ran the command, for the action record (the login name, or "operator").
fn whoami() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "operator".into())
}
