//! Payment's reactions to reservation's events: a held seat is paid for from the user's wallet,
//! and a cancel gets its money back. Duplicates and late arrivals change nothing (see `domain`).

use async_trait::async_trait;
use tanda_catalog::flight::{ReservationCancelRequested, ReservationRequested};
use tanda_core::consumer::HandlerError;
use tanda_core::id::ClientId;
use tanda_core::subscription::Policy;
use tanda_core::{Envelope, Uow};

use crate::Error;
use crate::domain::{Command, Price};
use crate::store;

tanda_core::subscription! {
    /// What the `payment` consumer takes: reservations to pay for, and cancels to refund.
    pub enum Takes {
        ReservationRequested(ReservationRequested),
        ReservationCancelRequested(ReservationCancelRequested),
    }
}

pub struct SettleReservations;

#[async_trait]
impl Policy for SettleReservations {
    type Takes = Takes;

    async fn apply(
        &self,
        uow: &mut Uow,
        taken: Takes,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let (user, command) = match taken {
            Takes::ReservationRequested(e) => {
                let price = Price::parse(e.price)
                    .ok_or_else(|| Error::BadEvent(format!("price {} is out of range", e.price)))?;
                let command = Command::Pay {
                    reservation_id: e.reservation_id,
                    price,
                };
                (user_id(&e.user_id)?, command)
            }
            Takes::ReservationCancelRequested(e) => {
                let command = Command::Cancel {
                    reservation_id: e.reservation_id,
                };
                (user_id(&e.user_id)?, command)
            }
        };
        store::execute(uow, &user, command, Some(event)).await?;
        Ok(())
    }
}

fn user_id(raw: &str) -> Result<ClientId, Error> {
    ClientId::parse(raw).map_err(|e| Error::BadEvent(format!("userId `{raw}` {e}")))
}
