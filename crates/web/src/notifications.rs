//! The notifications panel every role's page shows, refreshed by the live stream
//! (`GET /notifications/stream`, which the page's browser opens itself).

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use crate::api::{Api, enc};
use crate::model::Notification;
use crate::view::{error_in, html, render};

/// How many of the newest notifications a panel shows.
const SHOWN: usize = 8;

pub(crate) fn routes() -> Router<Api> {
    Router::new().route("/ui/notifications", get(fragment))
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct Panel {
    receiver_q: String,
    items: Vec<Notification>,
    error: Option<String>,
}

async fn load(api: &Api, receiver: &str) -> Panel {
    let (mut items, error) = api
        .list::<Notification>(&format!("/notifications?receiver={}", enc(receiver)))
        .await;
    items.truncate(SHOWN);
    Panel {
        receiver_q: enc(receiver),
        items,
        error,
    }
}

/// The panel for `receiver` (`customer:…`, `driver:…`, `user:…`), rendered for a page.
pub(crate) async fn panel(api: &Api, receiver: &str) -> String {
    render(&load(api, receiver).await)
}

async fn fragment(State(api): State<Api>, Query(q): Query<HashMap<String, String>>) -> Response {
    match q.get("receiver") {
        Some(receiver) => html(&load(&api, receiver).await),
        None => error_in(
            "notifications",
            StatusCode::BAD_REQUEST,
            "the receiver query parameter is required",
        ),
    }
}
