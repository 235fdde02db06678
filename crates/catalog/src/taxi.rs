//! Taxi events (seed 000) and the pay contract. Every event's ordering key is its booking id,
//! except driver availability, which is ordered per driver.
//!
//! Flow: book `BookRequested` (answer due by `answerBy`) → dispatch `RideOffered`…
//! `TaxiDispatched` → `TripStarted` → (dispatch calls pay synchronously; pay `PaymentApproved`)
//! → dispatch `TripEnded`. A declined card: dispatch `PaymentDeclined` → book `BookCardReplaced`
//! (or the driver settles in cash). Compensation: `DispatchFailed`; book `BookExpired` at the
//! answer deadline → `DispatchCancelled` (reason `expired`); `BookCancelRequested` →
//! `DispatchCancelled` | `CancelRejected`.

use serde::{Deserialize, Serialize};
use tanda_core::Event;
use tanda_core::geo::LatLng;

use crate::Place;

macro_rules! event {
    ($name:ident, $key:ident) => {
        impl Event for $name {
            const TYPE: &'static str = concat!("taxi.", stringify!($name));
            fn aggregate_id(&self) -> &str {
                &self.$key
            }
        }
    };
}

// ---- produced by book ---------------------------------------------------------------------

/// A customer asked for a taxi. The card is already tokenised: only its last 4 digits and the
/// simulated network's token travel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookRequested {
    pub book_id: String,
    pub customer_id: String,
    pub customer_name: String,
    pub phone: String,
    pub card_token: String,
    pub card_last4: String,
    pub pickup: Place,
    pub dropoff: Place,
    /// When the customer's answer is due (RFC 3339): book cancels the booking then if no taxi
    /// was dispatched, so dispatch offers it to nobody after. Absent from bookings made before
    /// it was added (dispatch then counts its own deadline from when it heard of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_by: Option<String>,
}
event!(BookRequested, book_id);

/// The customer replaced the booking's card (after a declined charge, typically): the trip is
/// charged to this token from now on. Tokenised like `BookRequested`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookCardReplaced {
    pub book_id: String,
    pub customer_id: String,
    /// The taxi's driver, if book knows of one yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_id: Option<String>,
    pub card_token: String,
    pub card_last4: String,
}
event!(BookCardReplaced, book_id);

/// No taxi was dispatched by the booking's answer deadline: book cancelled it
/// (`CANCELLED_BY_SYSTEM`) and the customer is told. Dispatch closes whatever it still has open
/// for the booking, even a taxi that accepted too late for book to hear of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookExpired {
    pub book_id: String,
    pub customer_id: String,
}
event!(BookExpired, book_id);

/// The customer asked to cancel before boarding; dispatch answers `DispatchCancelled` or
/// `CancelRejected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookCancelRequested {
    pub book_id: String,
    pub customer_id: String,
}
event!(BookCancelRequested, book_id);

/// The customer-facing booking status changed (for read models and notifications).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookStatusChanged {
    pub book_id: String,
    pub customer_id: String,
    /// One of API.md's book statuses, e.g. `DISPATCHED`.
    pub status: String,
}
event!(BookStatusChanged, book_id);

// ---- produced by dispatch -----------------------------------------------------------------

/// A ride was offered to one driver, who may accept until `expires_at` (RFC 3339).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RideOffered {
    pub dispatch_id: String,
    pub book_id: String,
    pub customer_id: String,
    pub driver_id: String,
    pub pickup: Place,
    pub dropoff: Place,
    pub expires_at: String,
}
event!(RideOffered, book_id);

/// A driver accepted: the taxi is on its way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxiDispatched {
    pub dispatch_id: String,
    pub book_id: String,
    pub customer_id: String,
    pub driver_id: String,
    pub driver_name: String,
    pub car_number: String,
    pub phone: String,
    pub eta_seconds: i64,
}
event!(TaxiDispatched, book_id);

/// The customer boarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TripStarted {
    pub dispatch_id: String,
    pub book_id: String,
    pub customer_id: String,
    pub driver_id: String,
}
event!(TripStarted, book_id);

/// The customer alighted and the fare was paid (only ever after a successful payment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TripEnded {
    pub dispatch_id: String,
    pub book_id: String,
    pub customer_id: String,
    pub driver_id: String,
    pub distance_meters: i64,
    pub fare: i64,
    pub pay_id: String,
    /// How the fare was paid: [`CARD`] or [`CASH`] (to the driver). Absent from trips ended
    /// before it was added, which were all paid by card.
    #[serde(default = "card")]
    pub method: String,
}
event!(TripEnded, book_id);

