//! Flight events (seed 001). Every event's ordering key is its reservation id.
//!
//! Flow: reservation `ReservationRequested` (seat held) → payment `PaymentSucceeded` (wallet
//! debited) → ticket `TicketIssued` → reservation `CONFIRMED`. `PaymentFailed` releases the seat.
//! Cancel: reservation `ReservationCancelRequested` → payment `PaymentRefunded` and ticket
//! `TicketVoided` (each answers every cancel exactly once) → reservation `CANCELLED`, seat released.

use serde::{Deserialize, Serialize};
use tanda_core::Event;

macro_rules! event {
    ($name:ident) => {
        impl Event for $name {
            const TYPE: &'static str = concat!("flight.", stringify!($name));
            fn aggregate_id(&self) -> &str {
                &self.reservation_id
            }
        }
    };
}

// ---- produced by reservation --------------------------------------------------------------

/// A seat was held for a user; payment should debit `price` won.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationRequested {
    pub reservation_id: String,
    pub user_id: String,
    pub flight_id: String,
    pub price: i64,
    /// The flight, so read models need not ask reservation.
    pub from: String,
    pub to: String,
    pub departs_at: String,
}
event!(ReservationRequested);

/// The user asked to cancel; payment refunds (if it debited) and ticket voids (if it issued).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationCancelRequested {
    pub reservation_id: String,
    pub user_id: String,
    pub flight_id: String,
}
event!(ReservationCancelRequested);

/// The reservation's status changed (one of API.md's reservation statuses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationStatusChanged {
    pub reservation_id: String,
    pub user_id: String,
    pub flight_id: String,
    pub status: String,
}
event!(ReservationStatusChanged);

// ---- produced by payment ------------------------------------------------------------------

/// The wallet was debited `amount` won for this reservation (at most once per reservation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentSucceeded {
    pub reservation_id: String,
    pub user_id: String,
    pub amount: i64,
    pub balance: i64,
}
event!(PaymentSucceeded);

/// The wallet could not pay (`reason`, e.g. `insufficient_balance`); nothing was debited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentFailed {
    pub reservation_id: String,
    pub user_id: String,
    pub amount: i64,
    pub balance: i64,
    pub reason: String,
}
event!(PaymentFailed);

/// Payment's answer to a cancel: `amount` won went back to the wallet — 0 when nothing had been
/// debited. Published once per reservation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRefunded {
    pub reservation_id: String,
    pub user_id: String,
    pub amount: i64,
    pub balance: i64,
}
event!(PaymentRefunded);

// ---- produced by ticket -------------------------------------------------------------------

/// A ticket was issued for a paid reservation (at most one per reservation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketIssued {
    pub ticket_id: String,
    pub reservation_id: String,
    pub user_id: String,
    pub flight_id: String,
}
event!(TicketIssued);

/// Ticket's answer to a cancel: the ticket is void — or, when none had been issued, `ticket_id` is
/// absent and none ever will be. Published once per reservation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketVoided {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    pub reservation_id: String,
    pub user_id: String,
}
event!(TicketVoided);

// ---- produced by payment for a deposit ----------------------------------------------------

/// Money was put into a user's wallet (by the user, or by an operator for them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deposited {
    pub user_id: String,
    pub amount: i64,
    pub balance: i64,
}

impl Event for Deposited {
    const TYPE: &'static str = "flight.Deposited";
    fn aggregate_id(&self) -> &str {
        &self.user_id
    }
}

/// What each flight service publishes (the bus wires consumers to producers from these).
pub const RESERVATION_EVENTS: &[&str] = &[
    ReservationRequested::TYPE,
    ReservationCancelRequested::TYPE,
    ReservationStatusChanged::TYPE,
];
pub const PAYMENT_EVENTS: &[&str] = &[
    Deposited::TYPE,
    PaymentSucceeded::TYPE,
    PaymentFailed::TYPE,
    PaymentRefunded::TYPE,
];
pub const TICKET_EVENTS: &[&str] = &[TicketIssued::TYPE, TicketVoided::TYPE];
