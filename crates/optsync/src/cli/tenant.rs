//! `optsync tenant add|list|url|rotate-token|legacy-off|remove`.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use keap::OptOutMethod;

use super::read_secret_file;
use super::table::Table;
use crate::app::App;
use crate::clock::rfc3339;
use crate::tenant::{KEAP_BASE_URL, StoredCredential, TenantSpec};

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Add a tenant and print the Post URL to paste into Keap (alone on the last line).
    ///
    /// The Keap credential is read, in this order, from --api-key-file, standard input
    /// (--api-key-stdin), the file OPTSYNC_KEAP_API_KEY_FILE names, or OPTSYNC_KEAP_API_KEY;
    /// or, for OAuth, from --oauth-client-id with --oauth-client-secret-file and
    /// --oauth-refresh-token-file.
    Add(Box<TenantAdd>),
    /// List tenants.
    List,
    /// Print a tenant's Post URL, alone.
    Url { app: String },
    /// Replace a tenant's token; the old Post URL (and any legacy 6-character token) stops
    /// working at once. Prints the new one.
    RotateToken { app: String },
    /// Stop accepting a tenant's legacy 6-character token (`tenant add --legacy-auth`); its
    /// full Post URL keeps working. Do this once Keap's action set uses the new Post URL.
    LegacyOff { app: String },
    /// Remove a tenant, its queue and its events. Its audit rows are kept.
    Remove { app: String },
}

#[derive(Debug, clap::Args)]
pub struct TenantAdd {
    /// The Keap app name (the part before .infusionsoft.com).
    app: String,
    /// The URL Keap's API paths hang under; must be https (keap-sim: http://ADDR/crm with
    /// --allow-http).
    #[arg(long, default_value = KEAP_BASE_URL)]
    keap_base_url: String,
    /// Accept an http:// Keap base URL: only for a local emulator such as keap-sim.
    #[arg(long)]
    allow_http: bool,
    /// File holding the service account key or personal access token.
    #[arg(long, value_name = "FILE", conflicts_with = "api_key_stdin")]
    api_key_file: Option<PathBuf>,
    /// Read the API key from standard input.
    #[arg(long)]
    api_key_stdin: bool,
    /// OAuth client id (instead of an API key).
    #[arg(long, requires_all = ["oauth_client_secret_file", "oauth_refresh_token_file"])]
    oauth_client_id: Option<String>,
    #[arg(long, value_name = "FILE")]
    oauth_client_secret_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    oauth_refresh_token_file: Option<PathBuf>,
    /// Also accept the first 6 characters of a legacy API key as the token, as the old
    /// process_optout.php did. Weak (24 bits, leaks part of the key); refused for KeapAK
    /// keys. Only for migrating an existing setup.
    #[arg(long)]
    legacy_auth: bool,
    /// How addresses are opted out: REST v2 with XML-RPC fallback, or only one of them.
    #[arg(long, default_value = "auto", value_parser = parse_method)]
    opt_out_method: OptOutMethod,
}

fn parse_method(s: &str) -> Result<OptOutMethod, String> {
    s.parse()
}

