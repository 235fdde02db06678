//! RFC 9457 problem details: every error a client sees, with a machine-readable `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::db::DbError;

/// An RFC 9457 problem: `code` says what went wrong, for a program; `detail`, for a person.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub kind: String,
    #[schema(example = "Not Found")]
    pub title: String,
    #[schema(example = 404)]
    pub status: u16,
    #[schema(example = "no booking 0193…")]
    pub detail: String,
    #[schema(example = "not_found")]
    pub code: String,
    #[serde(skip)]
    pub retry_after_secs: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            retry_after_secs: None,
        }
    }
    /// 400: the request is malformed or a field is invalid.
    pub fn bad_request(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }
    /// 401: no credentials; answered with `WWW-Authenticate: Bearer`.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }
    /// 403: credentials that may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    /// 404.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} {id}"),
        )
    }
    /// 409: not allowed in the current state.
    pub fn conflict(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }
    /// 402: the card was declined.
    pub fn payment_declined(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYMENT_REQUIRED, "card_declined", detail)
    }
    /// 503 with `Retry-After`.
    pub fn unavailable(code: &str, detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, detail)
        }
    }
    /// 429 with `Retry-After`.
    pub fn too_many_requests(code: &str, detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, detail)
        }
    }
    /// 500: the detail is logged, not shown.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong; it was logged",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&self)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // RFC 9110 §15.5.2: a 401 says how to authenticate.
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<DbError> for Problem {
    fn from(e: DbError) -> Self {
        match e {
            DbError::IdempotencyMismatch => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request",
            ),
            DbError::Conflict(what) => Problem::conflict(
                "concurrent_update",
                format!("{what} changed concurrently; retry"),
            ),
            // The database is down, full or read-only for now: the client may try again.
            e if e.is_transient() => {
                tracing::error!(error = %e, hint = e.hint(), "database unavailable");
                Problem::unavailable(
                    "storage_unavailable",
                    "storage is unavailable; retry shortly",
                    1,
                )
            }
            // Anything else (the stored data is not what the code reads, a statement the
            // database refuses) is a defect, not a passing outage.
            e @ (DbError::Decode(_)
            | DbError::RowNotFound
            | DbError::Engine(_)
            | DbError::Io(_)
            | DbError::Closed(_)
            | DbError::Commit(_)
            | DbError::Config(_)
            | DbError::MigrationChanged { .. }) => Problem::internal(&e),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

impl std::error::Error for Problem {}
