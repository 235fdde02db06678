//! Ticket's reactions to other services' events: reservation's request (the flight), payment's
//! success (the go-ahead) and reservation's cancel. They may arrive in any relative order and more
//! than once; `domain` makes every order end the same way.

use async_trait::async_trait;
use tanda_catalog::flight::{PaymentSucceeded, ReservationCancelRequested, ReservationRequested};
use tanda_core::consumer::{Handler, HandlerError};
use tanda_core::id::ClientId;
use tanda_core::{Envelope, Event, Uow};

use crate::Error;
use crate::domain::Command;
use crate::store;

/// The event types the `ticket` consumer subscribes to.
pub const TYPES: &[&str] = &[
    ReservationRequested::TYPE,
    PaymentSucceeded::TYPE,
    ReservationCancelRequested::TYPE,
];

pub struct IssueTickets;

#[async_trait]
impl Handler for IssueTickets {
    async fn handle(&self, uow: &mut Uow, event: &Envelope) -> Result<(), HandlerError> {
        let (reservation_id, user_id, command) = if event.is::<ReservationRequested>() {
            let e: ReservationRequested = event.decode()?;
            let flight_id = client_id("flightId", &e.flight_id)?;
            (
                e.reservation_id,
                e.user_id,
                Command::Requested { flight_id },
            )
        } else if event.is::<PaymentSucceeded>() {
            let e: PaymentSucceeded = event.decode()?;
            (e.reservation_id, e.user_id, Command::Paid)
        } else if event.is::<ReservationCancelRequested>() {
            let e: ReservationCancelRequested = event.decode()?;
            (e.reservation_id, e.user_id, Command::Cancel)
        } else {
            return Ok(());
        };
        let user = client_id("userId", &user_id)?;
        store::execute(uow, &reservation_id, &user, command, event).await?;
        Ok(())
    }
}

fn client_id(field: &str, raw: &str) -> Result<ClientId, Error> {
    ClientId::parse(raw).map_err(|e| Error::BadEvent(format!("{field} `{raw}` {e}")))
}
