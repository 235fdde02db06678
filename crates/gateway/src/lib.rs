//! The gateway: the single entry point clients talk to. In all-in-one mode it routes to the
//! services' routers in the same process; in distributed mode it is a reverse proxy to each
//! service's own address. Either way every request gets a request id, CORS headers, a body limit,
//! metrics and a problem response for unknown paths, each caller's writes are held to a rate,
//! every answer carries the browser security headers, and the gateway serves the web pages
//! (`tanda-web`), which call the same routes.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower_http::cors::{AllowOrigin, CorsLayer};

use tanda_core::Problem;
use tanda_core::auth::{Verifier, authenticate};
use tanda_core::host::{BodyTimedOut, with_common_layers};
use tanda_core::http::not_found_fallback;
use tanda_core::rate::{RateLimit, RateLimiter, limit_writes};

mod admin;
mod balance;
mod error;
mod proxy;
mod settings;

pub use proxy::Upstreams;
/// A service's base URL, e.g. `http://127.0.0.1:8081` (parses with `str::parse`).
pub use reqwest::Url;
pub use settings::EdgeSettings;

/// Request bodies larger than this are refused with 413: no valid request comes close.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the entry point holds callers to.
#[derive(Clone)]
pub struct Edge {
    /// Checks the credentials requests carry.
    pub verifier: Arc<Verifier>,
    /// Each caller's writes (POST, PUT, PATCH, DELETE); `None` lets them all through.
    pub write_limit: Option<RateLimit>,
    /// The web origins (e.g. `https://app.example`) whose pages may call the API from a browser
    /// (CORS); none: only this site's own pages.
    pub cors_allow_origins: Vec<String>,
}

/// Routes to in-process services, with the web pages. `services` have disjoint paths (the API
/// contract guarantees it); `ops` carries `/healthz`, `/readyz`, `/metrics` and `/admin/*`;
/// `contract` is the API's OpenAPI document, served at `/openapi.json`.
pub fn in_process(
    services: impl IntoIterator<Item = Router>,
    ops: Router,
    edge: Edge,
    contract: &serde_json::Value,
) -> Router {
    let routes = services
        .into_iter()
        .fold(ops, Router::merge)
        .merge(openapi(contract));
    with_edge_layers(
        with_pages(with_fallbacks(routes), &edge),
        edge,
        Client::Peer,
    )
}

/// One service's own HTTP surface when it runs as its own process: its routes and `ops`, with
/// the same edge handling as the gateway, and no pages. Its callers are the gateway and other
/// services, each one address for many clients, so it limits no caller's rate: the gateway does.
/// It verifies every caller's credentials itself, and answers browsers of `cors_allow_origins`
/// as the gateway does.
pub fn service(
    routes: Router,
    ops: Router,
    verifier: Arc<Verifier>,
    cors_allow_origins: &[String],
) -> Router {
    let edge = Edge {
        verifier,
        write_limit: None,
        cors_allow_origins: cors_allow_origins.to_vec(),
    };
    with_edge_layers(with_fallbacks(routes.merge(ops)), edge, Client::Forwarded)
}

/// A reverse proxy to services running as their own processes: each request goes to the service
/// that owns its first path segment and its answer streams back as it comes. The admin endpoints
/// for dead letters and consumers ask every service. `ops` is the gateway process's own
/// `/healthz`, `/readyz` and `/metrics`; any `/admin/*` routes in it are shadowed by the
/// aggregated ones.
pub fn proxy(
    upstreams: Upstreams,
    ops: Router,
    edge: Edge,
    contract: &serde_json::Value,
) -> Router {
    let client = proxy::client();
    let routes = proxy::routes(&upstreams, &client)
        .merge(admin::routes(&upstreams, &client))
        .merge(openapi(contract))
        .fallback_service(with_fallbacks(ops))
        .method_not_allowed_fallback(method_not_allowed);
    with_edge_layers(with_pages(routes, &edge), edge, Client::Peer)
}

/// `GET /openapi.json`: the document, serialized once. Public: it describes, it grants nothing.
fn openapi(contract: &serde_json::Value) -> Router {
    let body = Bytes::from(serde_json::to_vec(contract).expect("a JSON value serializes"));
    Router::new().route(
        "/openapi.json",
        get(move || async move { ([(header::CONTENT_TYPE, "application/json")], body) }),
    )
}

