//! The gateway's one error type: what can go wrong between it and the services, and how each
//! case looks to a client.

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tanda_core::Problem;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// No answer: the service is down, restarting, or dropped the connection.
    #[error("the {service} service did not answer: {source}")]
    Unreachable {
        service: &'static str,
        source: reqwest::Error,
    },
    /// An answer the gateway has to read (an admin list) that it cannot.
    #[error("the {service} service sent an unreadable answer: {source}")]
    Unreadable {
        service: &'static str,
        source: reqwest::Error,
    },
    /// A service's own failure answer where the gateway needed a success; passed on as it is.
    #[error("the {service} service answered {}", answer.status())]
    Answered {
        service: &'static str,
        answer: Response,
    },
    /// The client's body could not be read (too large, or the client went away).
    #[error(transparent)]
    Body(#[from] BytesRejection),
    /// The gateway's own refusal (e.g. a caller who may not do this).
    #[error(transparent)]
    Refused(#[from] Problem),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Refused(problem) => problem.into_response(),
            Error::Unreachable { service, .. } => {
                tracing::warn!(error = %self, "upstream unavailable");
                Problem::unavailable(
                    "upstream_unavailable",
                    format!("the {service} service is unavailable; retry shortly"),
                    1,
                )
                .into_response()
            }
            Error::Unreadable { service, .. } => {
                tracing::error!(error = %self, "unreadable upstream answer");
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_invalid",
                    format!("the {service} service sent an answer the gateway cannot read"),
                )
                .into_response()
            }
            Error::Answered { answer, .. } => answer,
            // The same problem a service gives for a body it cannot read.
            Error::Body(rejection) => {
                Problem::new(rejection.status(), "invalid_body", rejection.body_text())
                    .into_response()
            }
        }
    }
}
