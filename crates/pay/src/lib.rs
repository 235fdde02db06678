//! The pay service: charges a finished trip's fare through the (simulated) card network, or
//! records it as paid to the driver in cash, at most once per dispatch, and announces it with
//! `taxi.PaymentApproved`. Cash goes through pay too so that every trip has exactly one payment
//! of the fare dispatch computed, whichever way it was settled.
//!
//! Dispatch calls it synchronously ([`PayApi`] in-process, `POST /pays` over HTTP — an internal
//! route, which the gateway never serves); it reacts to no events and sets no timers. Code map: `domain` (the charge order and the payment), `store` (SQL),
//! `api` (the charge flow), `http` (routes), `charge_log` (where the simulated card network
//! keeps its charges: a table of its own in pay's database), `settings` (how the network starts).

mod api;
mod charge_log;
mod domain;
mod http;
mod settings;
mod store;

use std::sync::Arc;

use tanda_cardnet::CardNetwork;
use tanda_core::db::Migration;
use tanda_core::service::ServiceParts;
use tanda_core::{Db, DbError, Problem};

pub use api::PayApi;
pub use charge_log::card_network;
pub use domain::AmountMismatch;
/// The service's public operations, documented (the same routes `build` serves publicly;
/// `POST /pays`, internal, is not among them).
pub use http::openapi;
pub use settings::Config;

pub const NAME: &str = tanda_catalog::taxi::pay::SERVICE;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "pays",
        // A payment is immutable once stored, so it needs no version column.
        sql: "CREATE TABLE pays (
              pay_id VARCHAR(64) PRIMARY KEY,
              book_id VARCHAR(100) NOT NULL,
              dispatch_id VARCHAR(100) NOT NULL UNIQUE,
              amount BIGINT NOT NULL,
              card_last4 VARCHAR(4) NOT NULL,
              paid_at BIGINT NOT NULL);
          CREATE INDEX pays_book_id ON pays (book_id, paid_at)",
    },
    // Whose payment it is, so that a customer reads their own only. Payments made before have
    // no known owner: only an operator reads them.
    Migration {
        version: 2,
        name: "pays' customer",
        sql: "ALTER TABLE pays ADD COLUMN customer_id VARCHAR(100) NOT NULL DEFAULT ''",
    },
    // How the fare was paid: by card (every payment made before), or in cash to the driver, with
    // an empty `card_last4`.
    Migration {
        version: 3,
        name: "pays' method",
        sql: "ALTER TABLE pays ADD COLUMN method VARCHAR(8) NOT NULL DEFAULT 'CARD'",
    },
    // The simulated card network's own record of its charges, one per idempotency key (see
    // `charge_log`): not pay's data, kept here because pay's database is what every topology has.
    Migration {
        version: 4,
        name: "card network charges",
        sql: "CREATE TABLE card_network_charges (
              idempotency_key VARCHAR(100) PRIMARY KEY,
              charge_id VARCHAR(64) NOT NULL,
              last4 VARCHAR(4) NOT NULL,
              amount BIGINT NOT NULL,
              charged_at BIGINT NOT NULL)",
    },
    // The trips pay has asked the network to charge, noted before it asks: a trip settled in
    // cash after one of them is first checked for a charge whose answer was lost.
    Migration {
        version: 5,
        name: "card attempts",
        sql: "CREATE TABLE card_attempts (
              dispatch_id VARCHAR(100) PRIMARY KEY,
              attempted_at BIGINT NOT NULL)",
    },
    // The card network's mode an operator set last (`PUT /admin/card-network`), as JSON: every
    // instance of pay reads it at each charge, and a restart keeps it.
    Migration {
        version: 6,
        name: "card network mode",
        sql: "CREATE TABLE card_network_mode (
              id INTEGER PRIMARY KEY,
              mode TEXT NOT NULL,
              set_at BIGINT NOT NULL)",
    },
];

/// The service as the binary's registry lists it.
pub const SPEC: tanda_core::service::ServiceSpec = tanda_core::service::ServiceSpec {
    name: NAME,
    paths: &[
        tanda_core::service::OwnedPath::reads("/pays"),
        tanda_core::service::OwnedPath::all("/admin/card-network"),
    ],
    produces: tanda_catalog::taxi::PAY_EVENTS,
    calls: &[],
    migrations: MIGRATIONS,
    openapi,
};

/// Why a payment was not made; nothing is stored in any case.
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    #[error("{0}")]
    Invalid(String),
    #[error("the card was declined ({0})")]
    Declined(String),
    /// The trip was charged another amount already.
    #[error(transparent)]
    AmountMismatch(#[from] AmountMismatch),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Db(#[from] DbError),
}

impl From<PayError> for Problem {
    fn from(e: PayError) -> Self {
        let detail = e.to_string();
        match e {
            PayError::Invalid(_) => Problem::bad_request("invalid_payment", detail),
            PayError::Declined(_) => Problem::payment_declined(detail),
            PayError::AmountMismatch(_) => Problem::conflict("amount_mismatch", detail),
            PayError::Unavailable(_) => Problem::unavailable("card_network_unavailable", detail, 1),
            PayError::Db(e) => e.into(),
        }
    }
}

/// Pay's parts and the in-process handle for dispatch (the database is already migrated).
pub async fn build(db: Db, network: Arc<CardNetwork>) -> Result<(ServiceParts, PayApi), DbError> {
    let api = PayApi {
        db: db.clone(),
        network,
    };
    let parts = ServiceParts {
        name: NAME,
        db,
        router: http::router(api.clone()),
        internal: http::internal(api.clone()),
        consumers: vec![],
        timers: None,
        breakers: Vec::new(),
    };
    Ok((parts, api))
}
