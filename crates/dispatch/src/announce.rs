//! The domain's events as the rest of Tanda hears of them: each maps to the catalog's integration
//! event it publishes (if any) and to the timers it sets or clears. The mappings are pure;
//! [`announce`] writes what they say into the unit of work that saves the change.

use tanda_catalog::taxi;
use tanda_core::clock::rfc3339;
use tanda_core::id::ClientId;
use tanda_core::{DbError, Envelope, Timestamp, Uow};

use crate::domain::{CancelReason, Dispatch, Driver, DriverStatus, Event, Fleet, PaidTrip, Place};
use crate::store::{DEADLINE_TIMER, DispatchTimer, OFFER_TIMER};

/// Publishes the integration event for a domain event and sets or clears the timers it implies.
pub(crate) async fn announce(
    uow: &mut Uow,
    fleet: &Fleet,
    event: &Event,
    now: Timestamp,
    cause: Option<&Envelope>,
) -> Result<(), DbError> {
    let said = Said { fleet, now, cause };
    if let Some(envelope) = said.envelope(event) {
        uow.publish(&envelope).await?;
    }
    for change in timer_changes(event) {
        match change {
            TimerChange::Set(timer, at) => uow.set_timer(&timer, at).await?,
            TimerChange::Cancel(kind, dispatch_id) => uow.cancel_timer(kind, dispatch_id).await?,
        }
    }
    Ok(())
}

/// What an event does to the dispatch's timers.
#[derive(Debug, PartialEq)]
enum TimerChange<'a> {
    Set(DispatchTimer, Timestamp),
    /// The timer of this kind of this dispatch, if any, is no longer wanted.
    Cancel(&'static str, &'a str),
}

fn timer_changes(event: &Event) -> Vec<TimerChange<'_>> {
    use TimerChange::{Cancel, Set};
    match event {
        Event::DispatchOpened(d) => {
            let deadline = DispatchTimer::Deadline {
                dispatch_id: d.id.clone().into(),
            };
            vec![Set(deadline, d.deadline_at)]
        }
        Event::Offered {
            dispatch_id,
            driver_id,
            expires_at,
        } => {
            let offer = DispatchTimer::Offer {
                dispatch_id: dispatch_id.clone().into(),
                driver_id: driver_id.clone(),
            };
            vec![Set(offer, *expires_at)]
        }
        Event::OfferDeclined { dispatch_id, .. } | Event::OfferExpired { dispatch_id, .. } => {
            vec![Cancel(OFFER_TIMER, dispatch_id.as_str())]
        }
        // The search is over: nothing is offered, nothing runs out.
        Event::Dispatched { dispatch_id, .. }
        | Event::Cancelled { dispatch_id, .. }
        | Event::Failed { dispatch_id, .. } => {
            vec![
                Cancel(OFFER_TIMER, dispatch_id.as_str()),
                Cancel(DEADLINE_TIMER, dispatch_id.as_str()),
            ]
        }
        _ => Vec::new(),
    }
}

/// The integration events of the domain's, as published: about a dispatch, on its booking's saga.
struct Said<'a> {
    fleet: &'a Fleet,
    now: Timestamp,
    cause: Option<&'a Envelope>,
}

impl Said<'_> {
    fn envelope(&self, event: &Event) -> Option<Envelope> {
        let said = match event {
            Event::DriverRegistered(_)
            | Event::DriverMoved { .. }
            | Event::DriverOnline { .. }
            | Event::DriverOffline { .. }
            | Event::DispatchOpened(_)
            | Event::OfferDeclined { .. }
            | Event::TripPathExtended { .. }
            | Event::CardReplaced { .. } => return None,
            Event::Offered {
                dispatch_id,
                driver_id,
                expires_at,
            } => {
                let d = self.dispatch(dispatch_id.as_str());
                self.on(d, &offered(d, driver_id, *expires_at))
            }
            Event::OfferExpired {
                dispatch_id,
                driver_id,
            } => {
                let d = self.dispatch(dispatch_id.as_str());
                self.on(d, &offer_expired(d, driver_id))
            }
            Event::Dispatched {
                dispatch_id,
                driver_id,
                eta_seconds,
            } => {
                let d = self.dispatch(dispatch_id.as_str());
                let taxi = self.driver(driver_id);
                self.on(d, &dispatched(d, taxi, *eta_seconds))
            }
            Event::TripStarted {
                dispatch_id,
                driver_id,
            } => {
                let d = self.dispatch(dispatch_id.as_str());
                self.on(d, &trip_started(d, driver_id))
            }
            Event::TripEnded {
                dispatch_id,
                driver_id,
                trip,
            } => {
                let d = self.dispatch(dispatch_id.as_str());
                self.on(d, &trip_ended(d, driver_id, trip))
            }
            Event::PaymentDeclined {
                dispatch_id,
                driver_id,
                fare,
                reason,
                ..
            } => {
                let d = self.dispatch(dispatch_id.as_str());
                self.on(d, &payment_declined(d, driver_id, *fare, reason))
            }
            Event::Cancelled {
                dispatch_id,
                driver_id,
                reason,
            } => {
                let d = self.dispatch(dispatch_id.as_str());
                self.on(d, &cancelled(d, driver_id.as_ref(), *reason))
            }
            Event::CancelledUnseen(d) => self.on(d, &cancelled(d, None, CancelReason::Customer)),
            Event::CancelRejected { dispatch_id } => {
                let d = self.dispatch(dispatch_id.as_str());
                self.on(d, &cancel_rejected(d))
            }
            Event::Failed {
                dispatch_id,
                driver_id,
            } => {
                let d = self.dispatch(dispatch_id.as_str());
                self.on(d, &failed(d, driver_id.as_ref()))
            }
        };
        Some(said)
    }

    fn on<E: tanda_core::Event>(&self, d: &Dispatch, event: &E) -> Envelope {
        Envelope::new(event, d.book_id.as_str(), self.cause, self.now)
    }

    // `decide` only names what the command loaded.
    fn dispatch(&self, id: &str) -> &Dispatch {
        self.fleet
            .dispatches
            .get(id)
            .expect("events name loaded dispatches")
    }

    fn driver(&self, id: &ClientId) -> &Driver {
        self.fleet
            .drivers
            .get(id)
            .expect("events name loaded drivers")
    }
}

