//! The reverse proxy in front of stand-in services on real ports: routing, what is forwarded,
//! answers passed on untouched, streaming, unavailable services and the admin endpoints that
//! span every service.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use tanda_core::auth::{FixedJwks, Verifier};
use tanda_core::http::not_found_fallback;
use tanda_gateway::{Edge, Upstreams, Url, proxy};
use tanda_registry::specs;

async fn serve(router: Router) -> Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}").parse().unwrap()
}

/// The gateway's own operational routes, with an `/admin` route the aggregated one must shadow.
fn ops() -> Router {
    Router::new()
        .route("/healthz", get(|| async { "gateway ok" }))
        .route("/admin/dead-letters", get(|| async { "the gateway's own" }))
}

/// A gateway in front of one stand-in per service, `service(name)` being the stand-in's routes.
async fn gateway(service: impl Fn(&'static str) -> Router) -> Client {
    let mut urls = Vec::new();
    for spec in specs() {
        urls.push(serve(service(spec.name)).await);
    }
    gateway_to(urls).await
}

async fn gateway_to(urls: Vec<Url>) -> Client {
    gateway_over(Upstreams::new(specs().zip(urls).collect())).await
}

async fn gateway_over(upstreams: Upstreams) -> Client {
    let (verifier, token) = operator();
    let edge = Edge {
        verifier,
        write_limit: None,
        cors_allow_origins: Vec::new(),
    };
    let base = serve(proxy(upstreams, ops(), edge, &serde_json::json!({}))).await;
    let mut headers = header::HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    Client {
        base: base.as_str().trim_end_matches('/').to_owned(),
        http: reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .build()
            .unwrap(),
    }
}

/// A verifier that knows one key, and an operator's token signed with it: the gateway's clients
/// here are the operator.
fn operator() -> (Arc<Verifier>, String) {
    use base64::Engine;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
    let jwks = serde_json::from_value(json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA"}
    ]}))
    .unwrap();
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"iss": tanda_core::auth::ISSUER, "aud": tanda_core::auth::AUDIENCE,
                        "sub": "operator", "roles": ["operator"], "iat": now, "exp": now + 600});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("k1".to_owned());
    let der = key.to_pkcs8_der().unwrap();
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
    )
    .unwrap();
    let verifier = Verifier::new(Arc::new(FixedJwks(jwks)), None);
    (Arc::new(verifier), token)
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }
    async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }
    async fn post(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::POST, path)
            .send()
            .await
            .unwrap()
    }
}

/// A stand-in that answers anything with what it received, tagged with its name.
fn echo(name: &'static str) -> Router {
    Router::new().fallback(move |request: Request| async move {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let headers: serde_json::Map<String, Value> = parts
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), json!(v.to_str().unwrap())))
            .collect();
        Json(json!({
            "service": name,
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "headers": headers,
            "body": String::from_utf8(body.to_vec()).unwrap(),
        }))
    })
}

async fn expect_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], code, "{problem}");
    problem
}

#[tokio::test]
async fn each_path_goes_to_the_service_that_owns_it() {
    let gateway = gateway(echo).await;
    let cases = [
        ("GET", "/books?customerId=c1", "book"),
        ("POST", "/books/b1/cancel", "book"),
        ("PUT", "/drivers/d1/location", "dispatch"),
        ("GET", "/dispatches?bookId=b1", "dispatch"),
        ("GET", "/pays?bookId=b1", "pay"),
        ("GET", "/pays/p1", "pay"),
        ("PUT", "/admin/card-network", "pay"),
        ("GET", "/rideHistories/b1", "ride-history"),
        ("GET", "/flights", "reservation"),
        ("POST", "/reservations/r1/cancel", "reservation"),
        ("POST", "/accounts/u1/deposit", "payment"),
        ("GET", "/tickets?userId=u1", "ticket"),
        ("GET", "/reservationViews?userId=u1", "reservation-view"),
        ("GET", "/notifications?receiver=customer:c1", "notify"),
    ];
    for (method, path_and_query, service) in cases {
        let response = gateway
            .request(method.parse().unwrap(), path_and_query)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{method} {path_and_query}"
        );
        let seen: Value = response.json().await.unwrap();
        let (path, query) = path_and_query
            .split_once('?')
            .map_or((path_and_query, None), |(p, q)| (p, Some(q)));
        assert_eq!(seen["service"], service, "{method} {path_and_query}");
        assert_eq!(seen["method"], method);
        assert_eq!(seen["path"], path);
        assert_eq!(seen["query"], json!(query));
    }
}

