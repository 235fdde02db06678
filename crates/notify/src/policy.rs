//! Notify's reaction to the catalog: each event it knows becomes messages, stored in the
//! consumer's unit of work; once that commits, live streams and the webhook are woken.

use async_trait::async_trait;
use tanda_catalog::flight::{
    PaymentFailed, PaymentRefunded, PaymentSucceeded, ReservationRequested,
    ReservationStatusChanged, TicketIssued, TicketVoided,
};
use tanda_catalog::taxi::{
    BookCardReplaced, BookExpired, BookRequested, CancelRejected, DispatchCancelled,
    DispatchFailed, OfferExpired, PaymentDeclined, RideOffered, TaxiDispatched, TripEnded,
    TripStarted,
};
use tanda_core::clock::parse_rfc3339;
use tanda_core::consumer::{Handler, HandlerError};
use tanda_core::{Envelope, Uow};
use tokio::sync::watch;

use crate::Error;
use crate::domain::{Message, Notifies};
use crate::store;

/// An event type and the messages it causes.
type Rule = (&'static str, fn(&Envelope) -> Result<Vec<Message>, Error>);

/// Every event notify speaks about, one line each (identity's, which only say how to speak to
/// someone, are `locales`').
const RULES: [Rule; 19] = [
    rule::<BookRequested>(),
    rule::<BookExpired>(),
    rule::<BookCardReplaced>(),
    rule::<RideOffered>(),
    rule::<OfferExpired>(),
    rule::<TaxiDispatched>(),
    rule::<TripStarted>(),
    rule::<TripEnded>(),
    rule::<DispatchFailed>(),
    rule::<DispatchCancelled>(),
    rule::<CancelRejected>(),
    rule::<PaymentDeclined>(),
    rule::<ReservationRequested>(),
    rule::<ReservationStatusChanged>(),
    rule::<PaymentSucceeded>(),
    rule::<PaymentFailed>(),
    rule::<PaymentRefunded>(),
    rule::<TicketIssued>(),
    rule::<TicketVoided>(),
];

/// The event types the consumer subscribes to, read off `RULES` so the two never disagree.
pub static TYPES: [&str; RULES.len()] = {
    let mut types = [""; RULES.len()];
    let mut i = 0;
    while i < RULES.len() {
        types[i] = RULES[i].0;
        i += 1;
    }
    types
};

const fn rule<E: Notifies>() -> Rule {
    (E::TYPE, messages_of::<E>)
}

fn messages_of<E: Notifies>(event: &Envelope) -> Result<Vec<Message>, Error> {
    Ok(event.decode::<E>()?.messages()?)
}

/// The messages `event` causes; none for a type notify does not speak about.
pub fn messages(event: &Envelope) -> Result<Vec<Message>, Error> {
    match RULES.iter().find(|(kind, _)| *kind == event.kind) {
        Some((_, messages)) => messages(event),
        None => Ok(Vec::new()),
    }
}

/// The consumer's handler. Redeliveries never reach it (the runtime's inbox), and the order of
/// events does not matter: each one only adds messages.
pub struct Notifier {
    /// Bumped after a commit that stored notifications.
    pub wake: watch::Sender<u64>,
}

#[async_trait]
impl Handler for Notifier {
    /// Only adds messages through the unit of work; the wake-up after commit is a signal, not a cache.
    fn batchable(&self) -> bool {
        true
    }

    async fn handle(&self, uow: &mut Uow, event: &Envelope) -> Result<(), HandlerError> {
        let messages = messages(event)?;
        if messages.is_empty() {
            return Ok(());
        }
        let fact = store::Fact {
            event_id: &event.id,
            correlation_id: &event.correlation_id,
            // An envelope's time is the producer's own, always RFC 3339; failing that, now.
            occurred_at: parse_rfc3339(&event.occurred_at).unwrap_or_else(|| uow.now()),
        };
        for message in &messages {
            store::insert(uow, message, &fact).await?;
        }
        let wake = self.wake.clone();
        uow.after_commit(move || wake.send_modify(|n| *n = n.wrapping_add(1)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tanda_catalog::taxi::BookStatusChanged;

    use super::*;

    #[test]
    fn subscribes_to_exactly_the_types_it_words() {
        assert_eq!(TYPES.len(), RULES.len());
        assert!(TYPES.contains(&"taxi.TaxiDispatched"));
        assert!(TYPES.contains(&"flight.TicketIssued"));
        assert!(
            TYPES
                .iter()
                .all(|t| t.starts_with("taxi.") || t.starts_with("flight."))
        );
        let mut unique = TYPES.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), TYPES.len(), "one rule per type");
    }

    #[test]
    fn other_events_cause_no_messages() {
        let e = BookStatusChanged {
            book_id: "b-1".into(),
            customer_id: "c1".into(),
            status: "DISPATCHED".into(),
        };
        let envelope = Envelope::new(&e, "b-1", None, 0);
        assert!(messages(&envelope).unwrap().is_empty());
    }

    #[test]
    fn a_flight_event_is_worded_through_its_rule() {
        let e = ReservationStatusChanged {
            reservation_id: "r-1".into(),
            user_id: "u1".into(),
            flight_id: "KE701".into(),
            status: "CONFIRMED".into(),
        };
        let told = messages(&Envelope::new(&e, "r-1", None, 0)).unwrap();
        assert_eq!(told.len(), 1);
        assert_eq!(
            (told[0].receiver.to_string(), told[0].subject),
            ("user:u1".to_owned(), "reservation.confirmed")
        );
    }

    #[test]
    fn a_payload_that_does_not_decode_is_an_error() {
        let e = BookStatusChanged {
            book_id: "b-1".into(),
            customer_id: "c1".into(),
            status: "DISPATCHED".into(),
        };
        let mut envelope = Envelope::new(&e, "b-1", None, 0);
        envelope.kind = "taxi.TripStarted".into();
        assert!(matches!(messages(&envelope), Err(Error::Decode(_))));
    }
}
