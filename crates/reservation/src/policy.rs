//! Reservation's reactions: payment's and ticket's answers move the reservation along the saga,
//! and the pending timer shows it `PENDING` while payment is slow. Each runs inside the unit of
//! work the runtime opened for it; one that no longer applies changes nothing.

use async_trait::async_trait;
use tanda_catalog::flight::{
    PaymentFailed, PaymentRefunded, PaymentSucceeded, TicketIssued, TicketVoided,
};
use tanda_core::consumer::{Handler, HandlerError};
use tanda_core::db::Timer;
use tanda_core::event::DecodeError;
use tanda_core::timers::TimerHandler;
use tanda_core::{Envelope, Event, Uow};
use tracing::warn;

use crate::domain::Command;
use crate::store::{self, PENDING_TIMER};

/// The event types the `reservation` consumer subscribes to.
pub const TYPES: &[&str] = &[
    PaymentSucceeded::TYPE,
    PaymentFailed::TYPE,
    PaymentRefunded::TYPE,
    TicketIssued::TYPE,
    TicketVoided::TYPE,
];

/// The `reservation` consumer of payment's and ticket's events.
pub struct Answers;

#[async_trait]
impl Handler for Answers {
    async fn handle(&self, uow: &mut Uow, event: &Envelope) -> Result<(), HandlerError> {
        let Some((reservation_id, command)) = command(event)? else {
            return Ok(());
        };
        if store::execute(uow, &reservation_id, command, Some(event))
            .await?
            .is_none()
        {
            warn!(reservation_id, kind = %event.kind, "event for an unknown reservation ignored");
        }
        Ok(())
    }
}

/// An answer as a command on the reservation it is about; `None` for a type reservation ignores.
fn command(event: &Envelope) -> Result<Option<(String, Command)>, DecodeError> {
    let decoded = if event.is::<PaymentSucceeded>() {
        let e: PaymentSucceeded = event.decode()?;
        (e.reservation_id, Command::PaymentSucceeded)
    } else if event.is::<PaymentFailed>() {
        let e: PaymentFailed = event.decode()?;
        (e.reservation_id, Command::PaymentFailed)
    } else if event.is::<PaymentRefunded>() {
        let e: PaymentRefunded = event.decode()?;
        let command = Command::PaymentRefunded { amount: e.amount };
        (e.reservation_id, command)
    } else if event.is::<TicketIssued>() {
        let e: TicketIssued = event.decode()?;
        let command = Command::TicketIssued {
            ticket_id: e.ticket_id,
        };
        (e.reservation_id, command)
    } else if event.is::<TicketVoided>() {
        let e: TicketVoided = event.decode()?;
        let command = Command::TicketVoided {
            ticket_id: e.ticket_id,
        };
        (e.reservation_id, command)
    } else {
        return Ok(None);
    };
    Ok(Some(decoded))
}

/// Fires [`PENDING_TIMER`]: payment has not answered in time.
pub struct PendingTimer;

#[async_trait]
impl TimerHandler for PendingTimer {
    async fn fire(&self, uow: &mut Uow, timer: &Timer) -> Result<(), HandlerError> {
        if timer.kind != PENDING_TIMER {
            warn!(kind = %timer.kind, key = %timer.key, "dropping a timer of an unknown kind");
            return Ok(());
        }
        store::execute(uow, &timer.key, Command::PaymentOverdue, None).await?;
        Ok(())
    }
}
