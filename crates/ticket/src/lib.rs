//! The ticket service: issues one ticket per paid flight reservation (`flight.TicketIssued`) and
//! answers each cancel once with `flight.TicketVoided` (the ticket voided, or none ever to come).
//!
//! Code map: `domain` (ticket's view of a reservation, as a state machine), `store` (that view
//! and the tickets, saved with their events in one unit of work), `policy` (the reactions to
//! reservation's and payment's events), `http` (API.md "Flight" tickets).

mod domain;
mod http;
mod policy;
mod store;

use tanda_core::consumer::Consumer;
use tanda_core::db::{Db, DbError, Migration};
use tanda_core::service::ServiceParts;

pub const NAME: &str = "ticket";
pub const MIGRATIONS: &[Migration] = store::MIGRATIONS;

/// The service as the binary's registry lists it.
pub const SPEC: tanda_core::service::ServiceSpec = tanda_core::service::ServiceSpec {
    name: NAME,
    paths: &[tanda_core::service::OwnedPath::all("/tickets")],
    produces: tanda_catalog::flight::TICKET_EVENTS,
    calls: &[],
    migrations: MIGRATIONS,
    openapi,
};

/// The service's public operations, documented (the same routes `build` serves).
pub use http::openapi;

/// Ticket's parts (the database is already migrated): the routes and one consumer, no timers.
pub async fn build(db: Db) -> Result<ServiceParts, DbError> {
    Ok(ServiceParts {
        name: NAME,
        router: http::router(db.clone()),
        internal: axum::Router::new(),
        consumers: vec![Consumer::new(NAME, db.clone(), policy::IssueTickets)],
        timers: None,
        breakers: Vec::new(),
        db,
    })
}

/// Everything that can go wrong in the ticket service; `http` turns it into problems, and the
/// consumer retries (then parks) an event that fails.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is missing or invalid (400); `detail` names the field.
    #[error("{detail}")]
    Invalid { code: &'static str, detail: String },
    #[error("no ticket {0}")]
    NotFound(String),
    /// An event breaks the catalog's contract (e.g. an invalid user id): it can never apply.
    #[error("unusable event: {0}")]
    BadEvent(String),
}
