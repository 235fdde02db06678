//! Reactions: to bookings (a booking opens a dispatch, a cancel closes it or is refused, an
//! expired booking closes whatever is still open for it, a replaced card is charged from then
//! on) and to this service's own timers (an offer expiring, a search running out of time). Each
//! runs inside the unit of work the runtime opened for it; one that no longer applies changes
//! nothing.

use std::sync::Arc;

use async_trait::async_trait;
use tanda_catalog::taxi::{BookCancelRequested, BookCardReplaced, BookExpired, BookRequested};
use tanda_core::Uow;
use tanda_core::clock::parse_rfc3339;
use tanda_core::consumer::HandlerError;
use tanda_core::event::Envelope;
use tanda_core::geo::LatLng;
use tanda_core::id::new_id;
use tanda_core::subscription::Policy;
use tanda_core::timers::OnTimer;

use crate::domain::{Booking, Command, NewDispatch, Place};
use crate::error::Error;
use crate::store::{DispatchTimer, Store};

tanda_core::subscription! {
    /// What the `dispatch` consumer takes: book's events.
    pub enum Takes {
        BookRequested(BookRequested),
        BookCancelRequested(BookCancelRequested),
        BookCardReplaced(BookCardReplaced),
        BookExpired(BookExpired),
    }
}

/// The `dispatch` consumer of book's events.
pub struct Bookings {
    pub store: Arc<Store>,
}

#[async_trait]
impl Policy for Bookings {
    type Takes = Takes;

    async fn apply(
        &self,
        uow: &mut Uow,
        event: Takes,
        envelope: &Envelope,
    ) -> Result<(), HandlerError> {
        let command = match event {
            Takes::BookRequested(booked) => open(booked, envelope)?,
            Takes::BookExpired(expired) => Command::Expire {
                book_id: expired.book_id.into(),
            },
            Takes::BookCardReplaced(replaced) => Command::ReplaceCard {
                book_id: replaced.book_id.into(),
                card_token: replaced.card_token,
            },
            Takes::BookCancelRequested(cancel) => Command::Cancel {
                book_id: cancel.book_id.into(),
                customer_id: cancel.customer_id,
                unseen_id: new_id(),
            },
        };
        self.store.execute(uow, command, Some(envelope)).await?;
        Ok(())
    }
}

/// A booking as the dispatch it opens.
fn open(booked: BookRequested, event: &Envelope) -> Result<Command, Error> {
    let place = |p: &tanda_catalog::Place| {
        LatLng::parse(p.lat, p.lng)
            .map(|at| Place {
                name: p.name.clone(),
                at,
            })
            .map_err(|e| Error::InvalidPlace(event.id.clone(), e))
    };
    let answer_by = match &booked.answer_by {
        Some(at) => Some(
            parse_rfc3339(at)
                .ok_or_else(|| Error::InvalidAnswerBy(event.id.clone(), at.clone()))?,
        ),
        None => None,
    };
    Ok(Command::Open(NewDispatch {
        id: new_id().into(),
        booking: Booking {
            card_token: booked.card_token,
            pickup: place(&booked.pickup)?,
            dropoff: place(&booked.dropoff)?,
        },
        book_id: booked.book_id.into(),
        customer_id: booked.customer_id,
        answer_by,
    }))
}

/// Offer and deadline timers.
pub struct Timers {
    pub store: Arc<Store>,
}

#[async_trait]
impl OnTimer for Timers {
    type Timer = DispatchTimer;

    async fn fire(&self, uow: &mut Uow, timer: DispatchTimer) -> Result<(), HandlerError> {
        let command = match timer {
            DispatchTimer::Offer {
                dispatch_id,
                driver_id,
            } => Command::ExpireOffer {
                dispatch_id: dispatch_id.into(),
                driver_id,
            },
            DispatchTimer::Deadline { dispatch_id } => Command::Deadline {
                dispatch_id: dispatch_id.into(),
            },
        };
        self.store.execute(uow, command, None).await?;
        Ok(())
    }
}
