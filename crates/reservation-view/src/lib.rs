//! The reservation-view service: a user's flight reservations as one list (the seed's "front-end
//! reservation list", CQRS), joining what reservation, payment and ticket each said.
//!
//! It is built only from events and never calls another service. Code map: `domain` (what each
//! event says about a reservation, and the view's JSON), `store` (the row upserts and reads),
//! `policy` (the consumer), `http` (routes).

mod domain;
mod http;
mod policy;
mod store;

use tanda_core::consumer::Consumer;
use tanda_core::db::Migration;
use tanda_core::event::DecodeError;
use tanda_core::service::ServiceParts;
use tanda_core::{Db, DbError};

pub const NAME: &str = "reservation-view";

/// The service's public operations, documented (the same routes `build` serves).
pub use http::openapi;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "reservation_views",
    // Every column but the key is filled by some event, in whatever order they come.
    // `status_at` is the time of the event the status came from; `*_stage` is how far payment's
    // and ticket's statuses have got, so they only ever move forward.
    sql: "CREATE TABLE reservation_views (
              reservation_id VARCHAR(200) PRIMARY KEY,
              user_id VARCHAR(64),
              flight_id VARCHAR(64),
              origin TEXT,
              destination TEXT,
              departs_at VARCHAR(64),
              price BIGINT,
              requested_at BIGINT,
              status VARCHAR(40),
              status_at BIGINT,
              payment_status VARCHAR(20),
              payment_stage BIGINT,
              ticket_id VARCHAR(200),
              ticket_status VARCHAR(20),
              ticket_stage BIGINT,
              updated_at BIGINT NOT NULL);
          CREATE INDEX reservation_views_user ON reservation_views (user_id, requested_at)",
}];

/// The service as the binary's registry lists it.
pub const SPEC: tanda_core::service::ServiceSpec = tanda_core::service::ServiceSpec {
    name: NAME,
    paths: &[tanda_core::service::OwnedPath::all("/reservationViews")],
    produces: &[],
    calls: &[],
    migrations: MIGRATIONS,
    openapi,
};

/// An event the read model cannot use: a real failure, so the consumer retries and then parks it.
#[derive(Debug, thiserror::Error)]
pub enum ReservationViewError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("occurredAt `{0}` is not an RFC 3339 UTC time")]
    OccurredAt(String),
}

/// Reservation-view's parts (the database is already migrated): the routes and one consumer,
/// no timers.
pub async fn build(db: Db) -> Result<ServiceParts, DbError> {
    let consumer = Consumer::new(NAME, db.clone(), policy::RecordReservations);
    Ok(ServiceParts {
        name: NAME,
        router: http::router(db.clone()),
        internal: axum::Router::new(),
        db,
        consumers: vec![consumer],
        timers: None,
        breakers: Vec::new(),
    })
}
