//! The dispatch service (API.md "Drivers" and "Dispatches"): drivers going on and off line,
//! matching each booking to the nearest available driver until the booking's answer is due,
//! offers that expire, trips, and the fare paid through pay when a trip ends (charged to the
//! card, replaced after a decline if need be, or taken in cash by the driver).
//!
//! Where things are: `domain` is the state machine (pure), `store` the SQL and the one way state
//! changes (including matching), `nearby` the search for the nearest available drivers, `payment` the
//! resilient pay call, `http` the routes, `policy` the reactions to bookings and to timers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tanda_catalog::taxi::pay::{Pay, PayRequest};
pub use tanda_catalog::taxi::search::Search;
use tanda_core::consumer::Consumer;
use tanda_core::db::Migration;
use tanda_core::service::ServiceParts;
use tanda_core::settings;
use tanda_core::{Db, DbError};

mod announce;
mod domain;
mod error;
mod http;
mod http_pay;
mod nearby;
mod payment;
mod policy;
mod store;
mod trip_end;

pub use domain::Fare;
/// The service's public operations, documented (the same routes `build` serves).
pub use http::openapi;
pub use http_pay::HttpPay;
/// Not part of the service's interface: reachable only for `benches/nearest.rs`.
#[doc(hidden)]
pub use nearby::nearest_available;

pub const NAME: &str = "dispatch";

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "drivers and dispatches",
        sql: "
        CREATE TABLE drivers (
            id VARCHAR(64) PRIMARY KEY,
            name VARCHAR(100) NOT NULL,
            car_number VARCHAR(20) NOT NULL,
            phone VARCHAR(20) NOT NULL,
            lat DOUBLE PRECISION NOT NULL,
            lng DOUBLE PRECISION NOT NULL,
            status VARCHAR(16) NOT NULL,
            dispatch_id VARCHAR(64),
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            version BIGINT NOT NULL);
        CREATE INDEX drivers_status ON drivers (status);
        CREATE TABLE dispatches (
            id VARCHAR(64) PRIMARY KEY,
            book_id VARCHAR(200) NOT NULL UNIQUE,
            customer_id VARCHAR(200) NOT NULL,
            card_token TEXT,
            pickup_name TEXT,
            pickup_lat DOUBLE PRECISION,
            pickup_lng DOUBLE PRECISION,
            dropoff_name TEXT,
            dropoff_lat DOUBLE PRECISION,
            dropoff_lng DOUBLE PRECISION,
            status VARCHAR(16) NOT NULL,
            driver_id VARCHAR(64),
            offer_driver_id VARCHAR(64),
            offer_expires_at BIGINT,
            eta_seconds BIGINT,
            distance_meters BIGINT,
            fare BIGINT,
            pay_id VARCHAR(200),
            deadline_at BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            version BIGINT NOT NULL);
        CREATE INDEX dispatches_waiting ON dispatches (status, created_at);
        CREATE TABLE dispatch_refusals (
            dispatch_id VARCHAR(64) NOT NULL,
            driver_id VARCHAR(64) NOT NULL,
            PRIMARY KEY (dispatch_id, driver_id))
    ",
    },
    // `GET /dispatches?driverId=`: a driver's dispatches, newest first.
    Migration {
        version: 2,
        name: "dispatches by driver",
        sql: "CREATE INDEX dispatches_driver ON dispatches (driver_id, created_at)",
    },
    // The path of the locations the driver reported during the trip, in metres (NULL until the
    // first): what a reported `distanceMeters` is checked against.
    Migration {
        version: 3,
        name: "trip path",
        sql: "ALTER TABLE dispatches ADD COLUMN trip_path_m DOUBLE PRECISION",
    },
    // How an ended trip was paid (`CARD`, `CASH`; NULL: by card, as every trip before), and the
    // card charge last declined and when, so that the customer is told of it once.
    Migration {
        version: 4,
        name: "settlement and declines",
        sql: "ALTER TABLE dispatches ADD COLUMN pay_method VARCHAR(8);
        ALTER TABLE dispatches ADD COLUMN declined_card_token TEXT;
        ALTER TABLE dispatches ADD COLUMN declined_at BIGINT",
    },
    // Matching reads the available drivers around a pickup from here, on every instance
    // (`nearby.rs`); the literal is `DriverStatus::Available`'s, as the search writes it.
    Migration {
        version: 5,
        name: "available drivers by place",
        sql: "CREATE INDEX drivers_available_at ON drivers (lat, lng) WHERE status = 'AVAILABLE'",
    },
];