impl TenantAdd {
    /// The credential, from a file, standard input or the environment; never argv.
    fn credential(&self) -> anyhow::Result<StoredCredential> {
        if let Some(client_id) = &self.oauth_client_id {
            let file = |f: &Option<PathBuf>, flag: &str| {
                read_secret_file(f.as_ref().with_context(|| flag.to_string())?)
            };
            return Ok(StoredCredential::OAuth {
                client_id: client_id.clone(),
                client_secret: file(&self.oauth_client_secret_file, "--oauth-client-secret-file")?,
                refresh_token: file(&self.oauth_refresh_token_file, "--oauth-refresh-token-file")?,
                access_token: None,
                expires_at_ms: None,
                token_url: None,
            });
        }
        let key = if let Some(f) = &self.api_key_file {
            read_secret_file(f)?
        } else if self.api_key_stdin {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the API key from stdin")?;
            s.trim().to_string()
        } else if let Some(p) = crate::config::process_env("OPTSYNC_KEAP_API_KEY_FILE") {
            read_secret_file(p.trim())?
        } else {
            std::env::var("OPTSYNC_KEAP_API_KEY")
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        if key.is_empty() {
            bail!(
                "no Keap credential: give --api-key-file, --api-key-stdin, OPTSYNC_KEAP_API_KEY(_FILE), or the --oauth-* options"
            );
        }
        Ok(StoredCredential::ApiKey { key })
    }
}

pub async fn run(app: &App, cmd: TenantCommand) -> anyhow::Result<()> {
    let tenants = app.tenants();
    match cmd {
        TenantCommand::Add(add) => {
            let credential = add.credential()?;
            let name = add.app.clone();
            tenants
                .add(TenantSpec {
                    app: add.app,
                    keap_base_url: add.keap_base_url,
                    credential,
                    legacy_auth: add.legacy_auth,
                    opt_out_method: add.opt_out_method,
                    allow_http: add.allow_http,
                })
                .await?;
            println!(
                "tenant {name} added. In Keap: Marketing → Settings → Email Defaults → \"When Someone Opts Out of All Email Marketing\" → Actions → Send an http post to another server, with this Post URL:"
            );
            print_post_url(&tenants.post_url(&name).await?);
        }
        TenantCommand::List => {
            let mut t = Table::new(&[
                "app",
                "auth",
                "method",
                "legacy",
                "keap base URL",
                "created",
            ]);
            for r in app.store().tenants().await? {
                t.row(vec![
                    r.app,
                    r.credential_kind.to_string(),
                    r.opt_out_method.to_string(),
                    if r.legacy_prefix_hash.is_some() {
                        "yes"
                    } else {
                        "no"
                    }
                    .into(),
                    r.keap_base_url,
                    rfc3339(r.created_at),
                ]);
            }
            t.print();
        }
        TenantCommand::Url { app: name } => print_post_url(&tenants.post_url(&name).await?),
        TenantCommand::RotateToken { app: name } => {
            let url = tenants.rotate_token(&name).await?;
            eprintln!(
                "token rotated; the old Post URL no longer works. Update Keap's action set with:"
            );
            println!("{url}");
        }
        TenantCommand::LegacyOff { app: name } => {
            if tenants.disable_legacy(&name).await? {
                println!("legacy token switched off for {name}; only the full Post URL works");
            } else {
                println!("{name} had no legacy token; nothing changed");
            }
        }
        TenantCommand::Remove { app: name } => {
            tenants.remove(&name).await?;
            println!("tenant {name} removed (its audit rows are kept)");
        }
    }
    Ok(())
}

/// Prints a Post URL, with a warning on standard error when Keap could not post to it.
fn print_post_url(url: &str) {
    if let Some(why) = unreachable_by_keap(url) {
        eprintln!(
            "warning: Keap cannot post to this URL ({why}); set OPTSYNC_PUBLIC_URL (or \
             public_url) to the https address Keap reaches this service at"
        );
    }
    println!("{url}");
}

/// Why Keap (which posts only to public https URLs) could not reach `url`, if it could not.
fn unreachable_by_keap(url: &str) -> Option<&'static str> {
    let u = url::Url::parse(url).ok()?;
    if u.scheme() != "https" {
        return Some("it is not https");
    }
    let private = match u.host()? {
        url::Host::Domain(d) => d == "localhost" || d.ends_with(".localhost"),
        url::Host::Ipv4(ip) => {
            ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified()
        }
        url::Host::Ipv6(ip) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_unique_local()
                || ip.is_unicast_link_local()
        }
    };
    private.then_some("it names a loopback or private address")
}

#[cfg(test)]
mod tests {
    use super::unreachable_by_keap;

    #[test]
    fn post_urls_keap_cannot_reach_are_named() {
        assert!(unreachable_by_keap("http://optsync.example.com/hooks/keap/x").is_some());
        for private in [
            "https://127.0.0.1:8443/hooks/keap/x",
            "https://10.1.2.3/hooks/keap/x",
            "https://192.168.0.9/hooks/keap/x",
            "https://[::1]/hooks/keap/x",
            "https://[fd00::1]/hooks/keap/x",
            "https://localhost/hooks/keap/x",
        ] {
            assert_eq!(
                unreachable_by_keap(private),
                Some("it names a loopback or private address"),
                "{private}"
            );
        }
        assert_eq!(
            unreachable_by_keap("https://optsync.example.com/hooks/keap/x"),
            None
        );
    }
}
