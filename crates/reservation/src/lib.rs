//! The reservation service (API.md "Flight"): flights with seat capacity, a user's reservation of
//! a seat, and its cancellation — the start and the end of the flight saga.
//!
//! `domain` is the reservation's state machine, `store` its SQL (seats held and released in the
//! same unit of work as the reservation), `http` the user's API, `policy` the reactions to
//! payment's and ticket's answers and to the pending timer.

mod domain;
mod http;
mod policy;
mod store;

use std::time::Duration;

use tanda_core::consumer::Consumer;
use tanda_core::db::{Db, DbError, IsConflict, Migration};
use tanda_core::service::ServiceParts;

use crate::domain::Rejection;

pub const NAME: &str = "reservation";
pub const MIGRATIONS: &[Migration] = store::MIGRATIONS;

/// The service as the binary's registry lists it.
pub const SPEC: tanda_core::service::ServiceSpec = tanda_core::service::ServiceSpec {
    name: NAME,
    paths: &[
        tanda_core::service::OwnedPath::all("/flights"),
        tanda_core::service::OwnedPath::all("/reservations"),
    ],
    produces: tanda_catalog::flight::RESERVATION_EVENTS,
    calls: &[],
    migrations: MIGRATIONS,
    openapi,
};

/// The service's public operations, documented (the same routes `build` serves).
pub use http::openapi;

/// The reservation service's settings.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args, serde::Serialize)]
#[group(skip)] // each service calls its settings `Config`
pub struct Config {
    /// How long a reservation waits for its payment result before it shows `PENDING`
    /// ("payment delayed"); it completes by itself when payment answers.
    #[arg(global = true, long, env = "TANDA_PAYMENT_PENDING_AFTER", default_value = "5s", value_parser = tanda_core::settings::duration)]
    #[serde(serialize_with = "tanda_core::settings::write_duration")]
    pub payment_pending_after: Duration,
    /// With this many reservations waiting for payment's answer, `POST /reservations` answers
    /// `503 payment_overloaded` (with `Retry-After`) until payment catches up; 0: never.
    #[arg(
        global = true,
        long,
        env = "TANDA_PAYMENT_BACKLOG_LIMIT",
        default_value_t = 1000
    )]
    pub payment_backlog_limit: u64,
}

impl Default for Config {
    fn default() -> Self {
        tanda_core::settings::defaults()
    }
}

/// The service's routes, its consumer and its timer handler, on a database `MIGRATIONS` were
/// applied to.
pub async fn build(db: Db, config: Config) -> Result<ServiceParts, DbError> {
    Ok(ServiceParts {
        name: NAME,
        router: http::router(db.clone(), &config),
        internal: axum::Router::new(),
        consumers: vec![Consumer::new("reservation", db.clone(), policy::Answers)],
        timers: Some(tanda_core::timers::typed(policy::PendingTimer)),
        breakers: Vec::new(),
        db,
    })
}

/// Everything that can go wrong in the reservation service; `http` turns it into problems.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is missing or invalid (400); `detail` names the field.
    #[error("{detail}")]
    Invalid { code: &'static str, detail: String },
    #[error("no {what} {id}")]
    NotFound { what: &'static str, id: String },
    #[error("flight {0} already exists")]
    FlightExists(String),
    #[error("flight {0} has no seat left")]
    SoldOut(String),
    #[error("flight {0} has departed: its seats are no longer sold")]
    FlightDeparted(String),
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The stored state breaks an invariant: worth a retry, then a dead letter, never a guess.
    #[error("inconsistent state: {0}")]
    Inconsistent(String),
    #[error("{0}")]
    Db(#[from] DbError),
}

impl IsConflict for Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Db(e) if e.is_conflict())
    }
}
