//! The identity service through its routes on a real SQLite database: sign-up, sign-in, the
//! throttling of failed sign-ins, the operator's account, the published keys, an account's
//! language and the events that tell of accounts.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tanda_core::Envelope;
use tanda_core::auth::{Caller, Role, Verifier};
use tanda_core::db::Db;
use tanda_core::locale::Locale;
use tanda_core::sql::query;
use tanda_identity::{Config, Keys, SPEC, build};
use tanda_testkit::caller;
use tempfile::TempDir;
use tower::ServiceExt;

struct Service {
    dir: TempDir,
    db: Db,
    router: Router,
    keys: Keys,
}

async fn service(operator_password: Option<&str>) -> Service {
    service_in(tempfile::tempdir().unwrap(), operator_password).await
}

/// Identity on the database in `dir` (a new one, or one an earlier start left).
async fn service_in(dir: TempDir, operator_password: Option<&str>) -> Service {
    let db = tanda_testkit::open(dir.path(), &SPEC).await;
    let config = Config {
        operator_password: operator_password.map(str::to_owned),
        ..Config::default()
    };
    let (parts, keys) = build(db.clone(), config).await.unwrap();
    Service {
        dir,
        db,
        router: parts.router,
        keys,
    }
}

impl Service {
    /// A call as `caller` (the edge in front of identity verified who it is).
    async fn call_as(
        &self,
        caller: &Caller,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string());
        let answer = tanda_testkit::call(
            &self.router,
            Some(caller),
            method,
            uri,
            body.as_deref(),
            &[],
        )
        .await;
        (answer.status, answer.body)
    }

    /// Every event identity published, in order, as `(type, payload)`.
    async fn published(&self) -> Vec<(String, Value)> {
        let rows = query("SELECT envelope FROM outbox ORDER BY seq")
            .fetch_all(self.db.reader())
            .await
            .unwrap();
        rows.iter()
            .map(|row| {
                let envelope: Envelope =
                    serde_json::from_str(&row.get::<String, _>("envelope")).unwrap();
                (envelope.kind, envelope.payload)
            })
            .collect()
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.post_from("192.0.2.1", uri, body).await
    }

    /// A POST from a client at `address`, as the edge in front of identity tells it.
    async fn post_from(
        &self,
        address: &str,
        uri: &str,
        body: Value,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let request = Request::post(uri)
            .header("x-forwarded-for", address)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn sign_up(&self, username: &str, password: &str, role: &str) -> (StatusCode, Value) {
        let body = json!({"username": username, "password": password, "name": "Hong Gildong",
                          "phone": "010-2233-0002", "role": role});
        let (status, _, body) = self.post("/auth/signup", body).await;
        (status, body)
    }

    async fn sign_in(
        &self,
        username: &str,
        password: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.post(
            "/auth/token",
            json!({"username": username, "password": password}),
        )
        .await
    }
}

#[tokio::test]
async fn a_customer_signs_up_signs_in_and_is_known_by_the_token() {
    let s = service(None).await;
    let (status, body) = s.sign_up("hong", "correct horse", "customer").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["userId"], "hong");
    assert_eq!(body["role"], "customer");
    assert!(!body.to_string().contains("correct horse"));

    let (status, _, token) = s.sign_in("hong", "correct horse").await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3600);
    let caller = Verifier::new(s.keys.source(), None)
        .verify(token["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(caller.subject.as_str(), "hong");
    assert_eq!(caller.roles, vec![Role::Customer]);
}

#[tokio::test]
async fn sign_ups_are_checked() {
    let s = service(None).await;
    assert_eq!(
        s.sign_up("kim", "driver-pass", "driver").await.0,
        StatusCode::CREATED
    );
    let (status, body) = s.sign_up("kim", "another-pass", "customer").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("username_taken"))
    );
    let (status, body) = s.sign_up("lee", "short", "customer").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("weak_password"))
    );
    let (status, body) = s.sign_up("boss", "long enough", "operator").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_role"))
    );
    let (status, body) = s.sign_up("operator", "long enough", "customer").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("username_taken"))
    );
    let (status, body) = s.sign_up("no spaces", "long enough", "customer").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_username"))
    );
}

