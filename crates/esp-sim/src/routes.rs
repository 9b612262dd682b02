//! The HTTP routes: each provider's API under its prefix, behind its gate, and `/sim` control.

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};

use crate::gate::gate;
use crate::provider::Provider;
use crate::state::Shared;
use crate::{brevo, control, mailgun, mailjet, mandrill, postmark, sendgrid, ses, sparkpost};

fn gated(routes: Router<Arc<Shared>>, shared: &Arc<Shared>, p: Provider) -> Router<Arc<Shared>> {
    routes.route_layer(from_fn_with_state((Arc::clone(shared), p), gate))
}

fn ses_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/ses/{region}/v2/email/suppression/addresses",
            put(ses::put),
        )
        .route(
            "/ses/{region}/v2/email/suppression/addresses/{email}",
            get(ses::get).delete(ses::delete),
        )
        .route("/ses/{region}/v2/email/account", get(ses::account))
}

fn sendgrid_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/sendgrid/v3/asm/suppressions/global", post(sendgrid::add))
        .route(
            "/sendgrid/v3/asm/suppressions/global/{email}",
            get(sendgrid::get).delete(sendgrid::delete),
        )
}

fn mailgun_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/mailgun/{region}/v3/{domain}/{list}", post(mailgun::add))
        .route(
            "/mailgun/{region}/v3/{domain}/{list}/{address}",
            get(mailgun::get).delete(mailgun::delete),
        )
}

fn postmark_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/postmark/message-streams/{stream}/suppressions",
            post(postmark::create),
        )
        .route(
            "/postmark/message-streams/{stream}/suppressions/delete",
            post(postmark::delete),
        )
        .route(
            "/postmark/message-streams/{stream}/suppressions/dump",
            get(postmark::dump),
        )
}

fn sparkpost_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/sparkpost/api/v1/suppression-list", put(sparkpost::bulk))
        .route("/sparkpost/api/v1/suppression-list/", put(sparkpost::bulk))
        .route(
            "/sparkpost/api/v1/suppression-list/{email}",
            put(sparkpost::put_one)
                .get(sparkpost::get_one)
                .delete(sparkpost::delete_one),
        )
}

fn mandrill_routes() -> Router<Arc<Shared>> {
    let mut r = Router::new();
    for suffix in ["", ".json"] {
        r = r
            .route(
                &format!("/mandrill/api/1.0/rejects/add{suffix}"),
                post(mandrill::add),
            )
            .route(
                &format!("/mandrill/api/1.0/rejects/delete{suffix}"),
                post(mandrill::delete),
            )
            .route(
                &format!("/mandrill/api/1.0/rejects/list{suffix}"),
                post(mandrill::list),
            );
    }
    r
}

fn mailjet_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/mailjet/v3/REST/contact", post(mailjet::create))
        .route(
            "/mailjet/v3/REST/contact/{id}",
            get(mailjet::get).put(mailjet::put),
        )
}

fn brevo_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/brevo/v3/contacts", post(brevo::create))
        .route(
            "/brevo/v3/contacts/{identifier}",
            get(brevo::get).put(brevo::update),
        )
        .route("/brevo/v3/smtp/blockedContacts", get(brevo::blocked))
        .route(
            "/brevo/v3/smtp/blockedContacts/{email}",
            axum::routing::delete(brevo::unblock),
        )
}

fn control_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/sim/lists/{provider}", get(control::list))
        .route(
            "/sim/stats",
            get(control::stats).delete(control::reset_stats),
        )
        .route("/sim/faults", post(control::faults))
        .route("/sim/outage", put(control::outage))
        .route("/sim/rate-limit", put(control::rate_limit))
        .route("/sim/ses/suppressed-reasons", put(control::ses_reasons))
        .route("/sim/mandrill/allowlist", post(control::mandrill_allow))
        .route("/sim/clock", post(control::clock))
}

/// Every provider's routes behind its gate, and the control API.
pub fn router(shared: Arc<Shared>) -> Router {
    let providers = [
        (ses_routes(), Provider::Ses),
        (sendgrid_routes(), Provider::Sendgrid),
        (mailgun_routes(), Provider::Mailgun),
        (postmark_routes(), Provider::Postmark),
        (sparkpost_routes(), Provider::Sparkpost),
        (mandrill_routes(), Provider::Mandrill),
        (mailjet_routes(), Provider::Mailjet),
        (brevo_routes(), Provider::Brevo),
    ];
    let mut app = control_routes();
    for (routes, p) in providers {
        app = app.merge(gated(routes, &shared, p));
    }
    app.with_state(shared)
}
