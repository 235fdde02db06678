//! Flights and reservations as pure values and one state machine: what a flight offers, what a
//! reservation holds, and which commands and payment/ticket answers may move it. No I/O: `store`
//! persists it (and holds and releases the seats), `http` and `policy` feed it commands.

use tanda_core::Timestamp;
use tanda_core::id::ClientId;

#[cfg(test)]
mod tests;

/// Why a field of a flight request was refused; `http` says which field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidField {
    #[error("must be text of 1-{max} characters, not blank", max = PlaceName::MAX)]
    PlaceName,
    #[error("must be a whole number from {min} to {max}", min = Seats::MIN, max = Seats::MAX)]
    Seats,
    #[error("must be a whole number of won from {min} to {max}", min = Price::MIN, max = Price::MAX)]
    Price,
    #[error("must differ from `from`")]
    SameAsOrigin,
    #[error("must be in the future: a flight that has left cannot be scheduled")]
    Departed,
}

/// Where a flight leaves from or goes to, as the airline names it: 1–100 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceName(String);

impl PlaceName {
    const MAX: usize = 100;
    pub fn parse(s: &str) -> Result<Self, InvalidField> {
        if s.trim().is_empty() || s.chars().count() > Self::MAX {
            return Err(InvalidField::PlaceName);
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The same place, whatever the case and surrounding spaces.
    fn same_place(&self, other: &PlaceName) -> bool {
        self.0.trim().to_lowercase() == other.0.trim().to_lowercase()
    }
}

/// A flight's capacity: 1–1000 seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seats(i64);

impl Seats {
    const MIN: i64 = 1;
    const MAX: i64 = 1000;
    pub fn parse(n: i64) -> Result<Self, InvalidField> {
        if (Self::MIN..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(InvalidField::Seats)
        }
    }
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A ticket's price in won: 1–10,000,000 (the seed's flights cost 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price(i64);

impl Price {
    const MIN: i64 = 1;
    const MAX: i64 = 10_000_000;
    /// The seed's price, for a flight created without one.
    pub const DEFAULT: Price = Price(100);
    pub fn parse(won: i64) -> Result<Self, InvalidField> {
        if (Self::MIN..=Self::MAX).contains(&won) {
            Ok(Self(won))
        } else {
            Err(InvalidField::Price)
        }
    }
    pub fn won(self) -> i64 {
        self.0
    }
}

/// A flight as it is scheduled, with its seats still to be sold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flight {
    pub id: ClientId,
    pub from: PlaceName,
    pub to: PlaceName,
    pub departs_at: Timestamp,
    pub seats: Seats,
    /// Seats not held by an active reservation; `store` keeps it, atomically with them.
    pub seats_left: i64,
    pub price: Price,
}

impl Flight {
    /// A new flight, every seat free. A flight goes somewhere else than where it leaves from,
    /// and leaves after `now`.
    pub fn schedule(
        id: ClientId,
        from: PlaceName,
        to: PlaceName,
        departs_at: Timestamp,
        seats: Seats,
        price: Price,
        now: Timestamp,
    ) -> Result<Self, InvalidField> {
        if from.same_place(&to) {
            return Err(InvalidField::SameAsOrigin);
        }
        if departs_at <= now {
            return Err(InvalidField::Departed);
        }
        Ok(Self {
            id,
            from,
            to,
            departs_at,
            seats,
            seats_left: seats.get(),
            price,
        })
    }
}

impl Flight {
    /// True once the flight has left: its seats are no longer sold.
    pub fn has_departed(&self, now: Timestamp) -> bool {
        self.departs_at <= now
    }
}

/// API.md's reservation status. `PAYMENT_FAILED` and `CANCELLED` are the ends: nothing moves a
/// reservation out of them, and reaching one gives the seat back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Requested,
    /// Payment has not answered in time ("payment delayed"); it still completes when it does.
    Pending,
    Paid,
    Confirmed,
    PaymentFailed,
    CancelRequested,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Requested,
        Status::Pending,
        Status::Paid,
        Status::Confirmed,
        Status::PaymentFailed,
        Status::CancelRequested,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Requested => "REQUESTED",
            Status::Pending => "PENDING",
            Status::Paid => "PAID",
            Status::Confirmed => "CONFIRMED",
            Status::PaymentFailed => "PAYMENT_FAILED",
            Status::CancelRequested => "CANCEL_REQUESTED",
            Status::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A user's reservation of one seat on one flight, at the flight's price when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: String,
    pub user_id: ClientId,
    pub flight_id: ClientId,
    pub from: PlaceName,
    pub to: PlaceName,
    pub departs_at: Timestamp,
    pub price: Price,
    pub status: Status,
    pub ticket_id: Option<String>,
    /// Payment's answer to the cancel, once it came: the won it gave back (0 if it never debited).
    pub refunded: Option<i64>,
    /// Ticket's answer to the cancel came: no valid ticket exists or ever will.
    pub ticket_voided: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The stored row's version, for optimistic concurrency (`store` checks and bumps it).
    pub version: i64,
}

impl Reservation {
    /// A new reservation of a seat on `flight`, waiting for payment.
    pub fn request(id: String, user_id: ClientId, flight: &Flight, now: Timestamp) -> Self {
        Self {
            id,
            user_id,
            flight_id: flight.id.clone(),
            from: flight.from.clone(),
            to: flight.to.clone(),
            departs_at: flight.departs_at,
            price: flight.price,
            status: Status::Requested,
            ticket_id: None,
            refunded: None,
            ticket_voided: false,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }
}

/// What may be asked of a reservation: the user's cancel, the pending timer, and payment's and
/// ticket's answers (`policy` turns their events into these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Cancel,
    /// No payment answer came within the configured time.
    PaymentOverdue,
    PaymentSucceeded,
    PaymentFailed,
    TicketIssued {
        ticket_id: String,
    },
    PaymentRefunded {
        amount: i64,
    },
    TicketVoided {
        ticket_id: Option<String>,
    },
}

/// What happened to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    CancelRequested,
    PaymentDelayed,
    Paid,
    Confirmed {
        ticket_id: String,
    },
    PaymentFailed,
    /// A ticket was issued while a cancel was pending: remembered, it is about to be voided.
    TicketRecorded {
        ticket_id: String,
    },
    Refunded {
        amount: i64,
    },
    TicketVoided {
        ticket_id: Option<String>,
    },
    Cancelled,
}

