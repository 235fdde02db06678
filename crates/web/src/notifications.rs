//! The notifications panel every role's page shows, refreshed by the live stream
//! (`GET /notifications/stream`, which the page's browser opens itself).

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tanda_core::Problem;
use tanda_core::auth::Role;

use crate::api::{Api, enc};
use crate::i18n::Tr;
use crate::model::Notification;
use crate::session::{Pages, User};
use crate::view::{html, render};

/// How many of the newest notifications a panel shows.
const SHOWN: usize = 8;

pub(crate) fn routes() -> Router<Pages> {
    Router::new().route("/ui/notifications", get(fragment))
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct Panel {
    tr: Tr,
    receiver_q: String,
    items: Vec<Notification>,
    error: Option<String>,
}

/// The newest notifications of `receiver`. Their messages are in the language the receiver
/// chose (notify writes them); the page's own words are in the page's.
async fn load(api: &Api, tr: Tr, receiver: &str) -> Panel {
    let (mut items, error) = api
        .list::<Notification>(&format!("/notifications?receiver={}", enc(receiver)))
        .await;
    items.truncate(SHOWN);
    Panel {
        tr,
        receiver_q: enc(receiver),
        items,
        error: error.map(|e| tr.problem(&e)),
    }
}

/// The panel for `receiver` (`customer:…`, `driver:…`, `user:…`), rendered for a page.
pub(crate) async fn panel(api: &Api, tr: Tr, receiver: &str) -> String {
    render(&load(api, tr, receiver).await)
}

/// The panel of a receiver the user is (or, for an operator, any receiver).
async fn fragment(user: User, Query(q): Query<HashMap<String, String>>) -> Response {
    let receiver = q.get("receiver").map(String::as_str).unwrap_or_default();
    let (role, key, id) = match receiver.split_once(':') {
        Some(("customer", id)) => (Role::Customer, "customerId", id),
        Some(("user", id)) => (Role::Customer, "userId", id),
        Some(("driver", id)) => (Role::Driver, "driverId", id),
        _ => {
            return Problem::bad_request(
                "invalid_receiver",
                "receiver is customer:{id}, driver:{id} or user:{id}",
            )
            .into_response();
        }
    };
    match user.acting(role, key, Some(id)) {
        Ok(_) => html(&load(&user.api, user.tr, receiver).await),
        Err(refusal) => refusal.problem(),
    }
}
