//! Taxi events (seed 000) and the pay contract. Every event's ordering key is its booking id,
//! except driver availability, which is ordered per driver.
//!
//! Flow: book `BookRequested` → dispatch `RideOffered`… `TaxiDispatched` → `TripStarted` →
//! (dispatch calls pay synchronously; pay `PaymentApproved`) → dispatch `TripEnded`.
//! Compensation: `DispatchFailed`; `BookCancelRequested` → `DispatchCancelled` | `CancelRejected`.

use serde::{Deserialize, Serialize};
use tanda_core::Event;

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
}
event!(BookRequested, book_id);

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
}
event!(TripEnded, book_id);

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

/// The dispatch was cancelled at the customer's request (the driver, if any, is free again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DispatchCancelled {
    pub dispatch_id: String,
    pub book_id: String,
    pub customer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_id: Option<String>,
}
event!(DispatchCancelled, book_id);

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

/// A driver's status changed (`OFFLINE`, `AVAILABLE`, `OFFERED`, `DISPATCHED`, `IN_TRIP`).
/// Book keeps a local count of available drivers from these, for its no-taxi breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriverStatusChanged {
    pub driver_id: String,
    pub status: String,
}
event!(DriverStatusChanged, driver_id);

// ---- produced by pay ----------------------------------------------------------------------

/// A trip's fare was charged (at most once per dispatch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentApproved {
    pub pay_id: String,
    pub book_id: String,
    pub dispatch_id: String,
    pub amount: i64,
    pub card_last4: String,
    pub paid_at: String,
}
event!(PaymentApproved, book_id);

/// What each taxi service publishes (the bus wires consumers to producers from these).
pub const BOOK_EVENTS: &[&str] = &[
    BookRequested::TYPE,
    BookCancelRequested::TYPE,
    BookStatusChanged::TYPE,
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
];
pub const PAY_EVENTS: &[&str] = &[PaymentApproved::TYPE];

/// The synchronous pay call (`POST /pays`), shared by pay and its clients.
pub mod pay {
    use serde::{Deserialize, Serialize};

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
        pub card_token: String,
    }

    /// A trip's payment. Only approved charges are stored, and a trip has at most one.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct Pay {
        pub pay_id: String,
        pub book_id: String,
        pub dispatch_id: String,
        /// The fare dispatch computed, in won.
        pub amount: i64,
        pub card_last4: String,
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
    }
}
