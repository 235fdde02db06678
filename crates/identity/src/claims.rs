//! Ids someone already acted for. An operator may book, register a driver, reserve or deposit for
//! any customerId, driverId or userId, with or without an account behind it (a call centre, a
//! fleet operator). Whoever later signs up with that id as their username would own what was done
//! for someone else: so identity follows the events that carry such ids, remembers each one, and
//! sign-up refuses a remembered id (`409 username_taken`) unless the operator opens the account
//! (having checked who is asking).
//!
//! The events reach identity a moment after the act: until then the id is not yet remembered. An
//! id with an account is remembered too, harmlessly: sign-up refuses it anyway.

use async_trait::async_trait;
use tanda_catalog::flight::{Deposited, ReservationRequested};
use tanda_catalog::taxi::{BookRequested, DriverStatusChanged};
use tanda_core::consumer::HandlerError;
use tanda_core::id::ClientId;
use tanda_core::sql::query;
use tanda_core::subscription::Policy;
use tanda_core::{Db, DbError, Envelope, Uow};

tanda_core::subscription! {
    /// What the `identity-claims` consumer takes: each is the first event a service publishes
    /// for an id it was given (a booking, a driver's registration, a reservation, a deposit).
    pub enum Takes {
        BookRequested(BookRequested),
        DriverStatusChanged(DriverStatusChanged),
        ReservationRequested(ReservationRequested),
        Deposited(Deposited),
    }
}

pub const MIGRATION: tanda_core::db::Migration = tanda_core::db::Migration {
    version: 3,
    name: "claimed ids",
    sql: "CREATE TABLE claimed_ids (
              user_id VARCHAR(64) PRIMARY KEY,
              claimed_at BIGINT NOT NULL)",
};

pub struct RememberClaims;

#[async_trait]
impl Policy for RememberClaims {
    type Takes = Takes;

    async fn apply(&self, uow: &mut Uow, event: Takes, _: &Envelope) -> Result<(), HandlerError> {
        let id = match event {
            Takes::BookRequested(e) => e.customer_id,
            Takes::DriverStatusChanged(e) => e.driver_id,
            Takes::ReservationRequested(e) => e.user_id,
            Takes::Deposited(e) => e.user_id,
        };
        // Services accept only well-formed ids; anything else could never be a username.
        if ClientId::parse(&id).is_ok() {
            let now = uow.now();
            query(
                "INSERT INTO claimed_ids (user_id, claimed_at) VALUES ($1, $2)
                 ON CONFLICT (user_id) DO NOTHING",
            )
            .bind(id.as_str())
            .bind(now)
            .execute(uow.conn())
            .await?;
        }
        Ok(())
    }

    fn batchable(&self) -> bool {
        true
    }
}

/// Whether something was already done for `user_id`.
pub async fn is_claimed(db: &Db, user_id: &ClientId) -> Result<bool, DbError> {
    let found = query("SELECT 1 AS found FROM claimed_ids WHERE user_id = $1")
        .bind(user_id.as_str())
        .fetch_optional(db.reader())
        .await?;
    Ok(found.is_some())
}
