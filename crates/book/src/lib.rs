//! The book service: the customer's taxi booking, from request to completion or cancellation.
//!
//! `domain` is the booking's state machine, `store` its SQL and outbox, `http` the customer's API
//! (API.md "Bookings"), `policy` the reactions to dispatch's events and to driver availability,
//! which feeds the no-taxi breaker of `POST /books`.

mod domain;
mod http;
mod policy;
mod store;

use std::sync::Arc;
use std::time::Duration;

use tanda_core::consumer::Consumer;
use tanda_core::db::{Db, DbError, IsConflict, Migration};
use tanda_core::service::ServiceParts;

use crate::domain::Rejection;

pub const NAME: &str = "book";
pub const MIGRATIONS: &[Migration] = store::MIGRATIONS;

/// The service's public operations, documented (the same routes `build` serves).
pub use http::openapi;

/// The book service's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `Retry-After` of a `503 no_taxi_available`: when a customer should try again.
    pub no_taxi_retry_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            no_taxi_retry_after: Duration::from_secs(10),
        }
    }
}

/// The service's routes and its consumer, on a database `MIGRATIONS` were applied to.
pub async fn build(db: Db, config: Config) -> Result<ServiceParts, DbError> {
    Ok(ServiceParts {
        name: NAME,
        router: http::router(db.clone(), config.no_taxi_retry_after),
        internal: axum::Router::new(),
        consumers: vec![Consumer {
            name: "book",
            db: db.clone(),
            types: policy::TYPES,
            handler: Arc::new(policy::BookPolicy),
        }],
        timers: None,
        breakers: Vec::new(),
        db,
    })
}

/// Everything that can go wrong in the book service; `http` turns it into problems.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is missing or invalid (400); `detail` names the field.
    #[error("{detail}")]
    Invalid { code: &'static str, detail: String },
    #[error("no book {0}")]
    NotFound(String),
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("{0}")]
    Db(#[from] DbError),
}

impl IsConflict for Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Db(e) if e.is_conflict())
    }
}
