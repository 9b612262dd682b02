//! The operator's "Accounts" page: every console account with its role and apps, and the
//! form that invites a customer (the same [`super::invite::invite`] as `optsync admin
//! invite`); the new link is shown once, on the page that answers the form.

use askama::Template;
use axum::extract::State;
use serde::Deserialize;

use super::authz::Viewer;
use super::format::{Moment, moment};
use super::forms::CsrfForm;
use super::invite::{Invited, invite as make_invite};
use super::respond::{Answer, ConsoleError, page};
use crate::state::AppState;

pub struct AccountView {
    pub name: String,
    pub role: String,
    pub apps: String,
}

#[derive(Template)]
#[template(path = "accounts.html")]
pub struct AccountsPage {
    pub csrf: String,
    pub user: String,
    pub accounts: Vec<AccountView>,
    /// The apps an invite may grant.
    pub apps: Vec<String>,
    /// The invite just made: for whom, its link and until when it works.
    pub invited: Option<(String, String, Moment)>,
}

/// The invite form.
#[derive(Debug, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    pub email: String,
    /// Empty: an onboarding link (the customer connects their own Keap app).
    #[serde(default)]
    pub app: String,
}

async fn render(state: &AppState, v: Viewer, invited: Option<(String, Invited)>) -> Answer {
    let accounts = state
        .store
        .accounts()
        .await?
        .into_iter()
        .map(|a| AccountView {
            role: a.role.to_string(),
            apps: match (a.role, a.apps.is_empty()) {
                (crate::store::Role::Operator, _) => "every app".into(),
                (_, true) => "none yet".into(),
                _ => a.apps.join(", "),
            },
            name: a.name,
        })
        .collect();
    let apps = state
        .store
        .tenants()
        .await?
        .into_iter()
        .map(|t| t.app)
        .collect();
    page(AccountsPage {
        csrf: v.session.csrf,
        user: v.session.user,
        accounts,
        apps,
        invited: invited.map(|(email, i)| (email, i.link, moment(Some(i.expires_at)))),
    })
}

pub async fn page_of_accounts(State(state): State<AppState>, v: Viewer) -> Answer {
    render(&state, v, None).await
}

/// Invites a customer; the answer shows the link once.
pub async fn invite(State(state): State<AppState>, v: Viewer, f: CsrfForm<InviteForm>) -> Answer {
    let email = f.form.email.trim().to_string();
    let app = Some(f.form.app.trim()).filter(|a| !a.is_empty());
    let invited = match make_invite(&state, &email, app, &v.session.user).await {
        Ok(i) => i,
        Err(crate::Error::BadInput(why)) => return Err(ConsoleError::BadRequest(why)),
        Err(crate::Error::UnknownTenant(_)) => {
            return Err(ConsoleError::BadRequest("no such app".into()));
        }
        Err(e) => return Err(e.into()),
    };
    render(&state, v, Some((email, invited))).await
}
