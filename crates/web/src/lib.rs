//! Tanda's web pages, served by the gateway in both run modes: one page each for the customer,
//! the driver, the traveller and the operator, plus the landing page. Pages are rendered on the
//! server (askama) and kept live with htmx and Server-Sent Events; htmx and its SSE extension (and RapiDoc,
//! which renders the API document at `/docs`) are vendored under `assets/`, so nothing is fetched from the internet.
//!
//! Every page talks to the system only through the public API ([`Api`]), exactly as any other
//! client would: the pages are a client, not a back door. They sign in like one too: the sign-in
//! form exchanges a password for an access token (`POST /auth/token`), kept in the `HttpOnly`
//! session cookie, and every call a page makes carries it as its bearer token, so the API decides
//! what the page's user may see and do. A page knows its user from the session alone; only an
//! operator may open a page on someone's behalf. Forms posted from another site are refused
//! before anything happens (`session`).

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tanda_core::auth::Verifier;

mod account;
mod api;
mod customer;
mod driver;
mod i18n;
mod map;
mod model;
mod notifications;
mod operator;
pub mod places;
mod session;
#[cfg(test)]
mod tests;
mod traveller;
mod view;

pub use api::{Api, ApiError};

use i18n::{Lang, Tr};
use session::{Pages, Refusal, User};
use view::{Frame, html};

/// The pages and their fragments, calling `api` for everything they show or do. `verifier`
/// checks the session token a form sends; `allowed_origins` are the origins besides this site's
/// own that may send its forms (the CORS allow-list).
pub fn router(api: Api, verifier: Arc<Verifier>, allowed_origins: &[String]) -> Router {
    let pages = Pages {
        api,
        verifier,
        allowed_origins: allowed_origins.into(),
    };
    Router::new()
        .route("/", get(home))
        .route("/assets/{file}", get(asset))
        .route("/docs", get(docs))
        .merge(account::routes())
        .merge(customer::routes())
        .merge(driver::routes())
        .merge(traveller::routes())
        .merge(operator::routes())
        .merge(map::routes())
        .merge(notifications::routes())
        .with_state(pages)
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    frame: Frame,
}

async fn home(user: Option<User>, lang: Lang) -> Response {
    let frame = match &user {
        Some(user) => Frame::of(user, "title-home", ""),
        None => Frame::guest(&lang, "title-home", ""),
    };
    html(&Home { frame })
}

#[derive(Template)]
#[template(path = "choose.html")]
struct Choose<'a> {
    frame: Frame,
    heading: String,
    action: &'a str,
    field: &'a str,
    label: String,
    value: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct Message<'a> {
    frame: Frame,
    heading: String,
    message: String,
    links: Vec<(&'a str, String)>,
}

/// What a page shows when `user` may not have it: the operator is asked for whom (`field` is the
/// query parameter naming them, `label` the key of its words), anyone else is told why not and
/// where to go instead.
fn refused_page(
    user: &User,
    refusal: Refusal,
    frame: Frame,
    action: &str,
    field: &str,
    label: &str,
) -> Response {
    let tr = user.tr;
    let (status, error, value) = match refusal {
        Refusal::ChooseWho => (StatusCode::OK, None, String::new()),
        Refusal::Invalid(named) => (
            StatusCode::BAD_REQUEST,
            Some(tr.t1("not-an-id", "id", &named)),
            named,
        ),
        Refusal::NotYours => {
            let page = Message {
                heading: tr.t("not-yours-heading"),
                message: tr.t1("not-yours", "who", user.id()),
                links: vec![(action, tr.t("not-yours-link"))],
                frame,
            };
            return (StatusCode::FORBIDDEN, html(&page)).into_response();
        }
        Refusal::WrongRole(role) => {
            let home = session::home_of(&user.caller);
            let page = Message {
                heading: tr.t("wrong-role-heading"),
                message: tr.t2("wrong-role", "role", role.as_str(), "who", user.id()),
                links: vec![(home, tr.t("wrong-role-link"))],
                frame,
            };
            return (StatusCode::FORBIDDEN, html(&page)).into_response();
        }
    };
    let page = Choose {
        heading: frame.title.clone(),
        frame,
        action,
        field,
        label: if label.is_empty() {
            String::new()
        } else {
            tr.t(label)
        },
        value,
        error,
    };
    (status, html(&page)).into_response()
}

/// `/docs`: the API's OpenAPI document (`/openapi.json`, served beside it by the gateway),
/// rendered in the browser by the vendored RapiDoc viewer. Public, like the document.
async fn docs(lang: Lang) -> Response {
    #[derive(Template)]
    #[template(path = "docs.html")]
    struct Docs {
        tr: Tr,
    }
    let mut page = html(&Docs { tr: lang.tr });
    page.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(DOCS_POLICY),
    );
    page
}

/// The viewer styles its elements inline and draws icons from `data:` images, which every other
/// page's policy refuses. This page alone allows both: it shows nobody's data and takes no input
/// worth stealing, and scripts stay this site's own, as everywhere.
const DOCS_POLICY: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; base-uri 'self'; form-action 'self'; frame-ancestors 'none'; \
     object-src 'none'";

/// The vendored scripts, the stylesheet and the map's district outline, compiled into the binary.
const ASSETS: &[(&str, &str, &str)] = &[
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
    (
        "tanda-map.js",
        "text/javascript",
        include_str!("../assets/tanda-map.js"),
    ),
    (
        "seoul-districts.geojson",
        "application/geo+json",
        include_str!("../assets/seoul-districts.geojson"),
    ),
    (
        "rapidoc-9.3.8.min.js",
        "text/javascript",
        include_str!("../assets/rapidoc-9.3.8.min.js"),
    ),
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
