//! The payment service: users' flight wallets. It debits a reservation's price once when the seat
//! is held (`flight.PaymentSucceeded` / `flight.PaymentFailed`) and answers each cancel once with
//! `flight.PaymentRefunded` (the debit given back, or 0 when nothing was debited).
//!
//! Code map: `domain` (the wallet's state machine), `store` (accounts, per-reservation records and
//! the ledger of movements, written with their events in one unit of work), `http` (API.md
//! "Flight" accounts, plus the ledger), `policy` (the reactions to reservation's events).

mod domain;
mod http;
mod policy;
mod store;

use tanda_core::consumer::Consumer;
use tanda_core::db::{Db, DbError, IsConflict, Migration};
use tanda_core::service::ServiceParts;

use crate::domain::Rejection;

pub const NAME: &str = "payment";
pub const MIGRATIONS: &[Migration] = store::MIGRATIONS;

/// The service as the binary's registry lists it.
pub const SPEC: tanda_core::service::ServiceSpec = tanda_core::service::ServiceSpec {
    name: NAME,
    paths: &[tanda_core::service::OwnedPath::all("/accounts")],
    produces: tanda_catalog::flight::PAYMENT_EVENTS,
    calls: &[],
    migrations: MIGRATIONS,
    openapi,
};

/// The service's public operations, documented (the same routes `build` serves).
pub use http::openapi;

/// Payment's parts (the database is already migrated): the routes and one consumer, no timers.
pub async fn build(db: Db) -> Result<ServiceParts, DbError> {
    Ok(ServiceParts {
        name: NAME,
        router: http::router(db.clone()),
        internal: axum::Router::new(),
        consumers: vec![Consumer::new(NAME, db.clone(), policy::SettleReservations)],
        timers: None,
        breakers: Vec::new(),
        db,
    })
}

/// Everything that can go wrong in the payment service; `http` turns it into problems, and the
/// consumer retries (then parks) an event that fails.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is missing or invalid (400); `detail` names the field.
    #[error("{detail}")]
    Invalid { code: &'static str, detail: String },
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// An event breaks the catalog's contract (e.g. a negative price): it can never apply.
    #[error("unusable event: {0}")]
    BadEvent(String),
    #[error("{0}")]
    Db(#[from] DbError),
}

impl IsConflict for Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Db(e) if e.is_conflict())
    }
}
