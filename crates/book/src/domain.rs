//! The booking as a pure state machine: what the customer asked for, how far the ride has got, and
//! which commands and dispatch answers may move it. No I/O: `store` persists it, `http` and
//! `policy` feed it commands.
//!
//! Book owns the customer's answer: a booking still waiting for a taxi when its answer is due
//! (`answer_by`) is cancelled by the system right here, whatever dispatch is doing; dispatch
//! follows (`BookExpired`), and book ignores a taxi that lands after.

use serde::Serialize;
use tanda_cardnet::Token;
use tanda_core::Timestamp;
use tanda_core::geo::LatLng;
use tanda_core::id::ClientId;
pub use tanda_core::phone::Phone;

#[cfg(test)]
mod tests;

/// How far the ride has got. A pending cancel remembers it, to return there if dispatch refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Requested,
    Dispatched,
    InTrip,
}

/// API.md's book status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Requested,
    Dispatched,
    InTrip,
    /// Waiting for dispatch to cancel or refuse; `from` keeps following the ride meanwhile.
    CancelRequested {
        from: Stage,
    },
    Completed,
    CancelledByCustomer,
    CancelledBySystem,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        Status::from(self).as_str()
    }
}

impl From<Stage> for Status {
    fn from(stage: Stage) -> Self {
        match stage {
            Stage::Requested => Status::Requested,
            Stage::Dispatched => Status::Dispatched,
            Stage::InTrip => Status::InTrip,
        }
    }
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Requested => "REQUESTED",
            Status::Dispatched => "DISPATCHED",
            Status::InTrip => "IN_TRIP",
            Status::CancelRequested { .. } => "CANCEL_REQUESTED",
            Status::Completed => "COMPLETED",
            Status::CancelledByCustomer => "CANCELLED_BY_CUSTOMER",
            Status::CancelledBySystem => "CANCELLED_BY_SYSTEM",
        }
    }

    /// Rebuilds a stored status from its name and, for a pending cancel, the stage it came from.
    pub fn from_parts(name: &str, from: Option<&str>) -> Option<Self> {
        let stage = |s: &str| match s {
            "REQUESTED" => Some(Stage::Requested),
            "DISPATCHED" => Some(Stage::Dispatched),
            "IN_TRIP" => Some(Stage::InTrip),
            _ => None,
        };
        match name {
            "CANCEL_REQUESTED" => Some(Status::CancelRequested {
                from: stage(from?)?,
            }),
            "COMPLETED" => Some(Status::Completed),
            "CANCELLED_BY_CUSTOMER" => Some(Status::CancelledByCustomer),
            "CANCELLED_BY_SYSTEM" => Some(Status::CancelledBySystem),
            other => stage(other).map(Status::from),
        }
    }

    /// Still waiting for a taxi: nobody accepted yet (as far as book knows), whatever the
    /// customer asked meanwhile. Such a booking is cancelled by the system when its answer is due.
    pub fn waiting(self) -> bool {
        matches!(
            self,
            Status::Requested
                | Status::CancelRequested {
                    from: Stage::Requested
                }
        )
    }

    /// Where the ride stands while the booking is live; `None` once it is terminal.
    pub fn stage(self) -> Option<Stage> {
        match self {
            Status::Requested => Some(Stage::Requested),
            Status::Dispatched => Some(Stage::Dispatched),
            Status::InTrip => Some(Stage::InTrip),
            Status::CancelRequested { from } => Some(from),
            Status::Completed | Status::CancelledByCustomer | Status::CancelledBySystem => None,
        }
    }
}

/// Why a field of a booking request was refused; `http` says which field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidField {
    #[error("must be 1-{max} characters and not blank")]
    Text { max: usize },
}

fn text(s: &str, max: usize) -> Result<String, InvalidField> {
    if s.trim().is_empty() || s.chars().count() > max {
        return Err(InvalidField::Text { max });
    }
    Ok(s.to_owned())
}

/// The customer's name, shown to the driver: 1–100 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerName(String);

