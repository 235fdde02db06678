//! Book's reactions to other services' events and to its own answer timer: dispatch's answers
//! move the booking, drivers' status changes keep the projection of where available drivers are
//! that the no-taxi breaker looks at, and a booking still waiting when its answer is due is
//! cancelled.

use async_trait::async_trait;
use tanda_catalog::taxi::{
    CancelRejected, DispatchCancelled, DispatchFailed, DriverStatusChanged, EXPIRED,
    TaxiDispatched, TripEnded, TripStarted,
};
use tanda_core::clock::parse_rfc3339;
use tanda_core::consumer::{Handler, HandlerError};
use tanda_core::db::Timer;
use tanda_core::event::DecodeError;
use tanda_core::geo::LatLng;
use tanda_core::timers::TimerHandler;
use tanda_core::{Envelope, Event, Uow};
use tracing::warn;

use crate::domain::{Command, Taxi};
use crate::store::{self, ANSWER_TIMER};

/// The event types the `book` consumer subscribes to.
pub const TYPES: &[&str] = &[
    DriverStatusChanged::TYPE,
    TaxiDispatched::TYPE,
    TripStarted::TYPE,
    TripEnded::TYPE,
    DispatchFailed::TYPE,
    DispatchCancelled::TYPE,
    CancelRejected::TYPE,
];

pub struct BookPolicy;

#[async_trait]
impl Handler for BookPolicy {
    /// Reads and writes bookings and the driver projection only through the unit of work.
    fn batchable(&self) -> bool {
        true
    }

    async fn handle(&self, uow: &mut Uow, event: &Envelope) -> Result<(), HandlerError> {
        if event.is::<DriverStatusChanged>() {
            let changed: DriverStatusChanged = event.decode()?;
            let as_of = parse_rfc3339(&event.occurred_at)
                .ok_or("the event's occurredAt is not an RFC 3339 time")?;
            let available = changed.status == "AVAILABLE";
            // A place that does not parse is as good as none: the driver counts anywhere.
            let location = changed
                .location
                .and_then(|l| LatLng::parse(l.lat, l.lng).ok());
            store::record_driver_status(uow, &changed.driver_id, available, location, as_of)
                .await?;
            return Ok(());
        }
        let Some((book_id, command)) = command(event)? else {
            return Ok(());
        };
        if store::execute(uow, &book_id, command, Some(event))
            .await?
            .is_none()
        {
            warn!(book_id, kind = %event.kind, "event for an unknown booking ignored");
        }
        Ok(())
    }
}

/// Dispatch's event as a command on the booking it is about; `None` for a type book ignores.
fn command(event: &Envelope) -> Result<Option<(String, Command)>, DecodeError> {
    let decoded = if event.is::<TaxiDispatched>() {
        let e: TaxiDispatched = event.decode()?;
        let taxi = Taxi {
            driver_id: e.driver_id,
            driver_name: e.driver_name,
            car_number: e.car_number,
            phone: e.phone,
            eta_seconds: e.eta_seconds,
        };
        let command = Command::TaxiDispatched {
            dispatch_id: e.dispatch_id,
            taxi,
        };
        (e.book_id, command)
    } else if event.is::<TripStarted>() {
        let e: TripStarted = event.decode()?;
        let command = Command::TripStarted {
            dispatch_id: e.dispatch_id,
        };
        (e.book_id, command)
    } else if event.is::<TripEnded>() {
        let e: TripEnded = event.decode()?;
        let command = Command::TripEnded {
            dispatch_id: e.dispatch_id,
            fare: e.fare,
            pay_id: e.pay_id,
        };
        (e.book_id, command)
    } else if event.is::<DispatchFailed>() {
        (
            event.decode::<DispatchFailed>()?.book_id,
            Command::DispatchFailed,
        )
    } else if event.is::<DispatchCancelled>() {
        let e: DispatchCancelled = event.decode()?;
        // Cancelled because the booking expired: the system's cancel, never the customer's.
        let command = match e.reason.as_deref() {
            Some(EXPIRED) => Command::DispatchFailed,
            _ => Command::DispatchCancelled,
        };
        (e.book_id, command)
    } else if event.is::<CancelRejected>() {
        (
            event.decode::<CancelRejected>()?.book_id,
            Command::CancelRejected,
        )
    } else {
        return Ok(None);
    };
    Ok(Some(decoded))
}

/// The answer timer: when a booking's answer is due, one still waiting for a taxi is cancelled.
pub struct AnswerDue;

#[async_trait]
impl TimerHandler for AnswerDue {
    async fn fire(&self, uow: &mut Uow, timer: &Timer) -> Result<(), HandlerError> {
        if timer.kind != ANSWER_TIMER {
            warn!(kind = %timer.kind, key = %timer.key, "dropping a timer of an unknown kind");
            return Ok(());
        }
        if store::execute(uow, &timer.key, Command::Expire, None)
            .await?
            .is_none()
        {
            warn!(book_id = %timer.key, "answer timer of an unknown booking dropped");
        }
        Ok(())
    }
}
