//! The book service: the customer's taxi booking, from request to completion or cancellation.
//!
//! `domain` is the booking's state machine, `store` its SQL, outbox and answer timer, `http` the
//! customer's API (API.md "Bookings"), `policy` the reactions to dispatch's events, to driver
//! availability (which feeds the no-taxi breaker of `POST /books`) and to the answer timer. Book
//! answers each customer by the dispatch deadline on its own, so that a booking never waits on
//! the health of another service for its answer.

mod domain;
mod http;
mod policy;
mod store;

use std::time::Duration;

use tanda_catalog::taxi::search::Search;
use tanda_core::consumer::Consumer;
use tanda_core::db::{Db, DbError, IsConflict, Migration};
use tanda_core::service::ServiceParts;

use crate::domain::Rejection;

pub const NAME: &str = "book";
pub const MIGRATIONS: &[Migration] = store::MIGRATIONS;

/// The service as the binary's registry lists it.
pub const SPEC: tanda_core::service::ServiceSpec = tanda_core::service::ServiceSpec {
    name: NAME,
    paths: &[tanda_core::service::OwnedPath::all("/books")],
    produces: tanda_catalog::taxi::BOOK_EVENTS,
    calls: &[],
    migrations: MIGRATIONS,
    openapi,
};

/// The service's public operations, documented (the same routes `build` serves).
pub use http::openapi;

/// The book service's settings.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Serialize)]
#[group(skip)] // each service calls its settings `Config`
pub struct Config {
    /// `Retry-After` sent with `503 no_taxi_available` while no driver is available.
    #[arg(global = true, long, env = "TANDA_NO_TAXI_RETRY_AFTER", default_value = "10s", value_parser = tanda_core::settings::duration)]
    #[serde(serialize_with = "tanda_core::settings::write_duration")]
    pub no_taxi_retry_after: Duration,
    /// Dispatch's search: a booking is answered by its deadline at the latest, and only a driver
    /// available within its radius of the pickup keeps `POST /books` from answering
    /// `503 no_taxi_available`. Set with dispatch's flags, and given to book as well.
    #[arg(skip)]
    #[serde(skip)]
    pub search: Search,
}

impl Default for Config {
    fn default() -> Self {
        tanda_core::settings::defaults()
    }
}

/// The service's routes and its consumer, on a database `MIGRATIONS` were applied to.
pub async fn build(db: Db, config: Config) -> Result<ServiceParts, DbError> {
    Ok(ServiceParts {
        name: NAME,
        router: http::router(db.clone(), &config),
        internal: axum::Router::new(),
        consumers: vec![Consumer::new("book", db.clone(), policy::BookPolicy)],
        timers: Some(tanda_core::timers::typed(policy::AnswerDue)),
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