impl Change {
    /// The reservation's seat goes back on sale: it ended without flying.
    pub fn releases_seat(&self) -> bool {
        matches!(self, Change::PaymentFailed | Change::Cancelled)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationEvent {
    pub at: Timestamp,
    pub change: Change,
}

/// Why a cancel is not allowed in the reservation's current state (a 409).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the reservation is already cancelled")]
    AlreadyCancelled,
    #[error("the payment failed; the reservation is closed and its seat released")]
    PaymentFailed,
    #[error("a cancellation is already pending for this reservation")]
    CancelPending,
    #[error("the flight has departed: the reservation can no longer be cancelled for a refund")]
    FlightDeparted,
}

impl Rejection {
    pub fn code(self) -> &'static str {
        match self {
            Rejection::AlreadyCancelled => "already_cancelled",
            Rejection::PaymentFailed => "payment_failed",
            Rejection::CancelPending => "cancel_pending",
            Rejection::FlightDeparted => "flight_departed",
        }
    }
}

/// Decides what `command` does to `reservation`. Only the user's cancel can be refused; an answer
/// that no longer applies (a duplicate, a late or reordered delivery, anything after a terminal
/// status) changes nothing.
pub fn decide(
    reservation: &Reservation,
    command: Command,
    now: Timestamp,
) -> Result<Vec<ReservationEvent>, Rejection> {
    use Status::*;
    let r = reservation;
    let changes = match (command, r.status) {
        (Command::Cancel, Requested | Pending | Paid | Confirmed) if r.departs_at <= now => {
            return Err(Rejection::FlightDeparted);
        }
        (Command::Cancel, Requested | Pending | Paid | Confirmed) => vec![Change::CancelRequested],
        (Command::Cancel, CancelRequested) => return Err(Rejection::CancelPending),
        (Command::Cancel, Cancelled) => return Err(Rejection::AlreadyCancelled),
        (Command::Cancel, PaymentFailed) => return Err(Rejection::PaymentFailed),
        (Command::PaymentOverdue, Requested) => vec![Change::PaymentDelayed],
        (Command::PaymentSucceeded, Requested | Pending) => vec![Change::Paid],
        (Command::PaymentFailed, Requested | Pending) => vec![Change::PaymentFailed],
        // Ticket is only issued for a paid reservation: it may overtake payment's event.
        (Command::TicketIssued { ticket_id }, Requested | Pending | Paid) => {
            vec![Change::Confirmed { ticket_id }]
        }
        (Command::TicketIssued { ticket_id }, CancelRequested) if r.ticket_id.is_none() => {
            vec![Change::TicketRecorded { ticket_id }]
        }
        // While a cancel is pending, both answers are awaited, in either order.
        (Command::PaymentRefunded { amount }, CancelRequested) if r.refunded.is_none() => {
            let mut changes = vec![Change::Refunded { amount }];
            changes.extend(r.ticket_voided.then_some(Change::Cancelled));
            changes
        }
        (Command::TicketVoided { ticket_id }, CancelRequested) if !r.ticket_voided => {
            let mut changes = vec![Change::TicketVoided { ticket_id }];
            changes.extend(r.refunded.is_some().then_some(Change::Cancelled));
            changes
        }
        _ => vec![],
    };
    Ok(changes
        .into_iter()
        .map(|change| ReservationEvent { at: now, change })
        .collect())
}

/// Applies a decided event.
pub fn apply(reservation: &mut Reservation, event: &ReservationEvent) {
    let r = reservation;
    r.updated_at = event.at;
    match &event.change {
        Change::CancelRequested => r.status = Status::CancelRequested,
        Change::PaymentDelayed => r.status = Status::Pending,
        Change::Paid => r.status = Status::Paid,
        Change::Confirmed { ticket_id } => {
            r.ticket_id = Some(ticket_id.clone());
            r.status = Status::Confirmed;
        }
        Change::PaymentFailed => r.status = Status::PaymentFailed,
        Change::TicketRecorded { ticket_id } => r.ticket_id = Some(ticket_id.clone()),
        Change::Refunded { amount } => r.refunded = Some(*amount),
        Change::TicketVoided { ticket_id } => {
            r.ticket_voided = true;
            if let Some(ticket_id) = ticket_id {
                r.ticket_id.get_or_insert_with(|| ticket_id.clone());
            }
        }
        Change::Cancelled => r.status = Status::Cancelled,
    }
}