/// The fare was charged to the booking's card.
pub const CARD: &str = "CARD";
/// The fare was paid to the driver in cash.
pub const CASH: &str = "CASH";

fn card() -> String {
    CARD.to_owned()
}

/// The card was declined when the driver ended the trip; the trip is still `IN_TRIP`. The
/// customer may replace the card or pay the driver in cash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentDeclined {
    pub dispatch_id: String,
    pub book_id: String,
    pub customer_id: String,
    pub driver_id: String,
    /// The fare that was asked, in won.
    pub fare: i64,
    /// Why, as the card network said it, e.g. `the card was declined (card_declined)`.
    pub reason: String,
}
event!(PaymentDeclined, book_id);

/// No driver accepted before the dispatch deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DispatchFailed {
    pub dispatch_id: String,
    pub book_id: String,
    pub customer_id: String,
    pub reason: String,
    /// The driver whose offer was still open when the deadline came: it is withdrawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_id: Option<String>,
}
event!(DispatchFailed, book_id);

/// A driver let an offer run out: it goes to the next driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferExpired {
    pub dispatch_id: String,
    pub book_id: String,
    pub driver_id: String,
}
event!(OfferExpired, book_id);

/// The dispatch was cancelled (the driver, if any, is free again): at the customer's request, or
/// because the booking expired before book heard of its taxi (`reason`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DispatchCancelled {
    pub dispatch_id: String,
    pub book_id: String,
    pub customer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_id: Option<String>,
    /// [`BY_CUSTOMER`] or [`EXPIRED`]; absent means by the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
event!(DispatchCancelled, book_id);

/// `DispatchCancelled::reason`: the customer cancelled.
pub const BY_CUSTOMER: &str = "customer";
/// `DispatchCancelled::reason`: the booking's answer deadline passed (`BookExpired`).
pub const EXPIRED: &str = "expired";

/// The cancel came too late: the trip had already started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelRejected {
    pub dispatch_id: String,
    pub book_id: String,
    pub customer_id: String,
    pub reason: String,
}
event!(CancelRejected, book_id);

/// A driver's status changed (`OFFLINE`, `AVAILABLE`, `OFFERED`, `DISPATCHED`, `IN_TRIP`), or an
/// available driver moved into another area cell ([`area_cell`]; the status is repeated). Book
/// keeps a projection of where available drivers are from these, for its quick "no taxi" answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriverStatusChanged {
    pub driver_id: String,
    pub status: String,
    /// Where the driver is. Absent from events of before it was added: anywhere, as far as a
    /// reader knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<LatLng>,
}
event!(DriverStatusChanged, driver_id);

/// The side of an area cell, in degrees of latitude and of longitude: about 1.1 km north–south
/// and at most that east–west. Dispatch announces an available driver's move only when it
/// crosses into another cell, so that a driver's reports do not flood the stream, and a reader
/// of these events knows each available driver's place to within one cell.
pub const AREA_CELL_DEG: f64 = 0.01;

/// How far an available driver may be from the location last announced for them: the diagonal of
/// an area cell (0.01° × 111,195 m × √2), rounded up. What a reader adds to a radius so that it
/// never leaves out a driver who is inside it.
pub const AREA_CELL_SLACK_M: f64 = 1_573.0;

/// The area cell a position is in (see [`AREA_CELL_DEG`]).
pub fn area_cell(at: LatLng) -> (i64, i64) {
    let index = |degrees: f64| (degrees / AREA_CELL_DEG).floor() as i64;
    (index(at.lat), index(at.lng))
}

// ---- produced by pay ----------------------------------------------------------------------

/// A trip's fare was paid (at most once per dispatch): charged to the card, or recorded as paid
/// to the driver in cash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentApproved {
    pub pay_id: String,
    pub book_id: String,
    pub dispatch_id: String,
    pub amount: i64,
    /// The card charged; empty (absent) for cash.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub card_last4: String,
    pub paid_at: String,
    /// [`CARD`] or [`CASH`]; absent from payments of before it was added, all by card.
    #[serde(default = "card")]
    pub method: String,
}
event!(PaymentApproved, book_id);

/// What each taxi service publishes (the bus wires consumers to producers from these).
pub const BOOK_EVENTS: &[&str] = &[
    BookRequested::TYPE,
    BookCancelRequested::TYPE,
    BookStatusChanged::TYPE,
    BookCardReplaced::TYPE,
    BookExpired::TYPE,
];
pub const DISPATCH_EVENTS: &[&str] = &[
    RideOffered::TYPE,
    TaxiDispatched::TYPE,
    TripStarted::TYPE,
    TripEnded::TYPE,
    DispatchFailed::TYPE,
    OfferExpired::TYPE,
    DispatchCancelled::TYPE,
    CancelRejected::TYPE,
    DriverStatusChanged::TYPE,
    PaymentDeclined::TYPE,
];
pub const PAY_EVENTS: &[&str] = &[PaymentApproved::TYPE];

