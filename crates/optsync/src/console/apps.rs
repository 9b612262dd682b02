//! A customer's home page: the apps granted to them, or, before any, the way to connect
//! their own Keap app.

use askama::Template;

use super::authz::Viewer;
use super::respond::{Answer, page};

#[derive(Template)]
#[template(path = "apps.html")]
pub struct AppsPage {
    pub csrf: String,
    pub user: String,
    pub apps: Vec<String>,
}

pub fn page_for(v: Viewer) -> Answer {
    page(AppsPage {
        apps: v.apps().to_vec(),
        csrf: v.session.csrf,
        user: v.session.user,
    })
}
