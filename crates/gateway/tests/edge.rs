//! What every HTTP process puts between a caller and the routes: a body limit answered as a
//! problem, however the body arrives, and a body that stops arriving answered as one too; and
//! what the entry point adds: a limit on each caller's writes.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use serde_json::Value;
use tanda_core::http::Json;
use tower::ServiceExt;

/// Over the gateway's 64 KiB limit.
const TOO_LARGE: usize = 65 * 1024;

/// One service's edge with routes that read a body each way the routes do: JSON, a form, bytes.
fn edge() -> Router {
    let routes = Router::new()
        .route("/json", post(|Json(v): Json<Value>| async move { Json(v) }))
        .route(
            "/form",
            post(|Form(f): Form<HashMap<String, String>>| async move { f.len().to_string() }),
        )
        .route(
            "/bytes",
            post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        );
    tanda_gateway::service(routes, Router::new(), no_keys(), &[])
}

async fn problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["code"], code, "{problem}");
    assert_eq!(problem["status"], status);
    problem
}

fn post_to(path: &str, content_type: &str, body: Body) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .unwrap()
}

const ROUTES: [(&str, &str); 3] = [
    ("/json", "application/json"),
    ("/form", "application/x-www-form-urlencoded"),
    ("/bytes", "application/octet-stream"),
];

#[tokio::test]
async fn a_declared_length_over_the_limit_is_a_413_problem() {
    for (path, content_type) in ROUTES {
        let mut request = post_to(path, content_type, Body::from(vec![b' '; TOO_LARGE]));
        request
            .headers_mut()
            .insert(header::CONTENT_LENGTH, TOO_LARGE.into());
        let response = edge().oneshot(request).await.unwrap();
        problem(response, 413, "body_too_large").await;
    }
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_is_a_413_problem() {
    for (path, content_type) in ROUTES {
        // No length announced: the body arrives in chunks until it is too long.
        let chunks = (0..TOO_LARGE / 1024).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 1024]));
        let body = Body::from_stream(futures::stream::iter(chunks));
        let response = edge()
            .oneshot(post_to(path, content_type, body))
            .await
            .unwrap();
        problem(response, 413, "body_too_large").await;
    }
}

#[tokio::test]
async fn a_body_within_the_limit_reaches_the_route() {
    let request = post_to("/json", "application/json", Body::from(r#"{"a":1}"#));
    let response = edge().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let chunks = (0..60).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 1024]));
    let request = post_to(
        "/bytes",
        "application/octet-stream",
        Body::from_stream(futures::stream::iter(chunks)),
    );
    let response = edge().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"61440");
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_a_408_problem() {
    // What the host's connection hands on when a body is still arriving at its deadline.
    let chunks: Vec<Result<Vec<u8>, tanda_core::host::BodyTimedOut>> =
        vec![Ok(b"{\"a\":".to_vec()), Err(tanda_core::host::BodyTimedOut)];
    let body = Body::from_stream(futures::stream::iter(chunks));
    let response = edge()
        .oneshot(post_to("/json", "application/json", body))
        .await
        .unwrap();
    assert_eq!(response.headers()[header::CONNECTION], "close");
    problem(response, 408, "request_timeout").await;
}

/// The entry point with `edge`, served on a free port as every process serves.
/// A verifier that trusts no key: these callers carry no credentials.
fn no_keys() -> std::sync::Arc<tanda_core::auth::Verifier> {
    let keys = std::sync::Arc::new(tanda_core::auth::FixedJwks::default());
    std::sync::Arc::new(tanda_core::auth::Verifier::new(keys, None))
}

async fn serve_edge(edge: tanda_gateway::Edge) -> String {
    let things = Router::new()
        .route(
            "/things",
            axum::routing::get(|| async { "[]" })
                .post(|| async { (StatusCode::CREATED, "{}") })
                .delete(|| async { StatusCode::NO_CONTENT }),
        )
        .route(
            "/client",
            axum::routing::get(|headers: axum::http::HeaderMap| async move {
                headers["x-forwarded-for"].to_str().unwrap().to_owned()
            }),
        );
    let router = tanda_gateway::in_process([things], Router::new(), edge, &serde_json::json!({}));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let lifecycle = tanda_core::lifecycle::Lifecycle::new();
    let config = tanda_core::host::HttpConfig::default();
    tokio::spawn(tanda_core::host::serve(listener, router, lifecycle, config));
    format!("http://{addr}")
}

#[tokio::test]
async fn writes_beyond_a_callers_limit_are_a_429_problem_and_reads_pass() {
    let limit = tanda_core::rate::RateLimit {
        per_second: 1,
        burst: 5,
    };
    let base = serve_edge(tanda_gateway::Edge {
        verifier: no_keys(),
        write_limit: Some(limit),
        cors_allow_origins: Vec::new(),
    })
    .await;
    let http = reqwest::Client::new();
    let url = format!("{base}/things");
    for _ in 0..5 {
        let answer = http.post(&url).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::CREATED);
    }
    for refused in [http.post(&url), http.delete(&url)] {
        let answer = refused.send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = answer.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&wait), "Retry-After: {wait}");
        assert_eq!(
            answer.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let problem: Value = answer.json().await.unwrap();
        assert_eq!(problem["code"], "rate_limited");
        assert_eq!(problem["status"], 429);
    }
    for _ in 0..50 {
        let answer = http.get(&url).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn without_a_limit_writes_all_pass() {
    let base = serve_edge(tanda_gateway::Edge {
        verifier: no_keys(),
        write_limit: None,
        cors_allow_origins: Vec::new(),
    })
    .await;
    let http = reqwest::Client::new();
    for _ in 0..100 {
        let answer = http.post(format!("{base}/things")).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::CREATED);
    }
}

/// The client's address the routes see (sign-in throttles by it) is the connection's peer at the
/// entry point, whatever the client claims; a service behind the gateway keeps the gateway's.
#[tokio::test]
async fn the_client_address_is_the_peers_at_the_entry_point() {
    let base = serve_edge(tanda_gateway::Edge {
        verifier: no_keys(),
        write_limit: None,
        cors_allow_origins: Vec::new(),
    })
    .await;
    let seen = reqwest::Client::new()
        .get(format!("{base}/client"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(seen, "127.0.0.1", "a client's claim is replaced");

    let routes = Router::new().route(
        "/client",
        axum::routing::get(|headers: axum::http::HeaderMap| async move {
            headers["x-forwarded-for"].to_str().unwrap().to_owned()
        }),
    );
    let service = tanda_gateway::service(routes, Router::new(), no_keys(), &[]);
    let request = Request::get("/client")
        .header("x-forwarded-for", "198.51.100.4")
        .body(Body::empty())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1 << 10)
        .await
        .unwrap();
    assert_eq!(
        &body[..],
        b"198.51.100.4",
        "behind the gateway, its address stands"
    );
}