fn offered(d: &Dispatch, driver_id: &ClientId, expires_at: Timestamp) -> taxi::RideOffered {
    let booking = d
        .booking
        .as_ref()
        .expect("only booked dispatches are offered");
    taxi::RideOffered {
        dispatch_id: d.id.clone().into(),
        book_id: d.book_id.clone().into(),
        customer_id: d.customer_id.clone(),
        driver_id: driver_id.to_string(),
        pickup: catalog_place(&booking.pickup),
        dropoff: catalog_place(&booking.dropoff),
        expires_at: rfc3339(expires_at),
    }
}

fn offer_expired(d: &Dispatch, driver_id: &ClientId) -> taxi::OfferExpired {
    taxi::OfferExpired {
        dispatch_id: d.id.clone().into(),
        book_id: d.book_id.clone().into(),
        driver_id: driver_id.to_string(),
    }
}

fn dispatched(d: &Dispatch, taxi: &Driver, eta_seconds: i64) -> taxi::TaxiDispatched {
    taxi::TaxiDispatched {
        dispatch_id: d.id.clone().into(),
        book_id: d.book_id.clone().into(),
        customer_id: d.customer_id.clone(),
        driver_id: taxi.id.to_string(),
        driver_name: taxi.name.clone(),
        car_number: taxi.car_number.clone(),
        phone: taxi.phone.clone(),
        eta_seconds,
    }
}

fn trip_started(d: &Dispatch, driver_id: &ClientId) -> taxi::TripStarted {
    taxi::TripStarted {
        dispatch_id: d.id.clone().into(),
        book_id: d.book_id.clone().into(),
        customer_id: d.customer_id.clone(),
        driver_id: driver_id.to_string(),
    }
}

fn trip_ended(d: &Dispatch, driver_id: &ClientId, trip: &PaidTrip) -> taxi::TripEnded {
    taxi::TripEnded {
        dispatch_id: d.id.clone().into(),
        book_id: d.book_id.clone().into(),
        customer_id: d.customer_id.clone(),
        driver_id: driver_id.to_string(),
        distance_meters: trip.distance_meters,
        fare: trip.fare,
        pay_id: trip.pay_id.clone(),
        method: trip.method.as_str().to_owned(),
    }
}

fn payment_declined(
    d: &Dispatch,
    driver_id: &ClientId,
    fare: i64,
    reason: &str,
) -> taxi::PaymentDeclined {
    taxi::PaymentDeclined {
        dispatch_id: d.id.clone().into(),
        book_id: d.book_id.clone().into(),
        customer_id: d.customer_id.clone(),
        driver_id: driver_id.to_string(),
        fare,
        reason: reason.to_owned(),
    }
}

fn cancelled(
    d: &Dispatch,
    driver_id: Option<&ClientId>,
    reason: CancelReason,
) -> taxi::DispatchCancelled {
    let reason = match reason {
        CancelReason::Customer => taxi::BY_CUSTOMER,
        CancelReason::Expired => taxi::EXPIRED,
    };
    taxi::DispatchCancelled {
        dispatch_id: d.id.clone().into(),
        book_id: d.book_id.clone().into(),
        customer_id: d.customer_id.clone(),
        driver_id: driver_id.map(ClientId::to_string),
        reason: Some(reason.to_owned()),
    }
}