impl CustomerName {
    pub fn parse(s: &str) -> Result<Self, InvalidField> {
        text(s, 100).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A place's name as the customer calls it: 1–200 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceName(String);

impl PlaceName {
    pub fn parse(s: &str) -> Result<Self, InvalidField> {
        text(s, 200).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub name: PlaceName,
    pub location: LatLng,
}

/// The taxi dispatch sent, as the customer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Taxi {
    pub driver_id: String,
    pub driver_name: String,
    pub car_number: String,
    pub phone: String,
    pub eta_seconds: i64,
}

/// A booking request, parsed at the edge. The card is already tokenised: the number is gone.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBook {
    pub customer_id: ClientId,
    pub customer_name: CustomerName,
    pub phone: Phone,
    pub card: Token,
    pub pickup: Place,
    pub dropoff: Place,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Book {
    pub id: String,
    pub customer_id: ClientId,
    pub customer_name: CustomerName,
    pub phone: Phone,
    pub card: Token,
    pub pickup: Place,
    pub dropoff: Place,
    pub status: Status,
    pub dispatch_id: Option<String>,
    pub taxi: Option<Taxi>,
    pub fare: Option<i64>,
    pub pay_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When the customer's answer is due: a taxi dispatched by then, or the system's cancel.
    /// `None` for a booking of before book kept it (dispatch's deadline answered those).
    pub answer_by: Option<Timestamp>,
    /// The stored row's version, for optimistic concurrency (`store` checks and bumps it).
    pub version: i64,
}

impl Book {
    /// A new booking, waiting for dispatch; answered by `answer_by` at the latest.
    pub fn request(id: String, new: NewBook, now: Timestamp, answer_by: Timestamp) -> Self {
        Self {
            id,
            customer_id: new.customer_id,
            customer_name: new.customer_name,
            phone: new.phone,
            card: new.card,
            pickup: new.pickup,
            dropoff: new.dropoff,
            status: Status::Requested,
            dispatch_id: None,
            taxi: None,
            fare: None,
            pay_id: None,
            created_at: now,
            updated_at: now,
            answer_by: Some(answer_by),
            version: 0,
        }
    }
}

/// What may be asked of a booking: the customer's cancel and card, the answer deadline, and
/// dispatch's answers (`policy` turns dispatch's events and the answer timer into these).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Cancel,
    /// The customer's new card (already tokenised), charged at the end of the trip from now on.
    ReplaceCard(Token),
    /// The answer is due (`answer_by`): a booking still waiting for a taxi is cancelled.
    Expire,
    TaxiDispatched {
        dispatch_id: String,
        taxi: Taxi,
    },
    TripStarted {
        dispatch_id: String,
    },
    TripEnded {
        dispatch_id: String,
        fare: i64,
        pay_id: String,
    },
    DispatchFailed,
    DispatchCancelled,
    CancelRejected,
}

/// What happened to a booking.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    CancelRequested,
    CardReplaced(Token),
    TaxiAssigned {
        dispatch_id: String,
        taxi: Taxi,
    },
    TripStarted {
        dispatch_id: String,
    },
    Completed {
        dispatch_id: String,
        fare: i64,
        pay_id: String,
    },
    CancelledBySystem,
    CancelledByCustomer,
    CancelRejected,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BookEvent {
    pub at: Timestamp,
    pub change: Change,
}

/// Why a command is not allowed in the booking's current state (a 409).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the trip has already started; a booking can only be cancelled before boarding")]
    TripStarted,
    #[error("a cancellation is already pending for this booking")]
    CancelPending,
    #[error("the trip is already completed")]
    Completed,
    #[error("the booking is already cancelled")]
    AlreadyCancelled,
}

impl Rejection {
    pub fn code(self) -> &'static str {
        match self {
            Rejection::TripStarted => "trip_started",
            Rejection::CancelPending => "cancel_pending",
            Rejection::Completed => "already_completed",
            Rejection::AlreadyCancelled => "already_cancelled",
        }
    }
}

