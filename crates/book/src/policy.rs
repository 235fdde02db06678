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
use tanda_core::consumer::HandlerError;
use tanda_core::geo::LatLng;
use tanda_core::subscription::Policy;
use tanda_core::timers::OnTimer;
use tanda_core::{Envelope, Uow};
use tracing::warn;

use crate::domain::{Command, Taxi};
use crate::store::{self, BookTimer};

tanda_core::subscription! {
    /// What the `book` consumer takes: dispatch's answers, which move bookings, and drivers'
    /// status changes, for the projection the no-taxi breaker looks at.
    pub enum Takes {
        DriverStatusChanged(DriverStatusChanged),
        TaxiDispatched(TaxiDispatched),
        TripStarted(TripStarted),
        TripEnded(TripEnded),
        DispatchFailed(DispatchFailed),
        DispatchCancelled(DispatchCancelled),
        CancelRejected(CancelRejected),
    }
}

pub struct BookPolicy;

#[async_trait]
impl Policy for BookPolicy {
    type Takes = Takes;

    /// Reads and writes bookings and the driver projection only through the unit of work.
    fn batchable(&self) -> bool {
        true
    }

    async fn apply(
        &self,
        uow: &mut Uow,
        event: Takes,
        envelope: &Envelope,
    ) -> Result<(), HandlerError> {
        let (book_id, command) = match event {
            Takes::DriverStatusChanged(changed) => {
                let as_of = parse_rfc3339(&envelope.occurred_at)
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
            Takes::TaxiDispatched(e) => {
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
            }
            Takes::TripStarted(e) => (
                e.book_id,
                Command::TripStarted {
                    dispatch_id: e.dispatch_id,
                },
            ),
            Takes::TripEnded(e) => (
                e.book_id,
                Command::TripEnded {
                    dispatch_id: e.dispatch_id,
                    fare: e.fare,
                    pay_id: e.pay_id,
                },
            ),
            Takes::DispatchFailed(e) => (e.book_id, Command::DispatchFailed),
            // Cancelled because the booking expired: the system's cancel, never the customer's.
            Takes::DispatchCancelled(e) => match e.reason.as_deref() {
                Some(EXPIRED) => (e.book_id, Command::DispatchFailed),
                _ => (e.book_id, Command::DispatchCancelled),
            },
            Takes::CancelRejected(e) => (e.book_id, Command::CancelRejected),
        };
        if store::execute(uow, &book_id, command, Some(envelope))
            .await?
            .is_none()
        {
            warn!(book_id, kind = %envelope.kind, "event for an unknown booking ignored");
        }
        Ok(())
    }
}

/// The answer timer: when a booking's answer is due, one still waiting for a taxi is cancelled.
pub struct AnswerDue;

#[async_trait]
impl OnTimer for AnswerDue {
    type Timer = BookTimer;

    async fn fire(&self, uow: &mut Uow, timer: BookTimer) -> Result<(), HandlerError> {
        let BookTimer::Answer { book_id } = timer;
        if store::execute(uow, &book_id, Command::Expire, None)
            .await?
            .is_none()
        {
            warn!(book_id, "answer timer of an unknown booking dropped");
        }
        Ok(())
    }
}
