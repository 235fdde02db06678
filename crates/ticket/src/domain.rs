//! Ticket's view of one reservation, as a pure state machine. It learns the flight from
//! reservation's request, the payment from payment and the cancel from reservation — in any order,
//! any number of times — and issues one ticket once the reservation is paid and its flight known,
//! unless the cancel was answered first. A cancel voids the ticket, or closes the reservation to
//! tickets if none was issued. No I/O: `store` persists it, `policy` feeds it.

use tanda_core::Timestamp;
use tanda_core::id::ClientId;

#[cfg(test)]
mod tests;

/// API.md's ticket status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Issued,
    Void,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Issued => "ISSUED",
            Status::Void => "VOID",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub ticket_id: String,
    pub reservation_id: String,
    pub user_id: ClientId,
    pub flight_id: ClientId,
    pub issued_at: Timestamp,
    pub voided_at: Option<Timestamp>,
}

impl Ticket {
    pub fn status(&self) -> Status {
        match self.voided_at {
            Some(_) => Status::Void,
            None => Status::Issued,
        }
    }
}

/// What ticket knows of one reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub reservation_id: String,
    pub user_id: ClientId,
    /// Known once reservation's request arrived.
    pub flight_id: Option<ClientId>,
    /// When payment's success arrived.
    pub paid_at: Option<Timestamp>,
    pub ticket: Option<Ticket>,
    /// When the cancel was answered: nothing changes after that (no ticket is ever issued, and an
    /// issued one is void).
    pub closed_at: Option<Timestamp>,
    /// The stored row's version, for optimistic concurrency (`store` checks and bumps it); 0 for
    /// a reservation not stored yet.
    pub version: i64,
}

impl Reservation {
    /// A reservation ticket has heard nothing of yet.
    pub fn unknown(reservation_id: String, user_id: ClientId) -> Self {
        Self {
            reservation_id,
            user_id,
            flight_id: None,
            paid_at: None,
            ticket: None,
            closed_at: None,
            version: 0,
        }
    }
}

/// What other services tell ticket about a reservation (`policy` turns their events into these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Reservation held a seat on this flight.
    Requested { flight_id: ClientId },
    /// Payment debited the price.
    Paid,
    /// Reservation asks for the ticket to be voided; answered once.
    Cancel,
}

/// What happened to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    FlightKnown {
        flight_id: ClientId,
    },
    Paid,
    Issued {
        ticket_id: String,
        flight_id: ClientId,
    },
    Voided {
        ticket_id: String,
    },
    /// A cancel answered before any ticket was issued: none ever will be.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketEvent {
    pub at: Timestamp,
    pub change: Change,
}

/// Decides what `command` does to the reservation; `ticket_id` names the ticket if this is the
/// moment one is issued. Nothing is ever refused: an input that no longer applies (a duplicate,
/// or anything after the cancel was answered) changes nothing.
pub fn decide(
    r: &Reservation,
    command: Command,
    now: Timestamp,
    ticket_id: String,
) -> Vec<TicketEvent> {
    if r.closed_at.is_some() {
        return vec![];
    }
    let mut flight_id = r.flight_id.clone();
    let mut paid = r.paid_at.is_some();
    let change = match command {
        Command::Cancel => {
            let change = match &r.ticket {
                Some(t) => Change::Voided {
                    ticket_id: t.ticket_id.clone(),
                },
                None => Change::Closed,
            };
            return vec![TicketEvent { at: now, change }];
        }
        Command::Requested { flight_id: f } if flight_id.is_none() => {
            flight_id = Some(f.clone());
            Change::FlightKnown { flight_id: f }
        }
        Command::Paid if !paid => {
            paid = true;
            Change::Paid
        }
        Command::Requested { .. } | Command::Paid => return vec![],
    };
    let mut events = vec![TicketEvent { at: now, change }];
    // Whichever of the request and the payment came second completes the reservation.
    if let Some(flight_id) = flight_id
        && paid
        && r.ticket.is_none()
    {
        let change = Change::Issued {
            ticket_id,
            flight_id,
        };
        events.push(TicketEvent { at: now, change });
    }
    events
}

/// Applies a decided event.
pub fn apply(r: &mut Reservation, event: &TicketEvent) {
    match &event.change {
        Change::FlightKnown { flight_id } => r.flight_id = Some(flight_id.clone()),
        Change::Paid => r.paid_at = Some(event.at),
        Change::Issued {
            ticket_id,
            flight_id,
        } => {
            r.ticket = Some(Ticket {
                ticket_id: ticket_id.clone(),
                reservation_id: r.reservation_id.clone(),
                user_id: r.user_id.clone(),
                flight_id: flight_id.clone(),
                issued_at: event.at,
                voided_at: None,
            });
        }
        Change::Voided { .. } => {
            if let Some(t) = &mut r.ticket {
                t.voided_at = Some(event.at);
            }
            r.closed_at = Some(event.at);
        }
        Change::Closed => r.closed_at = Some(event.at),
    }
}