fn cancel_rejected(d: &Dispatch) -> taxi::CancelRejected {
    taxi::CancelRejected {
        dispatch_id: d.id.clone().into(),
        book_id: d.book_id.clone().into(),
        customer_id: d.customer_id.clone(),
        reason: "trip already started".to_owned(),
    }
}

fn failed(d: &Dispatch, driver_id: Option<&ClientId>) -> taxi::DispatchFailed {
    let reason = if d.created_at >= d.deadline_at {
        "the booking was answered before dispatch heard of it"
    } else {
        "no driver accepted before the deadline"
    };
    taxi::DispatchFailed {
        dispatch_id: d.id.clone().into(),
        book_id: d.book_id.clone().into(),
        customer_id: d.customer_id.clone(),
        reason: reason.to_owned(),
        driver_id: driver_id.map(ClientId::to_string),
    }
}

/// A driver's change as the `DriverStatusChanged` it is announced with, if it is: a new status,
/// or an available driver now in another area cell — so that a reader knows where each available
/// driver is to within a cell, without an event for every location reported. `ride` is the
/// dispatch the change belongs to, if any: its booking is the saga.
pub(crate) fn driver_status_changed(
    old: Option<&Driver>,
    driver: &Driver,
    ride: Option<&Dispatch>,
    now: Timestamp,
    cause: Option<&Envelope>,
) -> Option<Envelope> {
    let announced = match old {
        None => true,
        Some(old) if old.status != driver.status => true,
        Some(old) => {
            driver.status == DriverStatus::Available
                && taxi::area_cell(old.location) != taxi::area_cell(driver.location)
        }
    };
    if !announced {
        return None;
    }
    let correlation = ride.map_or(driver.id.as_str(), |d| d.book_id.as_str());
    let event = taxi::DriverStatusChanged {
        driver_id: driver.id.to_string(),
        status: driver.status.as_str().to_owned(),
        location: Some(driver.location),
    };
    Some(Envelope::new(&event, correlation, cause, now))
}

pub fn catalog_place(p: &Place) -> tanda_catalog::Place {
    tanda_catalog::Place {
        name: p.name.clone(),
        lat: p.at.lat,
        lng: p.at.lng,
    }
}

#[cfg(test)]
mod tests {
    use tanda_core::geo::LatLng;

    use super::*;

    fn driver(status: DriverStatus, lat: f64) -> Driver {
        Driver {
            id: ClientId::parse("kim").unwrap(),
            name: "Kim".into(),
            car_number: "12가3456".into(),
            phone: "010-1234-5678".into(),
            location: LatLng::parse(lat, 126.9780).unwrap(),
            status,
            dispatch_id: None,
            version: 1,
        }
    }

    #[test]
    fn a_driver_is_announced_on_a_new_status_or_a_new_cell_while_available() {
        let here = driver(DriverStatus::Available, 37.5665);
        let announced = |old: &Driver, new: &Driver| {
            driver_status_changed(Some(old), new, None, 0, None).is_some()
        };
        assert!(driver_status_changed(None, &here, None, 0, None).is_some());
        assert!(!announced(&here, &driver(DriverStatus::Available, 37.5666)));
        assert!(announced(&here, &driver(DriverStatus::Available, 37.5865)));
        assert!(announced(&here, &driver(DriverStatus::Offline, 37.5665)));
        let offline = driver(DriverStatus::Offline, 37.5665);
        assert!(!announced(
            &offline,
            &driver(DriverStatus::Offline, 37.5865)
        ));
    }

    #[test]
    fn a_search_that_ends_clears_both_timers_and_an_offer_that_ends_its_own() {
        let kim = ClientId::parse("kim").unwrap();
        let both = [
            TimerChange::Cancel(OFFER_TIMER, "d1"),
            TimerChange::Cancel(DEADLINE_TIMER, "d1"),
        ];
        let dispatched = Event::Dispatched {
            dispatch_id: "d1".into(),
            driver_id: kim.clone(),
            eta_seconds: 60,
        };
        assert_eq!(timer_changes(&dispatched), both);
        let failed = Event::Failed {
            dispatch_id: "d1".into(),
            driver_id: None,
        };
        assert_eq!(timer_changes(&failed), both);
        let expired = Event::OfferExpired {
            dispatch_id: "d1".into(),
            driver_id: kim.clone(),
        };
        assert_eq!(
            timer_changes(&expired),
            [TimerChange::Cancel(OFFER_TIMER, "d1")]
        );
        let offered = Event::Offered {
            dispatch_id: "d1".into(),
            driver_id: kim.clone(),
            expires_at: 15_000,
        };
        let offer = DispatchTimer::Offer {
            dispatch_id: "d1".into(),
            driver_id: kim,
        };
        assert_eq!(timer_changes(&offered), [TimerChange::Set(offer, 15_000)]);
    }
}