#[tokio::test]
async fn repeated_failures_are_throttled_with_retry_after() {
    let s = service(None).await;
    s.sign_up("hong", "correct horse", "customer").await;
    for _ in 0..5 {
        let (status, _, body) = s.sign_in("hong", "wrong horse").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
        );
    }
    let (status, headers, body) = s.sign_in("hong", "correct horse").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let wait: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0);
    // An unknown user is refused like a wrong password.
    let (status, _, body) = s.sign_in("nobody", "whatever1").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
}

#[tokio::test]
async fn the_operator_signs_in_with_the_configured_password() {
    let s = service(Some("operator-secret")).await;
    let (status, _, token) = s.sign_in("operator", "operator-secret").await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let caller = Verifier::new(s.keys.source(), None)
        .verify(token["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(caller.roles, vec![Role::Operator]);
    // Without a configured password the operator still exists, with a password nobody guesses.
    let s = service(None).await;
    assert_eq!(
        s.sign_in("operator", "operator-secret").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.sign_up("operator", "long enough", "customer").await.0,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn the_public_keys_are_published_without_private_parts() {
    let s = service(None).await;
    let response = s
        .router
        .clone()
        .oneshot(
            Request::get("/.well-known/jwks.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let jwks: Value = serde_json::from_slice(&bytes).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(key["kid"].is_string() && key["x"].is_string());
    assert!(key.get("d").is_none(), "no private key material: {key}");
}

#[tokio::test]
async fn rotating_keys_is_for_operators_only() {
    let s = service(None).await;
    let (status, headers, body) = s.post("/admin/signing-keys/rotate", json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );
    assert!(
        headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
}

/// Guessing across many accounts from one address is throttled too, and only that address.
#[tokio::test]
async fn repeated_failures_from_one_address_are_throttled() {
    let s = service(None).await;
    s.sign_up("hong", "correct horse", "customer").await;
    let guess = |n: usize| json!({"username": format!("user{n}"), "password": "guess-guess"});
    for n in 0..20 {
        let (status, _, _) = s.post_from("203.0.113.7", "/auth/token", guess(n)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let right = json!({"username": "hong", "password": "correct horse"});
    let (status, headers, _) = s
        .post_from("203.0.113.7", "/auth/token", right.clone())
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key(header::RETRY_AFTER));
    let (status, _, _) = s.post_from("198.51.100.2", "/auth/token", right).await;
    assert_eq!(status, StatusCode::OK, "another address is not held back");
}

#[tokio::test]
async fn every_account_is_announced_with_its_language() {
    let s = service(None).await;
    let body = json!({"username": "amy", "password": "correct horse", "name": "Amy Lee",
                      "phone": "010-2233-0002", "role": "driver", "locale": "en"});
    assert_eq!(s.post("/auth/signup", body).await.0, StatusCode::CREATED);
    s.sign_up("hong", "correct horse", "customer").await;
    // A sign-up that fails announces nothing.
    s.sign_up("hong", "correct horse", "customer").await;
    assert_eq!(
        s.published().await,
        [
            (
                "identity.AccountOpened".to_owned(),
                json!({"userId": "operator", "role": "operator", "locale": "ko"})
            ),
            (
                "identity.AccountOpened".to_owned(),
                json!({"userId": "amy", "role": "driver", "locale": "en"})
            ),
            (
                "identity.AccountOpened".to_owned(),
                json!({"userId": "hong", "role": "customer", "locale": "ko"})
            ),
        ]
    );
}

#[tokio::test]
async fn accounts_made_before_events_are_announced_once_at_the_next_start() {
    let s = service(None).await;
    s.sign_up("hong", "correct horse", "customer").await;
    // As identity left them before it published events.
    let mut uow = s.db.begin().await.unwrap();
    query("UPDATE accounts SET announced_at = NULL")
        .execute(uow.conn())
        .await
        .unwrap();
    query("DELETE FROM outbox")
        .execute(uow.conn())
        .await
        .unwrap();
    uow.commit().await.unwrap();
    let Service { dir, db, .. } = s;
    db.close().await;

    let s = service_in(dir, None).await;
    let mut announced: Vec<Value> = s.published().await.into_iter().map(|(_, p)| p).collect();
    announced.sort_by_key(|p| p["userId"].as_str().unwrap().to_owned());
    assert_eq!(
        announced,
        [
            json!({"userId": "hong", "role": "customer", "locale": "ko"}),
            json!({"userId": "operator", "role": "operator", "locale": "ko"}),
        ]
    );
    let Service { dir, db, .. } = s;
    db.close().await;
    let s = service_in(dir, None).await;
    assert_eq!(s.published().await.len(), 2, "announced once");
}

#[tokio::test]
async fn an_account_s_language_is_changed_by_its_owner_or_the_operator() {
    let s = service(None).await;
    s.sign_up("hong", "correct horse", "customer").await;
    s.sign_up("mallory", "correct horse", "customer").await;
    let (hong, mallory) = (
        caller("hong", Role::Customer),
        caller("mallory", Role::Customer),
    );
    let operator = caller("operator", Role::Operator);

    let (status, body) = s.call_as(&hong, "GET", "/auth/users/hong", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"userId": "hong", "username": "hong", "role": "customer", "locale": "ko"})
    );
    let (status, body) = s
        .call_as(
            &hong,
            "PUT",
            "/auth/users/hong/locale",
            Some(json!({"locale": "en"})),
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"userId": "hong", "locale": "en"}))
    );
    // The same again changes nothing and tells nobody.
    let (status, _) = s
        .call_as(
            &hong,
            "PUT",
            "/auth/users/hong/locale",
            Some(json!({"locale": "en"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let changes: Vec<Value> = s
        .published()
        .await
        .into_iter()
        .filter(|(kind, _)| kind == "identity.LocaleChanged")
        .map(|(_, payload)| payload)
        .collect();
    assert_eq!(changes, [json!({"userId": "hong", "locale": "en"})]);

    // The next token names the new language.
    let (_, _, token) = s.sign_in("hong", "correct horse").await;
    let verified = Verifier::new(s.keys.source(), None)
        .verify(token["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(verified.locale, Some(Locale::En));

    // Someone else's account is as good as unknown; the operator may set anyone's.
    for (method, body) in [("GET", None), ("PUT", Some(json!({"locale": "ko"})))] {
        let path = if method == "GET" {
            "/auth/users/hong"
        } else {
            "/auth/users/hong/locale"
        };
        let (status, problem) = s.call_as(&mallory, method, path, body).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{method}"
        );
    }
    let (status, body) = s
        .call_as(
            &operator,
            "PUT",
            "/auth/users/hong/locale",
            Some(json!({"locale": "ko"})),
        )
        .await;
    assert_eq!(
        (status, body["locale"].as_str()),
        (StatusCode::OK, Some("ko"))
    );
    let (status, _) = s
        .call_as(
            &operator,
            "PUT",
            "/auth/users/nobody/locale",
            Some(json!({"locale": "ko"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .call_as(&operator, "GET", "/auth/users/nobody", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for (body, code) in [
        (json!({"locale": "fr"}), "invalid_locale"),
        (json!({"locale": "EN"}), "invalid_locale"),
        (json!({}), "missing_field"),
    ] {
        let (status, problem) = s
            .call_as(&hong, "PUT", "/auth/users/hong/locale", Some(body.clone()))
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{body}"
        );
    }
    // Without a verified caller, nothing.
    let request = Request::get("/auth/users/hong")
        .body(Body::empty())
        .unwrap();
    let response = s.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