/// Decides what `command` does to `book`. Only the customer's commands (cancel, card) can be
/// refused; a dispatch answer or a timer that no longer applies (a duplicate, a late or
/// reordered delivery, anything after a terminal status) changes nothing — but for a trip that
/// started after the system answered "no taxi": the customer boarded, and the booking follows.
pub fn decide(book: &Book, command: Command, now: Timestamp) -> Result<Vec<BookEvent>, Rejection> {
    let stage = book.status.stage();
    let pending_cancel = matches!(book.status, Status::CancelRequested { .. });
    let change = match command {
        Command::Cancel => match book.status {
            Status::Requested | Status::Dispatched => Change::CancelRequested,
            Status::InTrip => return Err(Rejection::TripStarted),
            Status::CancelRequested { .. } => return Err(Rejection::CancelPending),
            Status::Completed => return Err(Rejection::Completed),
            Status::CancelledByCustomer | Status::CancelledBySystem => {
                return Err(Rejection::AlreadyCancelled);
            }
        },
        // The card may change until the fare is paid, while a cancel is pending too: the trip
        // may still go ahead.
        Command::ReplaceCard(card) => match book.status {
            Status::Completed => return Err(Rejection::Completed),
            Status::CancelledByCustomer | Status::CancelledBySystem => {
                return Err(Rejection::AlreadyCancelled);
            }
            _ => Change::CardReplaced(card),
        },
        // Nobody accepted in time, as far as book knows: the customer's answer is "no taxi".
        // A taxi that accepted meanwhile is dispatch's to call back.
        Command::Expire if book.status.waiting() => Change::CancelledBySystem,
        Command::TaxiDispatched { dispatch_id, taxi } => match stage {
            Some(Stage::Requested) => Change::TaxiAssigned { dispatch_id, taxi },
            // Boarding was delivered first: keep the taxi's details all the same.
            Some(Stage::InTrip) if book.taxi.is_none() => {
                Change::TaxiAssigned { dispatch_id, taxi }
            }
            _ => return Ok(vec![]),
        },
        Command::TripStarted { dispatch_id } => match stage {
            Some(Stage::Requested | Stage::Dispatched) => Change::TripStarted { dispatch_id },
            // Answered "no taxi" before book heard that one had come, and the customer boarded
            // it before dispatch heard of the answer (it calls back a late taxi only until then):
            // the ride is what happened.
            None if book.status == Status::CancelledBySystem => Change::TripStarted { dispatch_id },
            _ => return Ok(vec![]),
        },
        // The fare is paid: whatever else is pending, the ride happened.
        Command::TripEnded {
            dispatch_id,
            fare,
            pay_id,
        } if stage.is_some() || book.status == Status::CancelledBySystem => Change::Completed {
            dispatch_id,
            fare,
            pay_id,
        },
        // No taxi could be had. A pending cancel may have seen the taxi accept first, but a
        // boarded customer is never cancelled.
        Command::DispatchFailed
            if matches!(
                book.status,
                Status::Requested
                    | Status::CancelRequested {
                        from: Stage::Requested | Stage::Dispatched
                    }
            ) =>
        {
            Change::CancelledBySystem
        }
        Command::DispatchCancelled if pending_cancel => Change::CancelledByCustomer,
        Command::CancelRejected if pending_cancel => Change::CancelRejected,
        _ => return Ok(vec![]),
    };
    Ok(vec![BookEvent { at: now, change }])
}

/// Applies a decided event. While a cancel is pending the ride's progress is remembered in it,
/// so a refused cancel returns to wherever the ride got to meanwhile.
pub fn apply(book: &mut Book, event: &BookEvent) {
    book.updated_at = event.at;
    match &event.change {
        Change::CancelRequested => {
            if let Some(from) = book.status.stage() {
                book.status = Status::CancelRequested { from };
            }
        }
        Change::CardReplaced(card) => book.card = card.clone(),
        Change::TaxiAssigned { dispatch_id, taxi } => {
            book.dispatch_id = Some(dispatch_id.clone());
            book.taxi = Some(taxi.clone());
            advance(book, Stage::Dispatched);
        }
        Change::TripStarted { dispatch_id } => {
            book.dispatch_id.get_or_insert_with(|| dispatch_id.clone());
            if book.status == Status::CancelledBySystem {
                book.status = Status::InTrip;
            }
            advance(book, Stage::InTrip);
        }
        Change::Completed {
            dispatch_id,
            fare,
            pay_id,
        } => {
            book.dispatch_id.get_or_insert_with(|| dispatch_id.clone());
            book.fare = Some(*fare);
            book.pay_id = Some(pay_id.clone());
            book.status = Status::Completed;
        }
        Change::CancelledBySystem => book.status = Status::CancelledBySystem,
        Change::CancelledByCustomer => book.status = Status::CancelledByCustomer,
        Change::CancelRejected => {
            if let Status::CancelRequested { from } = book.status {
                book.status = from.into();
            }
        }
    }
}

/// Moves the ride forward (never back) to `to`, inside a pending cancel if there is one.
fn advance(book: &mut Book, to: Stage) {
    book.status = match book.status {
        Status::CancelRequested { from } => Status::CancelRequested { from: from.max(to) },
        status => status.stage().map_or(status, |stage| stage.max(to).into()),
    };
}