/// `POST /pays` is internal (dispatch calls pay directly): the gateway never forwards it, nor
/// any other write under `/pays`; pay sees nothing of it. Its reads stay public.
#[tokio::test]
async fn the_gateway_does_not_forward_payments() {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let gateway = gateway(|name| {
        let seen = seen.clone();
        Router::new().fallback(move |request: Request| async move {
            seen.lock().unwrap().push(format!(
                "{name} {} {}",
                request.method(),
                request.uri().path()
            ));
            "forwarded"
        })
    })
    .await;
    let charge = r#"{"bookId":"b1","dispatchId":"d1","amount":1,"cardToken":"tok_4242_ok_x"}"#;
    for (method, path) in [
        ("POST", "/pays"),
        ("PUT", "/pays"),
        ("DELETE", "/pays"),
        ("POST", "/pays/p1"),
        ("PATCH", "/pays/p1"),
    ] {
        let response = gateway
            .request(method.parse().unwrap(), path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(charge)
            .send()
            .await
            .unwrap();
        expect_problem(response, 405, "method_not_allowed").await;
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );

    for path in ["/pays?bookId=b1", "/pays/p1"] {
        assert_eq!(gateway.get(path).await.status(), StatusCode::OK, "{path}");
    }
    assert_eq!(*seen.lock().unwrap(), ["pay GET /pays", "pay GET /pays/p1"]);
}

#[tokio::test]
async fn the_gateway_answers_its_own_paths_and_unknown_ones() {
    let gateway = gateway(echo).await;

    let health = gateway.get("/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.unwrap(), "gateway ok");

    let home = gateway.get("/").await;
    assert_eq!(home.status(), StatusCode::OK);
    assert_eq!(
        home.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert!(
        home.text()
            .await
            .unwrap()
            .contains("<title>환영합니다 · Tanda</title>")
    );

    expect_problem(gateway.get("/assets/nope.js").await, 404, "not_found").await;
    for path in ["/bookings", "/nope/books", "/admin/other"] {
        let problem = expect_problem(gateway.get(path).await, 404, "not_found").await;
        assert_eq!(problem["detail"], format!("no route for {path}"));
    }
    expect_problem(gateway.post("/healthz").await, 405, "method_not_allowed").await;
    expect_problem(
        gateway.post("/admin/dead-letters").await,
        405,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn method_query_body_and_headers_are_forwarded() {
    let gateway = gateway(echo).await;
    let body = r#"{"customerId":"c1","card":"4242424242424242"}"#;
    let response = gateway
        .request(reqwest::Method::POST, "/books?dryRun=1&x=%20y")
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", "key-1")
        .header("x-request-id", "req-42")
        .header("last-event-id", "7")
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.headers()["x-request-id"], "req-42");
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/books");
    assert_eq!(seen["query"], "dryRun=1&x=%20y");
    assert_eq!(seen["body"], body);
    let headers = &seen["headers"];
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["content-length"], body.len().to_string());
    assert_eq!(headers["idempotency-key"], "key-1");
    assert_eq!(headers["last-event-id"], "7");
    assert_eq!(headers["x-request-id"], "req-42");
}

#[tokio::test]
async fn a_request_id_is_made_when_the_client_sends_none_and_reaches_the_service() {
    let gateway = gateway(echo).await;
    let response = gateway.get("/flights").await;
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!id.is_empty());
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["headers"]["x-request-id"], id);
}

#[tokio::test]
async fn answers_pass_through_untouched() {
    const BUSY: &str = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"no taxi can be had right now","code":"no_taxi_available"}"#;
    let gateway = gateway(|name| {
        Router::new()
            .route(
                "/books",
                post(|| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [
                            (header::CONTENT_TYPE, "application/problem+json"),
                            (header::RETRY_AFTER, "7"),
                        ],
                        BUSY,
                    )
                }),
            )
            .route(
                "/books/{id}",
                get(|| async { tanda_core::Problem::not_found("book", "b9") }),
            )
            .route(
                "/books/b1/cancel",
                post(|| async { (StatusCode::ACCEPTED, [("x-book-version", "3")], "{}") }),
            )
            .fallback(move || async move { format!("{name} does not serve this") })
    })
    .await;

    let busy = gateway.post("/books").await;
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(busy.headers()[header::RETRY_AFTER], "7");
    assert_eq!(
        busy.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(busy.text().await.unwrap(), BUSY);

    let missing = expect_problem(gateway.get("/books/b9").await, 404, "not_found").await;
    assert_eq!(missing["detail"], "no book b9");

    let accepted = gateway.post("/books/b1/cancel").await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    assert_eq!(accepted.headers()["x-book-version"], "3");
}

