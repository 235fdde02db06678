//! Reservation's reactions: payment's and ticket's answers move the reservation along the saga,
//! and the pending timer shows it `PENDING` while payment is slow. Each runs inside the unit of
//! work the runtime opened for it; one that no longer applies changes nothing.

use async_trait::async_trait;
use tanda_catalog::flight::{
    PaymentFailed, PaymentRefunded, PaymentSucceeded, TicketIssued, TicketVoided,
};
use tanda_core::consumer::HandlerError;
use tanda_core::subscription::Policy;
use tanda_core::timers::OnTimer;
use tanda_core::{Envelope, Uow};
use tracing::warn;

use crate::domain::Command;
use crate::store::{self, ReservationTimer};

tanda_core::subscription! {
    /// What the `reservation` consumer takes: payment's and ticket's answers.
    pub enum Takes {
        PaymentSucceeded(PaymentSucceeded),
        PaymentFailed(PaymentFailed),
        PaymentRefunded(PaymentRefunded),
        TicketIssued(TicketIssued),
        TicketVoided(TicketVoided),
    }
}

/// The `reservation` consumer of payment's and ticket's events.
pub struct Answers;

#[async_trait]
impl Policy for Answers {
    type Takes = Takes;

    async fn apply(
        &self,
        uow: &mut Uow,
        taken: Takes,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let (reservation_id, command) = command(taken);
        if store::execute(uow, &reservation_id, command, Some(event))
            .await?
            .is_none()
        {
            warn!(reservation_id, kind = %event.kind, "event for an unknown reservation ignored");
        }
        Ok(())
    }
}

/// An answer as a command on the reservation it is about.
fn command(taken: Takes) -> (String, Command) {
    match taken {
        Takes::PaymentSucceeded(e) => (e.reservation_id, Command::PaymentSucceeded),
        Takes::PaymentFailed(e) => (e.reservation_id, Command::PaymentFailed),
        Takes::PaymentRefunded(e) => (
            e.reservation_id,
            Command::PaymentRefunded { amount: e.amount },
        ),
        Takes::TicketIssued(e) => (
            e.reservation_id,
            Command::TicketIssued {
                ticket_id: e.ticket_id,
            },
        ),
        Takes::TicketVoided(e) => (
            e.reservation_id,
            Command::TicketVoided {
                ticket_id: e.ticket_id,
            },
        ),
    }
}

/// Fires the pending timer: payment has not answered in time.
pub struct PendingTimer;

#[async_trait]
impl OnTimer for PendingTimer {
    type Timer = ReservationTimer;

    async fn fire(&self, uow: &mut Uow, timer: ReservationTimer) -> Result<(), HandlerError> {
        let ReservationTimer::Pending { reservation_id } = timer;
        store::execute(uow, &reservation_id, Command::PaymentOverdue, None).await?;
        Ok(())
    }
}
