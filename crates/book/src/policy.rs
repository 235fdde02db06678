//! Book's reactions to other services' events: dispatch's answers move the booking, and drivers'
//! status changes keep the projection of available drivers the no-taxi breaker looks at.

use async_trait::async_trait;
use tanda_catalog::taxi::{
    CancelRejected, DispatchCancelled, DispatchFailed, DriverStatusChanged, TaxiDispatched,
    TripEnded, TripStarted,
};
use tanda_core::clock::parse_rfc3339;
use tanda_core::consumer::{Handler, HandlerError};
use tanda_core::event::DecodeError;
use tanda_core::{Envelope, Event, Uow};
use tracing::warn;

use crate::domain::{Command, Taxi};
use crate::store;

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
            store::record_driver_status(uow, &changed.driver_id, available, as_of).await?;
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
        (e.book_id, Command::DispatchCancelled)
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