/// Serves `/notifications/stream` as the given chunks of text, the rest of the stand-ins 404.
async fn gateway_with_stream(
    stream: impl futures::Stream<Item = &'static str> + Send + 'static,
) -> Client {
    let stream = Arc::new(Mutex::new(Some(stream.map(Ok::<_, std::io::Error>))));
    gateway(move |name| {
        let stream = stream.clone();
        let router = Router::new().fallback(not_found_fallback);
        if name != "notify" {
            return router;
        }
        router.route(
            "/notifications/stream",
            get(move || async move {
                let stream = stream.lock().unwrap().take().expect("one stream per test");
                (
                    [(header::CONTENT_TYPE, "text/event-stream")],
                    Body::from_stream(stream),
                )
            }),
        )
    })
    .await
}

/// Reads the answer until `text` has arrived; false if it ended first.
async fn read_until(
    body: &mut (impl futures::Stream<Item = reqwest::Result<axum::body::Bytes>> + Unpin),
    seen: &mut String,
    text: &str,
) -> bool {
    while !seen.contains(text) {
        match body.next().await {
            Some(chunk) => seen.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap()),
            None => return false,
        }
    }
    true
}

#[tokio::test]
async fn event_streams_flow_event_by_event() {
    let (release, released) = oneshot::channel::<()>();
    let events =
        futures::stream::once(async { "data: one\n\n" }).chain(futures::stream::once(async move {
            released.await.unwrap();
            "data: two\n\n"
        }));
    let gateway = gateway_with_stream(events).await;

    let mut seen = String::new();
    // A gateway that buffered would wait for the end, which only comes after the first event;
    // the timeout only turns that hang into a failure.
    let first = tokio::time::timeout(Duration::from_secs(30), async {
        let response = gateway
            .get("/notifications/stream?receiver=customer:c1")
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        let mut body = response.bytes_stream();
        assert!(read_until(&mut body, &mut seen, "data: one\n\n").await);
        body
    });
    let mut body = first.await.expect("the first event is held back");
    assert!(!seen.contains("two"), "the second event is not sent yet");

    release.send(()).unwrap();
    assert!(read_until(&mut body, &mut seen, "data: two\n\n").await);
    assert!(
        body.next().await.is_none(),
        "the stream ends with the service's"
    );
}

/// Sends its signal when dropped.
struct OnDrop(Option<oneshot::Sender<()>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(signal) = self.0.take() {
            let _ = signal.send(());
        }
    }
}

#[tokio::test]
async fn a_client_leaving_closes_the_stream_at_the_service() {
    let (closed, upstream_closed) = oneshot::channel();
    let guard = OnDrop(Some(closed));
    let events = futures::stream::once(async { "data: one\n\n" })
        .chain(futures::stream::pending())
        .map(move |event| {
            let _keep = &guard;
            event
        });
    let gateway = gateway_with_stream(events).await;

    let response = gateway
        .get("/notifications/stream?receiver=customer:c1")
        .await;
    let mut body = response.bytes_stream();
    assert!(read_until(&mut body, &mut String::new(), "data: one").await);
    drop(body);

    // Only a guard against hanging forever: the service's stream must be dropped.
    tokio::time::timeout(Duration::from_secs(30), upstream_closed)
        .await
        .expect("the service still streams to a client that left")
        .unwrap();
}

/// A base URL where nothing listens.
async fn closed_port() -> Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url.parse().unwrap()
}

#[tokio::test]
async fn a_service_that_cannot_be_reached_is_a_503_naming_it() {
    let down = closed_port().await;
    let gateway = gateway_to(vec![down; specs().count()]).await;

    let response = gateway.get("/rideHistories/b1").await;
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    let problem = expect_problem(response, 503, "upstream_unavailable").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("ride-history"),
        "{problem}"
    );

    expect_problem(
        gateway.get("/admin/dead-letters").await,
        503,
        "upstream_unavailable",
    )
    .await;
    expect_problem(
        gateway.post("/admin/dead-letters/dl-1/redrive").await,
        503,
        "upstream_unavailable",
    )
    .await;
}

fn dead_letter(id: &str, parked_at: &str) -> Value {
    json!({"id": id, "consumer": "c", "eventId": "e", "type": "t", "error": "boom", "attempts": 5,
           "parkedAt": parked_at, "event": {}})
}

