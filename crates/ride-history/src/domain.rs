//! What each taxi event tells the ride history, and the ride as the read model shows it.
//!
//! Every event contributes a few *facts* about one ride; each fact owns its own columns. Book's,
//! dispatch's and pay's events arrive in any order relative to each other, so no fact depends on
//! another, and the two statuses keep the one from the latest event (by `occurredAt`): replays and
//! late duplicates can never move a ride backwards.

use std::collections::BTreeMap;

use serde::Serialize;
use tanda_catalog::Place;
use tanda_catalog::taxi::{
    BookRequested, BookStatusChanged, DispatchCancelled, DispatchFailed, PaymentApproved,
    RideOffered, TaxiDispatched, TripEnded, TripStarted,
};
use tanda_core::Envelope;
use tanda_core::clock::{Timestamp, parse_rfc3339};
use utoipa::ToSchema;
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};

use crate::RideHistoryError;

tanda_core::subscription! {
    /// What the ride-history read model is built from.
    pub enum Takes {
        BookRequested(BookRequested),
        BookStatusChanged(BookStatusChanged),
        RideOffered(RideOffered),
        TaxiDispatched(TaxiDispatched),
        TripStarted(TripStarted),
        TripEnded(TripEnded),
        DispatchCancelled(DispatchCancelled),
        DispatchFailed(DispatchFailed),
        PaymentApproved(PaymentApproved),
    }
}

/// The taxi that took (or was to take) the ride.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
// Book's `Taxi` schema has no driver name; documents merge schemas by name.
#[schema(as = RideHistoryTaxi)]
pub struct Taxi {
    pub driver_id: String,
    pub driver_name: String,
    pub car_number: String,
    pub phone: String,
    pub eta_seconds: i64,
}

/// One piece of what an event says about a ride.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// Who asked for the ride and where to; the ride is listed from then on.
    Requested {
        customer_id: String,
        customer_name: String,
        pickup: Place,
        dropoff: Place,
    },
    /// Book's status, kept if no later one was seen.
    BookStatus(String),
    /// Dispatch's status, kept if no later one was seen.
    DispatchStatus {
        dispatch_id: String,
        status: &'static str,
    },
    Taxi(Taxi),
    /// The distance the driver reported at the end of the trip.
    Distance(i64),
    /// The fare paid for the ride, and how (`CARD` or `CASH`).
    Paid {
        pay_id: String,
        fare: i64,
        method: String,
    },
}

/// What one event changes in one ride, as of the event's time.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub book_id: String,
    pub at: Timestamp,
    pub facts: Vec<Fact>,
}

impl Change {
    /// The change `event` makes, or `None` for a type the read model does not use.
    #[cfg(test)]
    pub fn of(event: &Envelope) -> Result<Option<Self>, RideHistoryError> {
        use tanda_core::subscription::Subscription;
        match Takes::decode(event)? {
            Some(taken) => Self::made_by(taken, event),
            None => Ok(None),
        }
    }

    /// The change `taken`, delivered in `event`, makes (`None` if it shows nothing).
    pub fn made_by(taken: Takes, event: &Envelope) -> Result<Option<Self>, RideHistoryError> {
        let Some((book_id, facts)) = facts(taken) else {
            return Ok(None);
        };
        let at = parse_rfc3339(&event.occurred_at)
            .ok_or_else(|| RideHistoryError::OccurredAt(event.occurred_at.clone()))?;
        Ok(Some(Self { book_id, at, facts }))
    }
}

fn dispatch(dispatch_id: &str, status: &'static str) -> Fact {
    Fact::DispatchStatus {
        dispatch_id: dispatch_id.to_owned(),
        status,
    }
}

