//! Ticket's reactions to other services' events: reservation's request (the flight), payment's
//! success (the go-ahead) and reservation's cancel. They may arrive in any relative order and more
//! than once; `domain` makes every order end the same way.

use async_trait::async_trait;
use tanda_catalog::flight::{PaymentSucceeded, ReservationCancelRequested, ReservationRequested};
use tanda_core::consumer::HandlerError;
use tanda_core::id::ClientId;
use tanda_core::subscription::Policy;
use tanda_core::{Envelope, Uow};

use crate::Error;
use crate::domain::Command;
use crate::store;

tanda_core::subscription! {
    /// What the `ticket` consumer takes: a reservation, its payment, its cancel.
    pub enum Takes {
        ReservationRequested(ReservationRequested),
        PaymentSucceeded(PaymentSucceeded),
        ReservationCancelRequested(ReservationCancelRequested),
    }
}

pub struct IssueTickets;

#[async_trait]
impl Policy for IssueTickets {
    type Takes = Takes;

    async fn apply(
        &self,
        uow: &mut Uow,
        taken: Takes,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let (reservation_id, user_id, command) = match taken {
            Takes::ReservationRequested(e) => {
                let flight_id = client_id("flightId", &e.flight_id)?;
                (
                    e.reservation_id,
                    e.user_id,
                    Command::Requested { flight_id },
                )
            }
            Takes::PaymentSucceeded(e) => (e.reservation_id, e.user_id, Command::Paid),
            Takes::ReservationCancelRequested(e) => (e.reservation_id, e.user_id, Command::Cancel),
        };
        let user = client_id("userId", &user_id)?;
        store::execute(uow, &reservation_id, &user, command, event).await?;
        Ok(())
    }
}

fn client_id(field: &str, raw: &str) -> Result<ClientId, Error> {
    ClientId::parse(raw).map_err(|e| Error::BadEvent(format!("{field} `{raw}` {e}")))
}
