//! Invites: a one-time link with which a customer sets their password and signs in. Made by
//! [`invite`] (the console's accounts page and `optsync admin invite` alike): a random
//! 256-bit token of which only the digest is stored, valid for 72 hours on the service's
//! clock, spent by the first password set through it. An invite names the app it grants,
//! or none: an onboarding link, whose customer connects their own Keap app.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::auth;
use super::respond::{Answer, ConsoleError, page, record};
use super::sign_in::MAX_USER_BYTES;
use crate::clock::{Millis, Now as _};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{NewInvite, Role};

/// How long an invite's link works.
pub const INVITE_TTL_MS: i64 = 72 * 3_600_000;
/// What a used, expired or unknown link answers.
const NOT_VALID: &str = "this invite link is not valid: it was used already or has expired";

/// An invite just made: its link (shown once) and when it stops working.
#[derive(Debug, Clone)]
pub struct Invited {
    pub link: String,
    pub expires_at: Millis,
}

/// The link for `token`: under the console's public URL when it is set, else the path alone.
pub fn link(settings: &crate::config::Settings, token: &str) -> String {
    let base = settings.admin_public_url.as_deref().unwrap_or("");
    format!("{}/invite/{token}", base.trim_end_matches('/'))
}

/// Makes an invite for `email` (a new customer account, or an existing customer's), granting
/// `app` on acceptance; recorded as done by `by`.
pub async fn invite(state: &AppState, email: &str, app: Option<&str>, by: &str) -> Result<Invited> {
    let email = email.trim();
    if email.len() > MAX_USER_BYTES || keap::EmailAddress::parse(email).is_err() {
        return Err(Error::BadInput(format!(
            "{email:?} is not an email address of at most {MAX_USER_BYTES} bytes"
        )));
    }
    if state.store.account_role(email).await? == Some(Role::Operator) {
        return Err(Error::BadInput(format!(
            "{email} is an operator's account; invites are for customers"
        )));
    }
    let tenant_id = match app {
        Some(app) => Some(state.tenants.get(app).await?.id),
        None => None,
    };
    let token = auth::random_token();
    let now = state.clock.now();
    let expires_at = now + INVITE_TTL_MS;
    state
        .store
        .create_invite(&NewInvite {
            token_hash: &auth::digest(&token),
            email,
            tenant_id,
            created_by: by,
            created_at: now,
            expires_at,
        })
        .await?;
    record(state, by, "invite", email, app).await;
    Ok(Invited {
        link: link(&state.settings, &token),
        expires_at,
    })
}

#[derive(Template)]
#[template(path = "invite.html")]
pub struct InvitePage {
    pub email: String,
    pub error: Option<String>,
    pub min_chars: usize,
    // The base template's header fields: nobody is signed in here.
    pub csrf: String,
    pub user: String,
}

/// The password form a customer's invite link opens.
#[derive(Debug, Deserialize)]
pub struct SetPassword {
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub again: String,
}

fn invite_page(email: String, error: Option<String>, status: StatusCode) -> Answer {
    let mut r = page(InvitePage {
        email,
        error,
        min_chars: auth::MIN_PASSWORD_CHARS,
        csrf: String::new(),
        user: String::new(),
    })?;
    *r.status_mut() = status;
    Ok(r)
}

/// `GET /invite/TOKEN`: the form, if the link still works.
pub async fn form(State(state): State<AppState>, Path(token): Path<String>) -> Answer {
    let now = state.clock.now();
    match state.store.open_invite(&auth::digest(&token), now).await? {
        Some(i) => invite_page(i.email, None, StatusCode::OK),
        None => Err(ConsoleError::NotFound(NOT_VALID)),
    }
}

/// `POST /invite/TOKEN`: sets the password (the rules of `admin set-password`), spends the
/// link and signs the customer in on their apps. The link is checked before the slow hash,
/// so nobody without one can make the service hash.
pub async fn accept(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(f): Form<SetPassword>,
) -> Answer {
    let token_hash = auth::digest(&token);
    let now = state.clock.now();
    let Some(open) = state.store.open_invite(&token_hash, now).await? else {
        return Err(ConsoleError::NotFound(NOT_VALID));
    };
    if let Err(why) = auth::check_new_password(&f.password) {
        return invite_page(open.email, Some(why), StatusCode::BAD_REQUEST);
    }
    if f.password != f.again {
        let why = "the two passwords differ".to_string();
        return invite_page(open.email, Some(why), StatusCode::BAD_REQUEST);
    }
    let password = f.password;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| Error::Config(format!("hashing the password: {e}")))??;
    let account = match state.store.accept_invite(&token_hash, &hash, now).await {
        Ok(Some(account)) => account,
        Ok(None) => return Err(ConsoleError::NotFound(NOT_VALID)),
        Err(Error::BadInput(why)) => return Err(ConsoleError::BadRequest(why)),
        Err(e) => return Err(e.into()),
    };
    record(&state, &account, "accept_invite", &account, None).await;
    super::pages::start_session(&state, &account).await
}