/// Stand-ins with admin endpoints: dispatch parks `dl-a` and `dl-c`, book parks `dl-b`
/// (already re-driven); each service has one consumer named after it.
fn with_admin(name: &'static str) -> Router {
    let parked = match name {
        "dispatch" => json!([
            dead_letter("dl-c", "2026-01-01T00:00:03.000Z"),
            dead_letter("dl-a", "2026-01-01T00:00:01.000Z"),
        ]),
        "book" => json!([dead_letter("dl-b", "2026-01-01T00:00:02.000Z")]),
        _ => json!([]),
    };
    let mut router = Router::new()
        .route(
            "/admin/dead-letters",
            get(move || async move { Json(parked) }),
        )
        .route(
            "/admin/consumers",
            get(move || async move { Json(json!([{"name": name, "paused": false}])) }),
        )
        .fallback(not_found_fallback);
    if name == "dispatch" {
        router = router
            .route(
                "/admin/dead-letters/dl-c/redrive",
                post(|| async { Json(json!({"id": "dl-c", "redriven": true})) }),
            )
            .route(
                "/admin/consumers/dispatch/pause",
                post(|| async { Json(json!({"name": "dispatch", "paused": true})) }),
            );
    }
    if name == "book" {
        router = router.route(
            "/admin/dead-letters/dl-b/redrive",
            post(|| async {
                tanda_core::Problem::conflict("already_redriven", "dl-b was already re-driven")
            }),
        );
    }
    router
}

#[tokio::test]
async fn dead_letters_of_every_service_newest_first() {
    let gateway = gateway(with_admin).await;
    let response = gateway.get("/admin/dead-letters").await;
    assert_eq!(response.status(), StatusCode::OK);
    let all: Vec<Value> = response.json().await.unwrap();
    let ids: Vec<_> = all.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["dl-c", "dl-b", "dl-a"]);
}

/// The aggregated admin endpoints are the operator's: the gateway refuses anyone else itself,
/// before asking any service.
#[tokio::test]
async fn admin_endpoints_refuse_callers_without_credentials() {
    let gateway = gateway(with_admin).await;
    let anonymous = reqwest::Client::builder().no_proxy().build().unwrap();
    for (method, path) in [
        (reqwest::Method::GET, "/admin/dead-letters"),
        (reqwest::Method::GET, "/admin/consumers"),
        (reqwest::Method::POST, "/admin/dead-letters/dl-a/redrive"),
        (reqwest::Method::POST, "/admin/consumers/book/pause"),
    ] {
        let response = anonymous
            .request(method, format!("{}{path}", gateway.base))
            .send()
            .await
            .unwrap();
        expect_problem(response, 401, "unauthenticated").await;
    }
}

