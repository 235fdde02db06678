//! Request extractors whose rejections are problems, and the `Idempotency-Key` header.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::Caller;
use crate::db::StoredResponse;
use crate::problem::Problem;

/// `axum::Json`, with malformed bodies answered as a 400 problem.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A body that is not JSON, or not JSON of the right shape (axum would say 422 for the latter),
/// is one that no state of the system would accept: 400, as API.md's rule for 400 and 422 has it.
impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            Problem::new(r.status(), "unsupported_media_type", r.body_text())
        } else {
            Problem::bad_request("invalid_body", r.body_text())
        }
    }
}

/// `axum::extract::Path` answering bad segments with a 400 problem.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub struct Path<T>(pub T);

impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Self {
        Problem::bad_request("invalid_path", r.body_text())
    }
}

/// `axum::extract::Query` answering bad parameters with a 400 problem.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub struct Query<T>(pub T);

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Self {
        Problem::bad_request("invalid_query", r.body_text())
    }
}

/// The optional `Idempotency-Key` header of a creating POST: 1–255 visible ASCII characters.
///
/// Keys are the caller's own: with a verified caller, the key kept is the caller's id and a
/// digest of the key, so one caller's key can neither replay nor block another's request.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let key = idempotency_key(&parts.headers)?;
        let caller = parts.extensions.get::<Caller>();
        Ok(IdempotencyKey(key.map(|key| match caller {
            Some(caller) => scoped(caller, &key),
            None => key,
        })))
    }
}

/// `subject:sha256(key)`: at most 129 characters, within the stored key's 255.
fn scoped(caller: &Caller, key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    format!("{}:{}", caller.subject, hex::encode(digest))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
    match key {
        Some(k) => Ok(Some(k.to_owned())),
        None => Err(Problem::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-255 visible ASCII characters",
        )),
    }
}

/// A stored response replayed for a repeated idempotency key.
impl IntoResponse for StoredResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut r = (status, axum::Json(self.body)).into_response();
        r.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
        r
    }
}

/// Answers unknown paths with a 404 problem.
pub async fn not_found_fallback(uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {}", uri.path()),
    )
}
