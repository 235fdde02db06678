//! The pages' only way to the system: the public HTTP API, called through the gateway's own
//! router. Each call is a real HTTP request value (method, path, JSON body, headers) handed to
//! the same routes a browser or `curl` reaches, without a socket in between; nothing here reads a
//! database or calls a service directly.

use std::convert::Infallible;
use std::fmt::{self, Write};
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

/// No answer of the public API comes near this; a larger one is refused as unreadable.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// A client of the public API, with no credentials or, made by [`Api::as_user`], with a user's.
#[derive(Clone)]
pub struct Api {
    routes: BoxCloneSyncService<Request<Body>, Response, Infallible>,
    /// The bearer token sent with every call. Never logged, never shown.
    token: Option<Arc<str>>,
    /// The address of the person at the browser, as the edge put it on the page's request.
    client: Option<HeaderValue>,
}

const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A call that did not succeed: the problem the API answered, or why there was no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub detail: String,
    /// The `Retry-After` of a 429 or 503, in seconds.
    pub retry_after: Option<u64>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for ApiError {}

impl Api {
    /// `routes` answers the public API (the gateway's routes, in-process or proxying).
    pub fn new<S>(routes: S) -> Self
    where
        S: tower::Service<Request<Body>, Response = Response, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self {
            routes: BoxCloneSyncService::new(routes),
            token: None,
            client: None,
        }
    }

    /// The same API, every call of which says it comes from the client of the page request
    /// `headers` belong to (`X-Forwarded-For`, as the edge set it): sign-in is throttled by the
    /// client's address, and a page's calls must count against the person at the browser.
    pub fn for_client(&self, headers: &HeaderMap) -> Api {
        Api {
            client: headers.get(FORWARDED_FOR).cloned(),
            ..self.clone()
        }
    }

    /// The same API, every call of which carries `token` as its bearer token: what a page does,
    /// it does as its signed-in user.
    pub fn as_user(&self, token: &str) -> Api {
        Api {
            token: Some(Arc::from(token)),
            ..self.clone()
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.call(Method::GET, path, None, None).await
    }

    /// A list for a panel: what the API answered, or nothing and why (shown in the panel).
    pub async fn list<T: DeserializeOwned>(&self, path: &str) -> (Vec<T>, Option<ApiError>) {
        match self.get::<Vec<T>>(path).await {
            Ok(list) => (list, None),
            Err(e) => (Vec::new(), Some(e)),
        }
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ApiError> {
        self.call(Method::POST, path, Some(json(body)), None).await
    }

    /// A `POST` that creates something, made safe to repeat with an `Idempotency-Key`.
    pub async fn create<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        idempotency_key: &str,
    ) -> Result<T, ApiError> {
        self.call(Method::POST, path, Some(json(body)), Some(idempotency_key))
            .await
    }

    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.call(Method::POST, path, None, None).await
    }

    pub async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ApiError> {
        self.call(Method::PUT, path, Some(json(body)), None).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        idempotency_key: Option<&str>,
    ) -> Result<T, ApiError> {
        let mut request = Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(client) = &self.client {
            request = request.header(FORWARDED_FOR, client);
        }
        let request = request
            .body(body.map_or_else(Body::empty, Body::from))
            .map_err(|e| unusable(format!("cannot form a request for {path}: {e}")))?;
        let Ok(response) = self.routes.clone().oneshot(request).await;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let bytes = to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| unusable(format!("the answer to {path} could not be read: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| unusable(format!("the answer to {path} was not understood: {e}")));
        }
        Err(ApiError {
            retry_after,
            ..problem(status, &bytes)
        })
    }
}

fn json(body: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(body).expect("request bodies are plain data and always serialize")
}

fn unusable(detail: String) -> ApiError {
    ApiError {
        status: StatusCode::BAD_GATEWAY,
        code: "bad_gateway".to_owned(),
        detail,
        retry_after: None,
    }
}