/// The web pages beside the public API they call: each page's request to the API goes through
/// `api`, the same routes an outside client reaches, and through the same check of the bearer
/// token it carries (the session's).
fn with_pages(api: Router, edge: &Edge) -> Router {
    let checked = api.clone().layer(middleware::from_fn_with_state(
        edge.verifier.clone(),
        authenticate,
    ));
    tanda_web::router(
        tanda_web::Api::new(checked),
        edge.verifier.clone(),
        &edge.cors_allow_origins,
    )
    .merge(api)
}

fn with_fallbacks(routes: Router) -> Router {
    routes
        .fallback(not_found_fallback)
        .method_not_allowed_fallback(method_not_allowed)
}

/// Outermost first: the browser security headers, CORS, request ids, tracing and metrics
/// (`with_common_layers`), the
/// caller's credentials checked (every process checks them itself: the gateway is not the only
/// lock; it keys the write limit by the verified caller), each caller's write limit, then the
/// body limit, so a refused write's body is never read.
fn with_edge_layers(routes: Router, edge: Edge, client: Client) -> Router {
    let mut routes = routes
        .layer(middleware::from_fn(limit_body))
        .layer(middleware::from_fn_with_state(client, client_address));
    if let Some(limit) = edge.write_limit {
        let limiter = Arc::new(RateLimiter::new(limit));
        routes = routes.layer(middleware::from_fn_with_state(limiter, limit_writes));
    }
    let routes = routes.layer(middleware::from_fn_with_state(edge.verifier, authenticate));
    let routes = with_common_layers(routes);
    let routes = match cors(&edge.cors_allow_origins) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    routes.layer(middleware::map_response(browser_headers))
}

/// What every answer tells a browser, whatever answered it (a page, an asset, the API, a problem,
/// the edge itself): run only this site's own scripts and styles (nothing inline, so injected
/// markup cannot run), never inside another site's frame, no guessing of content types, and the
/// referrer kept to this site. `strict-origin-when-cross-origin` rather than `no-referrer`: under
/// `no-referrer` a browser sends `Origin: null` with a plain form's POST, and the pages' forms
/// check the origin they come from.
const BROWSER_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'; \
         object-src 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("x-frame-options", "DENY"),
];

async fn browser_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in BROWSER_HEADERS {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

/// Reads the request body whole before the route sees it, refusing one over [`MAX_BODY_BYTES`]
/// with a `413` problem, whether its length was announced or it simply kept coming.
async fn limit_body(request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large().into_response();
    }
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(body) => {
            let body = Body::from(body.to_bytes());
            next.run(Request::from_parts(parts, body)).await
        }
        Err(e) if e.is::<LengthLimitError>() => too_large().into_response(),
        Err(e) if caused_by::<BodyTimedOut>(&*e) => {
            let mut response = Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body did not arrive in time",
            )
            .into_response();
            // The rest of the body may still be on its way: this connection is done.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
        Err(e) => Problem::bad_request(
            "invalid_body",
            format!("the request body could not be read: {e}"),
        )
        .into_response(),
    }
}

fn caused_by<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source())
        .any(<dyn std::error::Error + 'static>::is::<E>)
}

fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!(
            "the request body is larger than {} KiB",
            MAX_BODY_BYTES / 1024
        ),
    )
}

/// Where a request's client is, as `X-Forwarded-For` tells the routes (sign-in throttles by it).
#[derive(Debug, Clone, Copy)]
enum Client {
    /// The entry point: the connection's peer is the client; whatever a client claims in
    /// `X-Forwarded-For` is replaced.
    Peer,
    /// A service behind the gateway, whose one caller is the gateway: the address the gateway
    /// put there stands (the peer's only when none did).
    Forwarded,
}

async fn client_address(
    State(client): State<Client>,
    mut request: Request,
    next: Next,
) -> Response {
    let forwarded = HeaderName::from_static("x-forwarded-for");
    if matches!(client, Client::Peer) || !request.headers().contains_key(&forwarded) {
        let peer = request
            .extensions()
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        request.headers_mut().remove(&forwarded);
        if let Some(ip) = peer.and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok()) {
            request.headers_mut().insert(forwarded, ip);
        }
    }
    next.run(request).await
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// The origins listed may call the public API from a browser, with a bearer token (never with
/// the pages' session cookie: credentials are not allowed). With none listed there are no CORS
/// headers at all, and browsers keep every other site to the same-origin rules.
fn cors(allowed_origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = allowed_origins
        .iter()
        .filter_map(|origin| match HeaderValue::from_str(origin) {
            Ok(value) => Some(value),
            Err(_) => {
                tracing::warn!(origin, "not an origin; not allowed");
                None
            }
        })
        .collect();
    if origins.is_empty() {
        return None;
    }
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            header::WWW_AUTHENTICATE,
        ]);
    Some(cors)
}
