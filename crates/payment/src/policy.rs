//! Payment's reactions to reservation's events: a held seat is paid for from the user's wallet,
//! and a cancel gets its money back. Duplicates and late arrivals change nothing (see `domain`).

use async_trait::async_trait;
use tanda_catalog::flight::{ReservationCancelRequested, ReservationRequested};
use tanda_core::consumer::{Handler, HandlerError};
use tanda_core::id::ClientId;
use tanda_core::{Envelope, Event, Uow};

use crate::Error;
use crate::domain::{Command, Price};
use crate::store;

/// The event types the `payment` consumer subscribes to.
pub const TYPES: &[&str] = &[ReservationRequested::TYPE, ReservationCancelRequested::TYPE];

pub struct SettleReservations;

#[async_trait]
impl Handler for SettleReservations {
    async fn handle(&self, uow: &mut Uow, event: &Envelope) -> Result<(), HandlerError> {
        let (user, command) = if event.is::<ReservationRequested>() {
            let e: ReservationRequested = event.decode()?;
            let price = Price::parse(e.price)
                .ok_or_else(|| Error::BadEvent(format!("price {} is out of range", e.price)))?;
            let command = Command::Pay {
                reservation_id: e.reservation_id,
                price,
            };
            (user_id(&e.user_id)?, command)
        } else if event.is::<ReservationCancelRequested>() {
            let e: ReservationCancelRequested = event.decode()?;
            let command = Command::Cancel {
                reservation_id: e.reservation_id,
            };
            (user_id(&e.user_id)?, command)
        } else {
            return Ok(());
        };
        store::execute(uow, &user, command, Some(event)).await?;
        Ok(())
    }
}

fn user_id(raw: &str) -> Result<ClientId, Error> {
    ClientId::parse(raw).map_err(|e| Error::BadEvent(format!("userId `{raw}` {e}")))
}
