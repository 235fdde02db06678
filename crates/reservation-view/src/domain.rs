//! What each flight event tells the reservation view, and the reservation as the list shows it.
//!
//! Every event contributes a few *facts* about one reservation; each fact owns its own columns.
//! Reservation's, payment's and ticket's events arrive in any order relative to each other, so no
//! fact depends on another. Reservation's status is its own state machine's, so the view keeps the
//! one from the latest event (by `occurredAt`); payment's and ticket's statuses follow a fixed
//! lifecycle, so they only move to a later stage. Replays and late duplicates never move a
//! reservation backwards.

use std::collections::BTreeMap;

use serde::Serialize;
use tanda_catalog::flight::{
    PaymentFailed, PaymentRefunded, PaymentSucceeded, ReservationRequested,
    ReservationStatusChanged, TicketIssued, TicketVoided,
};
use tanda_core::Envelope;
use tanda_core::clock::{Timestamp, parse_rfc3339};

use crate::ReservationViewError;

tanda_core::subscription! {
    /// What the reservation list is built from.
    pub enum Takes {
        ReservationRequested(ReservationRequested),
        ReservationStatusChanged(ReservationStatusChanged),
        PaymentSucceeded(PaymentSucceeded),
        PaymentFailed(PaymentFailed),
        PaymentRefunded(PaymentRefunded),
        TicketIssued(TicketIssued),
        TicketVoided(TicketVoided),
    }
}

/// Where payment is with a reservation, as the view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Requested; payment has not answered yet.
    Pending,
    Paid,
    Failed,
    /// The debit went back to the wallet.
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Paid => "PAID",
            Self::Failed => "FAILED",
            Self::Refunded => "REFUNDED",
        }
    }

    /// Payment's lifecycle: `PENDING`, then `PAID` or `FAILED` (never both), then `REFUNDED`.
    pub fn stage(self) -> i64 {
        match self {
            Self::Pending => 0,
            Self::Paid | Self::Failed => 1,
            Self::Refunded => 2,
        }
    }
}

/// Where the reservation's ticket is, as the view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketStatus {
    Issued,
    /// Voided — or, with no ticket id, none was issued and none ever will be.
    Void,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "ISSUED",
            Self::Void => "VOID",
        }
    }

    /// Ticket's lifecycle: `ISSUED`, then `VOID`.
    pub fn stage(self) -> i64 {
        match self {
            Self::Issued => 1,
            Self::Void => 2,
        }
    }
}

/// One piece of what an event says about a reservation.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// Who reserved which flight at what price; the reservation is listed from then on.
    Requested {
        user_id: String,
        flight_id: String,
        from: String,
        to: String,
        departs_at: String,
        price: i64,
    },
    /// Reservation's status, kept if no later one was seen.
    Status(String),
    /// Payment's status, kept unless it is a later stage than the one shown.
    Payment(PaymentStatus),
    /// Ticket's status (and its id, when the event names one), kept if it is a later stage.
    Ticket {
        ticket_id: Option<String>,
        status: TicketStatus,
    },
}

/// What one event changes in one reservation, as of the event's time.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub reservation_id: String,
    pub at: Timestamp,
    pub facts: Vec<Fact>,
}

impl Change {
    /// The change `event` makes, or `None` for an event that shows nothing: a type the read model
    /// does not use, or a refund of nothing.
    #[cfg(test)]
    pub fn of(event: &Envelope) -> Result<Option<Self>, ReservationViewError> {
        use tanda_core::subscription::Subscription;
        match Takes::decode(event)? {
            Some(taken) => Self::made_by(taken, event),
            None => Ok(None),
        }
    }

    /// The change `taken`, delivered in `event`, makes (`None` if it shows nothing).
    pub fn made_by(taken: Takes, event: &Envelope) -> Result<Option<Self>, ReservationViewError> {
        let Some((reservation_id, facts)) = facts(taken) else {
            return Ok(None);
        };
        let at = parse_rfc3339(&event.occurred_at)
            .ok_or_else(|| ReservationViewError::OccurredAt(event.occurred_at.clone()))?;
        Ok(Some(Self {
            reservation_id,
            at,
            facts,
        }))
    }
}

