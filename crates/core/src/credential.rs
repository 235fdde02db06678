//! The service credential: a secret shared by the processes of one Tanda, which a service presents
//! (`Authorization: Bearer <secret>`) when it calls another service's internal routes — dispatch
//! calling pay's `POST /pays`. Internal routes are never served without it: no credential is 401
//! `unauthenticated` (with `WWW-Authenticate: Bearer`), a wrong one 403 `forbidden`.
//!
//! All-in-one has no use for it: there services call each other in-process and internal routes
//! are not served at all.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::Problem;

/// The shortest secret accepted: anything shorter could be guessed.
pub const MIN_SECRET_LEN: usize = 16;

/// The shared secret. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ServiceSecret {
    secret: Arc<str>,
    digest: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the service secret must be at least {MIN_SECRET_LEN} characters, without spaces or control characters"
)]
pub struct WeakSecret;

impl ServiceSecret {
    pub fn new(secret: &str) -> Result<Self, WeakSecret> {
        let printable = secret.chars().all(|c| c.is_ascii_graphic());
        if secret.chars().count() < MIN_SECRET_LEN || !printable {
            return Err(WeakSecret);
        }
        Ok(Self {
            secret: secret.into(),
            digest: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// A fresh random secret (244 random bits), e.g. for a cluster started on one machine.
    pub fn random() -> Self {
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        Self::new(&secret).expect("64 hex digits make a strong secret")
    }

    /// The secret itself, to hand to a process this one starts.
    pub fn expose(&self) -> &str {
        &self.secret
    }

    /// The `Authorization` header value a caller sends.
    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.secret)
    }

    /// Whether `presented` is the secret. Compares digests in constant time, so neither the
    /// time taken nor the length of what was presented tells how close a guess came.
    pub fn verify(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(&self.digest).into()
    }
}

impl fmt::Debug for ServiceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceSecret(…)")
    }
}

impl FromStr for ServiceSecret {
    type Err = WeakSecret;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// `routes`, served only to callers presenting `secret`. Paths outside `routes` are untouched
/// (a 404 stays a 404), and no routes stay no routes.
pub fn require(secret: ServiceSecret, routes: Router) -> Router {
    if !routes.has_routes() {
        return routes;
    }
    routes.route_layer(middleware::from_fn_with_state(secret, check))
}

async fn check(State(secret): State<ServiceSecret>, request: Request, next: Next) -> Response {
    match bearer(request.headers()) {
        None => Problem::unauthenticated(
            "this is an internal call: it needs the service credential (Authorization: Bearer …)",
        )
        .into_response(),
        Some(presented) if !secret.verify(presented) => {
            tracing::warn!(path = %request.uri().path(), "an internal call with a wrong service credential");
            Problem::forbidden("the service credential is not valid").into_response()
        }
        Some(_) => next.run(request).await,
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    const SECRET: &str = "a-shared-secret-of-32-characters";

    fn internal() -> Router {
        let routes = Router::new().route("/pays", post(|| async { "charged" }));
        require(ServiceSecret::new(SECRET).unwrap(), routes)
    }

    async fn post_pays(authorization: Option<&str>) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::post("/pays");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = internal()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn without_a_credential_is_401_asking_for_a_bearer_token() {
        for authorization in [
            None,
            Some("Basic dXNlcjpwYXNz"),
            Some("Bearer "),
            Some(SECRET),
        ] {
            let (status, headers, body) = post_pays(authorization).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
            assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
            assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
            let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(problem["code"], "unauthenticated");
            assert_eq!(problem["status"], 401);
        }
    }

    #[tokio::test]
    async fn a_wrong_credential_is_403() {
        let wrong = format!("Bearer {SECRET}x");
        for authorization in [
            "Bearer wrong",
            &wrong,
            "Bearer a-shared-secret-of-32-characterS",
        ] {
            let (status, headers, body) = post_pays(Some(authorization)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{authorization}");
            assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
            let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(problem["code"], "forbidden");
        }
    }

    #[tokio::test]
    async fn the_credential_lets_the_call_through_and_other_paths_are_untouched() {
        for authorization in [format!("Bearer {SECRET}"), format!("bearer  {SECRET}")] {
            let (status, _, body) = post_pays(Some(&authorization)).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "charged"));
        }
        let response = internal()
            .oneshot(Request::post("/other").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);

        // A service without internal routes.
        let none = require(ServiceSecret::new(SECRET).unwrap(), Router::new());
        assert!(!none.has_routes());
    }

    #[test]
    fn weak_secrets_are_refused_and_none_is_ever_shown() {
        for weak in [
            "",
            "short",
            "fifteen-chars-x",
            "sixteen chars xx",
            "sixteen\tchars-xx",
        ] {
            assert_eq!(
                ServiceSecret::new(weak).unwrap_err(),
                WeakSecret,
                "{weak:?}"
            );
        }
        let secret = ServiceSecret::new(SECRET).unwrap();
        assert_eq!(format!("{secret:?}"), "ServiceSecret(…)");
        assert!(secret.verify(SECRET));
        assert!(!secret.verify(&SECRET[1..]));
        assert_eq!(secret.authorization(), format!("Bearer {SECRET}"));

        let (a, b) = (ServiceSecret::random(), ServiceSecret::random());
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a.expose(), b.expose());
        assert!(a.verify(a.expose()) && !a.verify(b.expose()));
    }
}
