//! Rotating an app's Post URL from its page: the same [`crate::tenant::Tenants::rotate_token`]
//! as `optsync tenant rotate-token`; the old URL stops working at once, the new one is
//! shown once.

use axum::extract::{Path, State};

use super::forms::{CsrfForm, Empty};
use super::pages::tenant_page;
use super::respond::{Answer, ConsoleError, record};
use crate::state::AppState;

pub async fn rotate(
    State(state): State<AppState>,
    Path(app): Path<String>,
    f: CsrfForm<Empty>,
) -> Answer {
    let url = match state.tenants.rotate_token(&app).await {
        Ok(u) => u,
        Err(crate::Error::UnknownTenant(_)) => return Err(ConsoleError::NotFound("no such app")),
        Err(e) => return Err(e.into()),
    };
    record(&state, &f.session.user, "rotate_post_url", &app, None).await;
    tenant_page(&state, f.session, &app, Some(url)).await
}