fn facts(taken: Takes) -> Option<(String, Vec<Fact>)> {
    let found = match taken {
        Takes::ReservationRequested(e) => {
            let requested = Fact::Requested {
                user_id: e.user_id,
                flight_id: e.flight_id,
                from: e.from,
                to: e.to,
                departs_at: e.departs_at,
                price: e.price,
            };
            let facts = vec![
                requested,
                Fact::Status("REQUESTED".to_owned()),
                Fact::Payment(PaymentStatus::Pending),
            ];
            (e.reservation_id, facts)
        }
        Takes::ReservationStatusChanged(e) => (e.reservation_id, vec![Fact::Status(e.status)]),
        Takes::PaymentSucceeded(e) => (e.reservation_id, vec![Fact::Payment(PaymentStatus::Paid)]),
        Takes::PaymentFailed(e) => (e.reservation_id, vec![Fact::Payment(PaymentStatus::Failed)]),
        Takes::PaymentRefunded(e) => {
            // Payment answers every cancel; 0 won back means it never debited, and the payment
            // status (pending or failed) stays as it was.
            if e.amount <= 0 {
                return None;
            }
            (
                e.reservation_id,
                vec![Fact::Payment(PaymentStatus::Refunded)],
            )
        }
        Takes::TicketIssued(e) => {
            let ticket = Fact::Ticket {
                ticket_id: Some(e.ticket_id),
                status: TicketStatus::Issued,
            };
            (e.reservation_id, vec![ticket])
        }
        Takes::TicketVoided(e) => {
            let ticket = Fact::Ticket {
                ticket_id: e.ticket_id,
                status: TicketStatus::Void,
            };
            (e.reservation_id, vec![ticket])
        }
    };
    Some(found)
}

/// A reservation as the list shows it: what reservation, payment and ticket each said of it. The
/// ticket fields are absent until ticket said something about this reservation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationView {
    pub reservation_id: String,
    pub user_id: String,
    pub flight_id: String,
    pub from: String,
    pub to: String,
    #[schema(format = DateTime)]
    pub departs_at: String,
    /// The price in won.
    pub price: i64,
    /// The reservation's status, as reservation last announced it: `REQUESTED`, `PENDING`,
    /// `PAID`, `CONFIRMED`, `PAYMENT_FAILED`, `CANCEL_REQUESTED` or `CANCELLED`.
    #[schema(example = "CONFIRMED")]
    pub status: String,
    /// `PENDING` (payment has not answered yet), `PAID`, `FAILED` or `REFUNDED`.
    #[schema(example = "PAID")]
    pub payment_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    /// `ISSUED` or `VOID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "ISSUED")]
    pub ticket_status: Option<String>,
    /// When the user reserved (the list's order).
    #[schema(format = DateTime)]
    pub requested_at: String,
    /// The time of the latest event that changed this reservation's view.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// `GET /reservationViews/stats`: how many reservations are listed, and how many are in each