/// The service as the binary's registry lists it.
pub const SPEC: tanda_core::service::ServiceSpec = tanda_core::service::ServiceSpec {
    name: NAME,
    paths: &[
        tanda_core::service::OwnedPath::all("/drivers"),
        tanda_core::service::OwnedPath::all("/dispatches"),
    ],
    produces: tanda_catalog::taxi::DISPATCH_EVENTS,
    calls: &[tanda_catalog::taxi::pay::SERVICE],
    migrations: MIGRATIONS,
    openapi,
};

/// Dispatch's settings.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Serialize)]
#[group(skip)] // each service calls its settings `Config`
pub struct Config {
    /// How long a driver has to accept an offer before it goes to the next driver.
    #[arg(global = true, long = "dispatch-offer-timeout", env = "TANDA_DISPATCH_OFFER_TIMEOUT", default_value = "15s", value_parser = settings::duration)]
    #[serde(serialize_with = "settings::write_duration")]
    pub offer_timeout: Duration,
    /// How long and how far a booking searches for a driver: the deadline is for bookings that
    /// do not say when their answer is due (book's own `answerBy` rules otherwise).
    #[command(flatten)]
    pub search: Search,
    #[command(flatten)]
    pub fare: Fare,
    /// Average taxi speed used for arrival estimates, in km/h.
    #[arg(
        global = true,
        long = "taxi-speed-kmh",
        env = "TANDA_TAXI_SPEED_KMH",
        default_value_t = 25.0
    )]
    pub speed_kmh: f64,
    #[command(flatten)]
    pub payment: PaymentPolicy,
}

impl Default for Config {
    fn default() -> Self {
        settings::defaults()
    }
}

/// How the pay call at the end of a trip protects itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct PaymentPolicy {
    /// Timeout of one call from dispatch to pay.
    #[arg(global = true, long = "pay-timeout", env = "TANDA_PAY_TIMEOUT", default_value = "3s", value_parser = settings::duration)]
    #[serde(serialize_with = "settings::write_duration")]
    pub timeout: Duration,
    /// Extra attempts of a pay call that timed out or found pay unavailable, with backoff
    /// 100 ms, 200 ms, ...
    #[arg(
        global = true,
        long = "pay-retries",
        env = "TANDA_PAY_RETRIES",
        default_value_t = 2
    )]
    pub retries: u32,
    /// Consecutive pay failures that open the circuit breaker.
    #[arg(
        global = true,
        long = "pay-breaker-failures",
        env = "TANDA_PAY_BREAKER_FAILURES",
        default_value_t = 5
    )]
    pub breaker_failures: u32,
    /// How long the open breaker fails fast before letting a trial call through.
    #[arg(global = true, long = "pay-breaker-open-for", env = "TANDA_PAY_BREAKER_OPEN_FOR", default_value = "30s", value_parser = settings::duration)]
    #[serde(serialize_with = "settings::write_duration")]
    pub breaker_open_for: Duration,
}

impl Default for PaymentPolicy {
    fn default() -> Self {
        settings::defaults()
    }
}

/// The synchronous call to pay (in-process or HTTP; the binary picks). `dispatch_id` is pay's
/// idempotency key: calling again for the same dispatch never charges twice.
#[async_trait]
pub trait PayTransport: Send + Sync + 'static {
    async fn pay(&self, request: &PayRequest) -> Result<Pay, PayCallError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayCallError {
    /// The card was declined: retrying will not help.
    #[error("declined: {0}")]
    Declined(String),
    /// Pay could not be reached or is failing: worth retrying.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Pay refused the request itself.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The dispatch was charged another amount already: pay never answers with it instead.
    #[error("amount mismatch: {0}")]
    AmountMismatch(String),
}

/// Builds the service on a migrated database (`db.migrate(MIGRATIONS)` first).
pub async fn build(
    db: Db,
    config: Config,
    pay: Arc<dyn PayTransport>,
) -> Result<ServiceParts, DbError> {
    let rules = domain::Rules {
        offer_timeout: config.offer_timeout,
        deadline: config.search.deadline,
        fare: config.fare,
        speed_kmh: config.speed_kmh,
    };
    let store = Arc::new(store::Store::new(rules, config.search.max_pickup_m));
    let payments = payment::Payments::new(pay, config.payment);
    let breakers = vec![("pay", payments.breaker())];
    let router = http::router(http::App {
        db: db.clone(),
        store: store.clone(),
        payments,
    });
    Ok(ServiceParts {
        name: NAME,
        db: db.clone(),
        router,
        internal: axum::Router::new(),
        consumers: vec![Consumer::new(
            "dispatch",
            db,
            policy::Bookings {
                store: store.clone(),
            },
        )],
        timers: Some(tanda_core::timers::typed(policy::Timers { store })),
        breakers,
    })
}
