//! The ride-history service: a CQRS read model of every ride (booking + dispatch + payment).
//!
//! It is built only from events and never calls another service. Code map: `domain` (what each
//! event says about a ride, and the ride's JSON), `store` (the row upserts and reads), `policy`
//! (the consumer), `http` (routes).

mod domain;
mod http;
mod policy;
mod store;

use tanda_core::consumer::Consumer;
use tanda_core::db::Migration;
use tanda_core::event::DecodeError;
use tanda_core::service::ServiceParts;
use tanda_core::{Db, DbError};

pub const NAME: &str = "ride-history";

/// The service's public operations, documented (the same routes `build` serves).
pub use http::openapi;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "ride_histories",
        // Every column but the key is filled by some event, in whatever order they come;
        // `*_status_at` is the time of the event a status came from.
        sql: "CREATE TABLE ride_histories (
              book_id VARCHAR(200) PRIMARY KEY,
              customer_id VARCHAR(64),
              customer_name TEXT,
              pickup_name TEXT,
              pickup_lat DOUBLE PRECISION,
              pickup_lng DOUBLE PRECISION,
              dropoff_name TEXT,
              dropoff_lat DOUBLE PRECISION,
              dropoff_lng DOUBLE PRECISION,
              requested_at BIGINT,
              book_status VARCHAR(40),
              book_status_at BIGINT,
              dispatch_id VARCHAR(200),
              dispatch_status VARCHAR(40),
              dispatch_status_at BIGINT,
              driver_id VARCHAR(64),
              driver_name TEXT,
              car_number TEXT,
              driver_phone TEXT,
              eta_seconds BIGINT,
              distance_meters BIGINT,
              fare BIGINT,
              pay_id VARCHAR(200),
              updated_at BIGINT NOT NULL);
          CREATE INDEX ride_histories_customer ON ride_histories (customer_id, requested_at)",
    },
    // How the fare was paid (`CARD`, `CASH`), from the payment or the trip's end, whichever comes
    // first; rides paid before it was recorded were all paid by card.
    Migration {
        version: 2,
        name: "ride_histories' payment method",
        sql: "ALTER TABLE ride_histories ADD COLUMN payment_method VARCHAR(8);
          UPDATE ride_histories SET payment_method = 'CARD' WHERE pay_id IS NOT NULL",
    },
];

/// The service as the binary's registry lists it.
pub const SPEC: tanda_core::service::ServiceSpec = tanda_core::service::ServiceSpec {
    name: NAME,
    paths: &[tanda_core::service::OwnedPath::all("/rideHistories")],
    produces: &[],
    calls: &[],
    migrations: MIGRATIONS,
    openapi,
};

/// An event the read model cannot use: a real failure, so the consumer retries and then parks it.
#[derive(Debug, thiserror::Error)]
pub enum RideHistoryError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("occurredAt `{0}` is not an RFC 3339 UTC time")]
    OccurredAt(String),
}

/// Ride-history's parts (the database is already migrated): the routes and one consumer, no timers.
pub async fn build(db: Db) -> Result<ServiceParts, DbError> {
    let consumer = Consumer::new(NAME, db.clone(), policy::RecordRides);
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