/// status (only statuses that some reservation is in).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationStats {
    pub total: i64,
    /// Reservations per status, e.g. `{"CONFIRMED": 2, "CANCELLED": 1}`.
    pub by_status: BTreeMap<String, i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change<E: tanda_core::Event>(event: &E, at: Timestamp) -> Option<Change> {
        Change::of(&Envelope::new(event, event.aggregate_id(), None, at)).unwrap()
    }

    fn refunded(amount: i64) -> PaymentRefunded {
        PaymentRefunded {
            reservation_id: "r1".into(),
            user_id: "u1".into(),
            amount,
            balance: 1_000,
        }
    }

    #[test]
    fn a_reservation_request_names_the_flight_and_starts_requested_and_pending() {
        let event = ReservationRequested {
            reservation_id: "r1".into(),
            user_id: "u1".into(),
            flight_id: "KE123".into(),
            price: 100,
            from: "ICN".into(),
            to: "NRT".into(),
            departs_at: "2026-12-24T09:30:00.000Z".into(),
        };
        let change = change(&event, 1_000).unwrap();
        assert_eq!(change.reservation_id, "r1");
        assert_eq!(change.at, 1_000);
        assert_eq!(
            change.facts,
            vec![
                Fact::Requested {
                    user_id: "u1".into(),
                    flight_id: "KE123".into(),
                    from: "ICN".into(),
                    to: "NRT".into(),
                    departs_at: "2026-12-24T09:30:00.000Z".into(),
                    price: 100,
                },
                Fact::Status("REQUESTED".into()),
                Fact::Payment(PaymentStatus::Pending),
            ]
        );
    }

    #[test]
    fn payment_events_set_the_payment_status() {
        let paid = PaymentSucceeded {
            reservation_id: "r1".into(),
            user_id: "u1".into(),
            amount: 100,
            balance: 900,
        };
        assert_eq!(
            change(&paid, 5).unwrap().facts,
            [Fact::Payment(PaymentStatus::Paid)]
        );
        let failed = PaymentFailed {
            reservation_id: "r1".into(),
            user_id: "u1".into(),
            amount: 100,
            balance: 50,
            reason: "insufficient_balance".into(),
        };
        assert_eq!(
            change(&failed, 5).unwrap().facts,
            [Fact::Payment(PaymentStatus::Failed)]
        );
        assert_eq!(
            change(&refunded(100), 5).unwrap().facts,
            [Fact::Payment(PaymentStatus::Refunded)]
        );
    }

    #[test]
    fn a_refund_of_nothing_shows_nothing() {
        assert_eq!(change(&refunded(0), 5), None);
    }

    #[test]
    fn ticket_events_set_the_ticket() {
        let issued = TicketIssued {
            ticket_id: "t1".into(),
            reservation_id: "r1".into(),
            user_id: "u1".into(),
            flight_id: "KE123".into(),
        };
        assert_eq!(
            change(&issued, 5).unwrap().facts,
            [Fact::Ticket {
                ticket_id: Some("t1".into()),
                status: TicketStatus::Issued
            }]
        );
        let none_issued = TicketVoided {
            ticket_id: None,
            reservation_id: "r1".into(),
            user_id: "u1".into(),
        };
        assert_eq!(
            change(&none_issued, 5).unwrap().facts,
            [Fact::Ticket {
                ticket_id: None,
                status: TicketStatus::Void
            }]
        );
    }

    #[test]
    fn lifecycles_only_move_forward() {
        use PaymentStatus::*;
        assert!(Pending.stage() < Paid.stage());
        assert_eq!(Paid.stage(), Failed.stage());
        assert!(Paid.stage() < Refunded.stage());
        assert!(TicketStatus::Issued.stage() < TicketStatus::Void.stage());
    }

    #[test]
    fn unknown_types_are_ignored_and_bad_payloads_are_errors() {
        let mut event = Envelope::new(
            &ReservationStatusChanged {
                reservation_id: "r1".into(),
                user_id: "u1".into(),
                flight_id: "KE123".into(),
                status: "PAID".into(),
            },
            "r1",
            None,
            5,
        );
        assert!(Change::of(&event).unwrap().is_some());
        event.payload = serde_json::json!({"reservationId": 7});
        assert!(matches!(
            Change::of(&event),
            Err(ReservationViewError::Decode(_))
        ));
        event.kind = "flight.SomethingNew".into();
        assert_eq!(Change::of(&event).unwrap(), None);
    }

    #[test]
    fn an_unreadable_time_is_an_error() {
        let mut event = Envelope::new(&refunded(100), "r1", None, 5);
        event.occurred_at = "yesterday".into();
        assert!(matches!(
            Change::of(&event),
            Err(ReservationViewError::OccurredAt(_))
        ));
    }
}
