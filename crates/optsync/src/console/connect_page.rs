//! What the console shows of connecting Keap apps: the page after a connection (Post URL,
//! Keap's click path, the wait for Keap's first post), and the "reconnect needed" banners
//! with their Reconnect buttons on the overview and an app's page.

use askama::Template;

use crate::clock::rfc3339;
use crate::error::Result;
use crate::state::AppState;
use crate::store::TenantId;

#[derive(Template)]
#[template(path = "keap_connected.html")]
pub struct ConnectedPage {
    pub csrf: String,
    pub user: String,
    pub app: String,
    /// A new app, rather than one connected again.
    pub created: bool,
    pub post_url: String,
    /// Epoch ms: a Keap post from then on is the one the page waits for.
    pub since: i64,
}

/// An app Keap refused for good.
pub struct ReconnectBanner {
    pub app: String,
    pub reason: String,
    pub since: String,
}

/// The Keap-connection part of a page: whether the console can connect apps, and the apps
/// that need connecting again.
pub struct KeapView {
    pub can_connect: bool,
    pub reconnect: Vec<ReconnectBanner>,
}

/// The banners of every app that needs reconnecting (`only`: of that tenant alone).
pub async fn keap_view(state: &AppState, only: Option<TenantId>) -> Result<KeapView> {
    let mut reconnect = Vec::new();
    for r in state.store.oauth_reconnects_needed().await? {
        if only.is_some_and(|id| id != r.tenant_id) {
            continue;
        }
        let Some(t) = state.store.tenant(r.tenant_id).await? else {
            continue;
        };
        reconnect.push(ReconnectBanner {
            app: t.app,
            reason: crate::logfmt::one_line(&r.reason).to_string(),
            since: rfc3339(r.since),
        });
    }
    Ok(KeapView {
        can_connect: state.settings.keap_oauth.is_some(),
        reconnect,
    })
}
