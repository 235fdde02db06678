//! What the gateway tells browsers on every answer — pages, assets, the API, problems, even a
//! refusal at the edge: a content security policy that keeps pages from being framed or from
//! running anything but their own scripts, no MIME sniffing, a referrer kept to the site. And
//! cross-origin reads only for the origins the gateway is told to allow, never `*`.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;

use tanda_core::Problem;
use tanda_core::auth::{FixedJwks, Verifier};

/// An all-in-one gateway in front of one stand-in service, on a real port, allowing cross-origin
/// calls from `origins`.
async fn gateway_allowing(origins: &[&str]) -> String {
    let service = Router::new().route(
        "/things",
        get(|| async { axum::Json(json!([])) })
            .post(|| async { Problem::bad_request("invalid_thing", "not a thing") }),
    );
    let ops = Router::new().route("/healthz", get(|| async { "ok" }));
    let verifier = Arc::new(Verifier::new(Arc::new(FixedJwks::default()), None));
    let edge = tanda_gateway::Edge {
        verifier,
        write_limit: None,
        cors_allow_origins: origins.iter().map(ToString::to_string).collect(),
    };
    let router = tanda_gateway::in_process([service], ops, edge, &serde_json::json!({}));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn gateway() -> String {
    gateway_allowing(&[]).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn every_answer_carries_the_browser_security_headers() {
    let base = gateway().await;
    let http = client();
    let get = |path: &str| http.get(format!("{base}{path}"));
    let requests = [
        ("the landing page", get("/")),
        ("the sign-in page", get("/signin")),
        ("a page that sends to sign-in", get("/customer")),
        ("a stylesheet", get("/assets/tanda.css")),
        ("a script", get("/assets/htmx-2.0.11.min.js")),
        ("an API answer", get("/things")),
        ("a health check", get("/healthz")),
        ("an unknown path", get("/nowhere")),
        (
            "a problem",
            http.post(format!("{base}/things")).json(&json!({})),
        ),
        (
            "a token refused at the edge",
            get("/things").bearer_auth("not.a.token"),
        ),
        (
            "a body too large",
            http.post(format!("{base}/things"))
                .body(vec![b'x'; 100 * 1024]),
        ),
    ];
    for (what, request) in requests {
        let answer = request.send().await.unwrap();
        let headers = answer.headers();
        let csp = headers
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{what} ({}) has no CSP", answer.status()))
            .to_str()
            .unwrap();
        for directive in ["default-src 'self'", "frame-ancestors 'none'"] {
            assert!(csp.contains(directive), "{what}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(
            headers["referrer-policy"], "strict-origin-when-cross-origin",
            "{what}"
        );
        assert_eq!(headers["x-frame-options"], "DENY", "{what}");
    }
}

const APP: &str = "https://app.example";
const EVIL: &str = "https://evil.example";

/// A CORS preflight for a call with a bearer token, from `origin`.
fn preflight(http: &reqwest::Client, base: &str, origin: &str) -> reqwest::RequestBuilder {
    http.request(reqwest::Method::OPTIONS, format!("{base}/things"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,idempotency-key",
        )
}

#[tokio::test]
async fn cross_origin_calls_are_allowed_only_from_listed_origins() {
    let http = client();

    // By default no other origin is allowed: no CORS headers at all.
    let base = gateway().await;
    for origin in [APP, EVIL] {
        let answer = http
            .get(format!("{base}/things"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert!(
            answer
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{origin}"
        );
        let answer = preflight(&http, &base, origin).send().await.unwrap();
        assert!(
            answer
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{origin}"
        );
    }

    // With an allow-list, that origin and only that one, named (never `*`).
    let base = gateway_allowing(&[APP]).await;
    let answer = http
        .get(format!("{base}/things"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.headers()["access-control-allow-origin"], APP);
    let answer = preflight(&http, &base, APP).send().await.unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    assert_eq!(answer.headers()["access-control-allow-origin"], APP);
    let allowed = answer.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for header in ["authorization", "content-type", "idempotency-key"] {
        assert!(allowed.contains(header), "{allowed}");
    }
    assert!(
        answer
            .headers()
            .get("access-control-allow-credentials")
            .is_none(),
        "calls from other origins carry tokens, never the session cookie"
    );
    for answer in [
        http.get(format!("{base}/things"))
            .header("origin", EVIL)
            .send()
            .await
            .unwrap(),
        preflight(&http, &base, EVIL).send().await.unwrap(),
    ] {
        let allowed = answer.headers().get("access-control-allow-origin");
        assert!(allowed.is_none(), "{allowed:?}");
    }
}