/// The synchronous pay call (`POST /pays`), shared by pay and its clients.
pub mod pay {
    use serde::{Deserialize, Serialize};

    /// The service that charges trips, by name: dispatch calls its internal `POST /pays`.
    pub const SERVICE: &str = "pay";

    use super::card;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PayRequest {
        pub book_id: String,
        /// Whose trip it is: the customer who may read its payment. Absent from a dispatch of
        /// before it was added, when only an operator may read the payment.
        #[serde(default)]
        pub customer_id: String,
        pub dispatch_id: String,
        pub amount: i64,
        /// The card to charge; empty (absent) for cash.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub card_token: String,
        /// [`CARD`](super::CARD) (charge `card_token`) or [`CASH`](super::CASH) (record the fare
        /// as paid to the driver; no card is charged). Absent: card.
        #[serde(default = "card")]
        pub method: String,
    }

    /// A trip's payment. Only approved charges (and cash the driver took) are stored, and a trip
    /// has at most one.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct Pay {
        pub pay_id: String,
        pub book_id: String,
        pub dispatch_id: String,
        /// The fare dispatch computed, in won.
        pub amount: i64,
        /// `CARD` (charged to the card) or `CASH` (paid to the driver).
        #[serde(default = "card")]
        #[schema(example = "CARD")]
        pub method: String,
        /// The card charged; absent for cash.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub card_last4: Option<String>,
        /// Always `PAID`: declined charges are not stored.
        #[schema(example = "PAID")]
        pub status: String,
        #[schema(format = DateTime)]
        pub paid_at: String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_namespaced() {
        assert_eq!(BookRequested::TYPE, "taxi.BookRequested");
        assert_eq!(PaymentApproved::TYPE, "taxi.PaymentApproved");
        assert_eq!(BookCardReplaced::TYPE, "taxi.BookCardReplaced");
        assert_eq!(BookExpired::TYPE, "taxi.BookExpired");
        assert_eq!(PaymentDeclined::TYPE, "taxi.PaymentDeclined");
    }

    #[test]
    fn the_slack_covers_a_whole_cell() {
        let metres_per_degree = tanda_core::geo::EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
        let diagonal = AREA_CELL_DEG * metres_per_degree * std::f64::consts::SQRT_2;
        assert!(AREA_CELL_SLACK_M >= diagonal && AREA_CELL_SLACK_M - diagonal < 1.0);
        // The farthest corners of one cell, at the equator (where a cell is widest).
        let a = LatLng::parse(0.0, 0.0).unwrap();
        let b = LatLng::parse(0.009_999_9, 0.009_999_9).unwrap();
        assert_eq!(area_cell(a), area_cell(b));
        assert!(a.distance_m(b) <= AREA_CELL_SLACK_M);
    }

    #[test]
    fn cells_split_the_map() {
        let at = |lat, lng| area_cell(LatLng::parse(lat, lng).unwrap());
        assert_eq!(at(37.5663, 126.9779), (3756, 12697));
        assert_eq!(at(37.5699, 126.9799), (3756, 12697));
        assert_ne!(at(37.5701, 126.9779), at(37.5663, 126.9779));
        assert_eq!(at(-0.001, -0.001), (-1, -1));
    }
}

/// The search both book and dispatch keep to: book answers each booking by its deadline and
/// refuses one with no driver within the radius; dispatch searches that long, that far.
pub mod search {
    use std::time::Duration;

    use tanda_core::settings;

    /// Dispatch's search, as the operator sets it (`--dispatch-deadline`,
    /// `--dispatch-max-pickup-distance`).
    #[derive(Debug, Clone, PartialEq, clap::Args, serde::Serialize)]
    pub struct Search {
        /// How long a booking may wait for a driver before it is cancelled by the system.
        #[arg(global = true, long = "dispatch-deadline", env = "TANDA_DISPATCH_DEADLINE", default_value = "60s", value_parser = settings::duration)]
        #[serde(serialize_with = "settings::write_duration")]
        pub deadline: Duration,

        /// Only drivers within this distance of the pickup are offered a ride, e.g. `5km` or `800m`.
        #[arg(global = true, long = "dispatch-max-pickup-distance", value_name = "DISTANCE", env = "TANDA_DISPATCH_MAX_PICKUP_DISTANCE", default_value = "5km", value_parser = settings::metres)]
        pub max_pickup_m: f64,
    }

    impl Default for Search {
        fn default() -> Self {
            settings::defaults()
        }
    }
}
