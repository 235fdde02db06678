//! The crate's one error type, and how each case looks to a client (an RFC 9457 problem).

use std::time::Duration;

use tanda_core::db::IsConflict;
use tanda_core::event::DecodeError;
use tanda_core::geo::InvalidLatLng;
use tanda_core::{DbError, Problem};

use crate::domain::Rejection;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("{0}")]
    PaymentDeclined(String),
    #[error("payment is unavailable: {reason}")]
    PaymentUnavailable {
        reason: String,
        retry_after: Duration,
    },
    #[error("pay refused the charge request: {0}")]
    PaymentInvalid(String),
    /// The dispatch was charged another amount than the fare computed now.
    #[error("{0}")]
    PaymentMismatch(String),
    #[error(transparent)]
    Event(#[from] DecodeError),
    #[error("event {0} has an invalid place: {1}")]
    InvalidPlace(String, InvalidLatLng),
    #[error("event {0} has an invalid answerBy `{1}`")]
    InvalidAnswerBy(String, String),
    /// A row or timer this service wrote does not read back: a bug or a hand edit.
    #[error("stored {0} is invalid")]
    Corrupt(String),
}

impl IsConflict for Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Db(e) if e.is_conflict())
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::Rejected(Rejection::UnknownDriver(id)) => {
                Problem::not_found("driver", id.as_str())
            }
            Error::Rejected(Rejection::UnknownDispatch(id)) => Problem::not_found("dispatch", &id),
            // Bad input, not a state the trip is in: the same distance is refused whenever sent.
            Error::Rejected(r @ Rejection::ImplausibleDistance { .. }) => {
                Problem::bad_request(r.code(), r.to_string())
            }
            Error::Rejected(r) => Problem::conflict(r.code(), r.to_string()),
            Error::Db(e) => e.into(),
            // `reason` is pay's own sentence, e.g. "the card was declined (insufficient_funds)".
            Error::PaymentDeclined(reason) => {
                Problem::payment_declined(format!("{reason}; the trip is still in progress"))
            }
            Error::PaymentUnavailable {
                reason,
                retry_after,
            } => Problem::unavailable(
                "payment_unavailable",
                format!(
                    "payment is unavailable ({reason}); the trip is still in progress, end it again shortly"
                ),
                retry_after.as_secs_f64().ceil().max(1.0) as u64,
            ),
            Error::PaymentMismatch(reason) => Problem::conflict(
                "amount_mismatch",
                format!("{reason}; the trip is still in progress"),
            ),
            e @ (Error::PaymentInvalid(_)
            | Error::Event(_)
            | Error::InvalidPlace(..)
            | Error::InvalidAnswerBy(..)
            | Error::Corrupt(_)) => Problem::internal(&e),
        }
    }
}