fn facts(taken: Takes) -> Option<(String, Vec<Fact>)> {
    let found = match taken {
        Takes::BookRequested(e) => {
            let requested = Fact::Requested {
                customer_id: e.customer_id,
                customer_name: e.customer_name,
                pickup: e.pickup,
                dropoff: e.dropoff,
            };
            (
                e.book_id,
                vec![requested, Fact::BookStatus("REQUESTED".to_owned())],
            )
        }
        Takes::BookStatusChanged(e) => (e.book_id, vec![Fact::BookStatus(e.status)]),
        Takes::RideOffered(e) => {
            let facts = vec![dispatch(&e.dispatch_id, "SEARCHING")];
            (e.book_id, facts)
        }
        Takes::TaxiDispatched(e) => {
            let facts = vec![
                dispatch(&e.dispatch_id, "DISPATCHED"),
                Fact::Taxi(Taxi {
                    driver_id: e.driver_id,
                    driver_name: e.driver_name,
                    car_number: e.car_number,
                    phone: e.phone,
                    eta_seconds: e.eta_seconds,
                }),
            ];
            (e.book_id, facts)
        }
        Takes::TripStarted(e) => {
            let facts = vec![dispatch(&e.dispatch_id, "IN_TRIP")];
            (e.book_id, facts)
        }
        Takes::TripEnded(e) => {
            let facts = vec![
                dispatch(&e.dispatch_id, "ENDED"),
                Fact::Distance(e.distance_meters),
                Fact::Paid {
                    pay_id: e.pay_id,
                    fare: e.fare,
                    method: e.method,
                },
            ];
            (e.book_id, facts)
        }
        Takes::DispatchCancelled(e) => {
            let facts = vec![dispatch(&e.dispatch_id, "CANCELLED")];
            (e.book_id, facts)
        }
        Takes::DispatchFailed(e) => {
            let facts = vec![dispatch(&e.dispatch_id, "FAILED")];
            (e.book_id, facts)
        }
        Takes::PaymentApproved(e) => {
            let facts = vec![Fact::Paid {
                pay_id: e.pay_id,
                fare: e.amount,
                method: e.method,
            }];
            (e.book_id, facts)
        }
    };
    Some(found)
}

/// A ride as `GET /rideHistories` shows it. Fields the ride has not reached yet are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RideHistory {
    pub book_id: String,
    pub dispatch_id: Option<String>,
    pub customer_id: String,
    pub customer_name: String,
    #[schema(schema_with = place_schema)]
    pub pickup: Place,
    #[schema(schema_with = place_schema)]
    pub dropoff: Place,
    pub taxi: Option<Taxi>,
    /// The booking's status, as book's events tell it.
    #[schema(example = "COMPLETED")]
    pub book_status: String,
    /// The dispatch's status, as dispatch's events tell it.
    #[schema(example = "ENDED")]
    pub dispatch_status: Option<String>,
    /// In won.
    pub fare: Option<i64>,
    pub pay_id: Option<String>,
    /// How the fare was paid, once it was: `CARD` or `CASH` (to the driver).
    #[schema(example = "CARD")]
    pub payment_method: Option<String>,
    pub distance_meters: Option<i64>,
    /// When the customer asked for the ride (the list's order).
    #[schema(format = DateTime)]
    pub requested_at: String,
    /// The time of the latest event seen for this ride.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// The schema of the catalog's [`Place`] (which derives none), as it serializes.
fn place_schema() -> Object {
    let number = || {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)))
    };
    ObjectBuilder::new()
        .description(Some("A named place with coordinates"))
        .property("name", Object::with_type(Type::String))
        .property("lat", number())
        .property("lng", number())
        .required("name")
        .required("lat")
        .required("lng")
        .build()
}

/// `GET /rideHistories/stats`: how many rides are listed, and how many are in each book status
/// (only statuses that some ride is in).
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"total": 3, "byStatus": {"COMPLETED": 2, "CANCELLED_BY_CUSTOMER": 1}}))]
pub struct RideStats {
    pub total: i64,
    pub by_status: BTreeMap<String, i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(name: &str) -> Place {
        Place {
            name: name.into(),
            lat: 37.5,
            lng: 127.0,
        }
    }

    #[test]
    fn a_booking_request_names_the_customer_and_starts_requested() {
        let event = BookRequested {
            book_id: "b1".into(),
            customer_id: "c1".into(),
            customer_name: "Kim".into(),
            phone: "010-1234-5678".into(),
            card_token: "tok_4242_ok_0123456789abcdef".into(),
            card_last4: "4242".into(),
            pickup: place("City Hall"),
            dropoff: place("Gangnam"),
            answer_by: None,
        };
        let change = Change::of(&Envelope::new(&event, "b1", None, 1_000))
            .unwrap()
            .unwrap();
        assert_eq!(change.book_id, "b1");
        assert_eq!(change.at, 1_000);
        assert_eq!(
            change.facts,
            vec![
                Fact::Requested {
                    customer_id: "c1".into(),
                    customer_name: "Kim".into(),
                    pickup: place("City Hall"),
                    dropoff: place("Gangnam"),
                },
                Fact::BookStatus("REQUESTED".into()),
            ]
        );
    }

