//! Tanda's web pages, served by the gateway in both run modes: one page each for the customer,
//! the driver, the traveller and the operator, plus the landing page. Pages are rendered on the
//! server (askama) and kept live with htmx and Server-Sent Events; htmx and its SSE extension are
//! vendored under `assets/`, so nothing is fetched from the internet.
//!
//! Every page talks to the system only through the public API ([`Api`]), exactly as any other
//! client would: the pages are a client, not a back door.

use askama::Template;
use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

mod api;
mod customer;
mod driver;
mod model;
mod notifications;
mod operator;
pub mod places;
mod traveller;
mod view;

pub use api::{Api, ApiError};

/// The pages and their fragments, calling `api` for everything they show or do.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/assets/{file}", get(asset))
        .merge(customer::routes())
        .merge(driver::routes())
        .merge(traveller::routes())
        .merge(operator::routes())
        .merge(notifications::routes())
        .with_state(api)
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home<'a> {
    title: &'a str,
    nav: &'a str,
}

async fn home() -> Response {
    view::html(&Home {
        title: "Welcome",
        nav: "",
    })
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignIn<'a> {
    title: &'a str,
    nav: &'a str,
    heading: &'a str,
    action: &'a str,
    field: &'a str,
    label: &'a str,
    suggestion: String,
    error: Option<String>,
}

/// "Who are you?": the pages have no accounts, only the ids the API takes.
fn signin(
    title: &str,
    nav: &str,
    action: &str,
    field: &str,
    label: &str,
    error: Option<String>,
) -> Response {
    let suggestion = format!("{nav}-{}", &tanda_core::id::new_id()[9..13]);
    let page = SignIn {
        title,
        nav,
        heading: title,
        action,
        field,
        label,
        suggestion,
        error,
    };
    let status = if page.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (status, view::html(&page)).into_response()
}

/// The vendored scripts and the stylesheet, compiled into the binary.
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "htmx-2.0.11.min.js",
        "text/javascript",
        include_str!("../assets/htmx-2.0.11.min.js"),
    ),
    (
        "htmx-ext-sse-2.2.4.js",
        "text/javascript",
        include_str!("../assets/htmx-ext-sse-2.2.4.js"),
    ),
    (
        "tanda.js",
        "text/javascript",
        include_str!("../assets/tanda.js"),
    ),
    ("tanda.css", "text/css", include_str!("../assets/tanda.css")),
];

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => tanda_core::Problem::not_found("asset", &file).into_response(),
    }
}