#[tokio::test]
async fn a_redrive_goes_to_the_service_that_parked_the_event() {
    let gateway = gateway(with_admin).await;

    let redriven = gateway.post("/admin/dead-letters/dl-c/redrive").await;
    assert_eq!(redriven.status(), StatusCode::OK);
    assert_eq!(
        redriven.json::<Value>().await.unwrap(),
        json!({"id": "dl-c", "redriven": true})
    );

    expect_problem(
        gateway.post("/admin/dead-letters/dl-b/redrive").await,
        409,
        "already_redriven",
    )
    .await;

    let unknown = expect_problem(
        gateway.post("/admin/dead-letters/dl-x/redrive").await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(unknown["detail"], "no dead letter dl-x");
}

#[tokio::test]
async fn consumers_of_every_service_and_switching_one() {
    let gateway = gateway(with_admin).await;

    let all: Vec<Value> = gateway.get("/admin/consumers").await.json().await.unwrap();
    let names: Vec<_> = all.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let registered: Vec<_> = specs().map(|s| s.name).collect();
    assert_eq!(names, registered);

    let paused = gateway.post("/admin/consumers/dispatch/pause").await;
    assert_eq!(paused.status(), StatusCode::OK);
    assert_eq!(paused.json::<Value>().await.unwrap()["paused"], true);

    let unknown = expect_problem(
        gateway.post("/admin/consumers/nobody/resume").await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(unknown["detail"], "no consumer nobody");
}

#[tokio::test]
async fn a_failing_service_fails_the_merged_list_with_its_own_answer() {
    let gateway = gateway(|name| {
        if name == "ticket" {
            Router::new().route(
                "/admin/dead-letters",
                get(|| async {
                    tanda_core::Problem::unavailable("storage_unavailable", "db down", 2)
                        .into_response()
                }),
            )
        } else {
            with_admin(name)
        }
    })
    .await;
    let response = gateway.get("/admin/dead-letters").await;
    assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    let problem = expect_problem(response, 503, "storage_unavailable").await;
    assert_eq!(problem["detail"], "db down");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_at_the_gateway() {
    let gateway = gateway(echo).await;
    let response = gateway
        .request(reqwest::Method::POST, "/books")
        .header(header::CONTENT_TYPE, "application/json")
        .body(vec![b' '; 65 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

// ---- several instances of a service ----------------------------------------------------------

/// Book at each of `books` (several instances), every other service at one echo of its own.
async fn upstreams_with_books(books: Vec<Url>) -> Upstreams {
    let mut upstreams = Vec::new();
    for spec in specs() {
        if spec.name == "book" {
            upstreams.extend(books.iter().map(|url| (spec, url.clone())));
        } else {
            upstreams.push((spec, serve(echo(spec.name)).await));
        }
    }
    Upstreams::new(upstreams)
}

/// Who answered each of `n` requests made one after another.
async fn answered_by(n: usize, send: impl AsyncFn() -> reqwest::Response) -> Vec<String> {
    let mut who = Vec::new();
    for _ in 0..n {
        let answer = send().await;
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        who.push(body["service"].as_str().unwrap_or("none").to_owned());
    }
    who
}

#[tokio::test]
async fn requests_take_a_services_instances_in_turn() {
    let books = vec![serve(echo("book-1")).await, serve(echo("book-2")).await];
    let gateway = gateway_over(upstreams_with_books(books).await).await;
    let who = answered_by(4, async || gateway.get("/books/b1").await).await;
    assert_eq!(who, ["book-1", "book-2", "book-1", "book-2"]);
}

/// An instance that refuses connections fails no request, a write without a key included: it
/// never reached the instance, so it goes on to the next.
#[tokio::test]
async fn an_instance_that_refuses_connections_fails_no_request() {
    let books = vec![closed_port().await, serve(echo("book-2")).await];
    let gateway = gateway_over(upstreams_with_books(books).await).await;
    let who = answered_by(4, async || gateway.post("/books").await).await;
    assert_eq!(who, ["book-2"; 4]);
}

/// Accepts connections and closes each at once, having read nothing: a request sent there may
/// have reached it, as far as the gateway can tell.
async fn hangs_up() -> Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    url.parse().unwrap()
}

/// A request that may have reached an instance that failed is sent to another only when that
/// is harmless: a read, or a write with an `Idempotency-Key`. A write without one is a `503`.
#[tokio::test]
async fn only_a_repeatable_request_goes_on_after_an_instance_hung_up() {
    let books = vec![hangs_up().await, serve(echo("book-2")).await];
    let gateway = gateway_over(upstreams_with_books(books).await).await;
    let reads = answered_by(4, async || gateway.get("/books/b1").await).await;
    assert_eq!(reads, ["book-2"; 4]);
    let keyed = answered_by(4, async || {
        gateway
            .request(reqwest::Method::POST, "/books")
            .header("idempotency-key", "k1")
            .send()
            .await
            .unwrap()
    })
    .await;
    assert_eq!(keyed, ["book-2"; 4]);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(gateway.post("/books").await.status().as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 503, 503], "each write sent once");
}

/// An instance whose `/readyz` says it is not ready is set aside at the next probe, and taken
/// back once it says it is.
#[tokio::test]
async fn an_instance_not_ready_is_set_aside_until_it_is() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let ready = Arc::new(AtomicBool::new(true));
    let switchable = {
        let ready = ready.clone();
        echo("book-1").route(
            "/readyz",
            get(move || {
                let ready = ready.load(Ordering::Relaxed);
                async move {
                    if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                }
            }),
        )
    };
    let steady = echo("book-2").route("/readyz", get(|| async { StatusCode::OK }));
    let upstreams = upstreams_with_books(vec![serve(switchable).await, serve(steady).await]).await;
    let lifecycle = tanda_core::lifecycle::Lifecycle::new();
    upstreams.watch(&lifecycle);
    let gateway = gateway_over(upstreams).await;

    ready.store(false, Ordering::Relaxed);
    tanda_testkit::eventually("book-1 set aside", async || {
        answered_by(4, async || gateway.get("/books/b1").await).await == ["book-2"; 4]
    })
    .await;
    ready.store(true, Ordering::Relaxed);
    tanda_testkit::eventually("book-1 taken back", async || {
        answered_by(2, async || gateway.get("/books/b1").await)
            .await
            .contains(&"book-1".to_owned())
    })
    .await;
    lifecycle.stop_background().await;
}