    #[test]
    fn a_trip_end_sets_the_status_distance_and_fare() {
        let event = TripEnded {
            dispatch_id: "d1".into(),
            book_id: "b1".into(),
            customer_id: "c1".into(),
            driver_id: "drv".into(),
            distance_meters: 5_000,
            fare: 7_300,
            pay_id: "p1".into(),
            method: "CASH".into(),
        };
        let change = Change::of(&Envelope::new(&event, "b1", None, 9))
            .unwrap()
            .unwrap();
        assert_eq!(
            change.facts,
            vec![
                dispatch("d1", "ENDED"),
                Fact::Distance(5_000),
                Fact::Paid {
                    pay_id: "p1".into(),
                    fare: 7_300,
                    method: "CASH".into(),
                },
            ]
        );
    }

    #[test]
    fn a_payment_gives_the_fare() {
        let event = PaymentApproved {
            pay_id: "p1".into(),
            book_id: "b1".into(),
            dispatch_id: "d1".into(),
            amount: 7_300,
            card_last4: "4242".into(),
            paid_at: "2026-11-21T09:30:00.000Z".into(),
            method: "CARD".into(),
        };
        let change = Change::of(&Envelope::new(&event, "b1", None, 9))
            .unwrap()
            .unwrap();
        assert_eq!(
            change.facts,
            vec![Fact::Paid {
                pay_id: "p1".into(),
                fare: 7_300,
                method: "CARD".into(),
            }]
        );
    }

    #[test]
    fn a_payment_of_before_methods_were_recorded_was_by_card() {
        let mut event = Envelope::new(
            &TripEnded {
                dispatch_id: "d1".into(),
                book_id: "b1".into(),
                customer_id: "c1".into(),
                driver_id: "drv".into(),
                distance_meters: 5_000,
                fare: 7_300,
                pay_id: "p1".into(),
                method: "CASH".into(),
            },
            "b1",
            None,
            9,
        );
        event.payload.as_object_mut().unwrap().remove("method");
        let paid = Change::of(&event).unwrap().unwrap().facts.pop().unwrap();
        assert_eq!(
            paid,
            Fact::Paid {
                pay_id: "p1".into(),
                fare: 7_300,
                method: "CARD".into()
            }
        );
        let mut event = Envelope::new(
            &PaymentApproved {
                pay_id: "p1".into(),
                book_id: "b1".into(),
                dispatch_id: "d1".into(),
                amount: 7_300,
                card_last4: String::new(),
                paid_at: "2026-11-21T09:30:00.000Z".into(),
                method: "CASH".into(),
            },
            "b1",
            None,
            9,
        );
        assert!(
            event.payload.get("cardLast4").is_none(),
            "cash names no card"
        );
        event.payload.as_object_mut().unwrap().remove("method");
        event.payload["cardLast4"] = "4242".into();
        let Fact::Paid { method, .. } = &Change::of(&event).unwrap().unwrap().facts[0] else {
            panic!("a payment is a paid fact");
        };
        assert_eq!(method, "CARD");
    }

    #[test]
    fn unknown_types_are_ignored_and_bad_payloads_are_errors() {
        let mut event = Envelope::new(
            &BookStatusChanged {
                book_id: "b1".into(),
                customer_id: "c1".into(),
                status: "DISPATCHED".into(),
            },
            "b1",
            None,
            5,
        );
        assert!(Change::of(&event).unwrap().is_some());
        event.payload = serde_json::json!({"bookId": 7});
        assert!(matches!(
            Change::of(&event),
            Err(RideHistoryError::Decode(_))
        ));
        event.kind = "taxi.SomethingNew".into();
        assert_eq!(Change::of(&event).unwrap(), None);
    }
}