/// Reads an RFC 9457 problem; anything else still yields a readable message.
fn problem(status: StatusCode, bytes: &[u8]) -> ApiError {
    #[derive(serde::Deserialize)]
    struct Problem {
        code: Option<String>,
        detail: Option<String>,
        title: Option<String>,
    }
    let parsed: Option<Problem> = serde_json::from_slice(bytes).ok();
    let reason = status.canonical_reason().unwrap_or("error");
    match parsed {
        Some(p) => ApiError {
            status,
            code: p.code.unwrap_or_else(|| "error".to_owned()),
            detail: p.detail.or(p.title).unwrap_or_else(|| reason.to_owned()),
            retry_after: None,
        },
        None => ApiError {
            status,
            code: "error".to_owned(),
            detail: format!("{} {reason}", status.as_u16()),
            retry_after: None,
        },
    }
}

/// One path segment or query value, percent-encoded (everything but RFC 3986's unreserved set).
pub fn enc(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::{get, post};
    use serde_json::{Value, json};

    use super::*;

    fn api() -> Api {
        Api::new(
            Router::new()
                .route(
                    "/things/{id}",
                    get(
                        |axum::extract::Path(id): axum::extract::Path<String>| async move {
                            axum::Json(json!({"id": id}))
                        },
                    ),
                )
                .route(
                    "/things",
                    post(|headers: HeaderMap, body: String| async move {
                        let key = headers
                            .get("idempotency-key")
                            .map(|v| v.to_str().unwrap().to_owned());
                        axum::Json(json!({"body": body, "key": key}))
                    }),
                )
                .route(
                    "/whoami",
                    get(|headers: HeaderMap| async move {
                        let auth = headers
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_owned());
                        axum::Json(json!({"authorization": auth}))
                    }),
                )
                .route(
                    "/busy",
                    get(|| async {
                        tanda_core::Problem::unavailable("busy", "try again shortly", 7)
                    }),
                )
                .route(
                    "/broken",
                    get(|| async {
                        tanda_core::Problem::conflict("sold_out", "no seats are left on KE703")
                    }),
                ),
        )
    }

    #[tokio::test]
    async fn calls_reach_the_routes_with_method_body_and_key() {
        let got: Value = api().get("/things/a%20b").await.unwrap();
        assert_eq!(got["id"], "a b");
        let got: Value = api()
            .create("/things", &json!({"n": 1}), "k-1")
            .await
            .unwrap();
        assert_eq!(got["body"], r#"{"n":1}"#);
        assert_eq!(got["key"], "k-1");
    }

    #[tokio::test]
    async fn problems_come_back_as_errors_with_their_code_and_detail() {
        let err = api().get::<Value>("/broken").await.unwrap_err();
        assert_eq!(err.status, StatusCode::CONFLICT);
        assert_eq!(err.code, "sold_out");
        assert_eq!(err.to_string(), "no seats are left on KE703");
        let err = api().get::<Value>("/nowhere").await.unwrap_err();
        assert_eq!(err.status, StatusCode::NOT_FOUND);
        assert_eq!(err.detail, "404 Not Found");
    }

    #[tokio::test]
    async fn a_users_calls_carry_their_token_and_no_one_elses() {
        let anonymous = api();
        let minji = anonymous.as_user("minji.token.sig");
        let got: Value = minji.get("/whoami").await.unwrap();
        assert_eq!(got["authorization"], "Bearer minji.token.sig");
        let got: Value = anonymous.get("/whoami").await.unwrap();
        assert_eq!(
            got["authorization"],
            Value::Null,
            "the original stays anonymous"
        );
    }

    #[tokio::test]
    async fn retry_after_comes_back_with_the_problem() {
        let err = api().get::<Value>("/busy").await.unwrap_err();
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.retry_after, Some(7));
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(enc("b-1_x.y~z"), "b-1_x.y~z");
        assert_eq!(enc("a/b c?&"), "a%2Fb%20c%3F%26");
        assert_eq!(enc("customer:민"), "customer%3A%EB%AF%BC");
    }
}
