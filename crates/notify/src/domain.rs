//! What notify says, and to whom: receivers parsed once at the edge, and each catalog event turned
//! into plain-English messages. Pure, so the wording is tested without a database.

use std::fmt;

use tanda_catalog::flight::{
    PaymentFailed, PaymentRefunded, PaymentSucceeded, ReservationRequested,
    ReservationStatusChanged, TicketIssued, TicketVoided,
};
use tanda_catalog::taxi::{
    BookRequested, CancelRejected, DispatchCancelled, DispatchFailed, OfferExpired, RideOffered,
    TaxiDispatched, TripEnded, TripStarted,
};
use tanda_core::Event;
use tanda_core::id::ClientId;

/// Who a notification is for: `customer:{customerId}`, `driver:{driverId}` or `user:{userId}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receiver {
    Customer(ClientId),
    Driver(ClientId),
    User(ClientId),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a receiver: expected customer:<id>, driver:<id> or user:<id>, where <id> is 1-64 letters, digits, '-' or '_'"
)]
pub struct InvalidReceiver(pub String);

impl Receiver {
    pub fn parse(s: &str) -> Result<Self, InvalidReceiver> {
        let invalid = || InvalidReceiver(s.to_owned());
        let (kind, id) = s.split_once(':').ok_or_else(invalid)?;
        let id = ClientId::parse(id).map_err(|_| invalid())?;
        match kind {
            "customer" => Ok(Self::Customer(id)),
            "driver" => Ok(Self::Driver(id)),
            "user" => Ok(Self::User(id)),
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Customer(id) => write!(f, "customer:{id}"),
            Self::Driver(id) => write!(f, "driver:{id}"),
            Self::User(id) => write!(f, "user:{id}"),
        }
    }
}

/// One message for one receiver, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub receiver: Receiver,
    /// Short and machine-friendly, e.g. `taxi.dispatched`.
    pub subject: &'static str,
    pub text: String,
}

/// A catalog event notify speaks about. Teaching notify a new event is an impl here plus one line
/// in `policy::RULES`.
pub trait Notifies: Event {
    /// The messages this event causes. Ids in events were checked by their producer, so an id that
    /// is not a valid receiver is a poison event, not something to skip silently.
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver>;
}

fn to_customer(id: &str, subject: &'static str, text: String) -> Result<Message, InvalidReceiver> {
    Ok(Message {
        receiver: Receiver::Customer(client_id(id)?),
        subject,
        text,
    })
}

fn to_driver(id: &str, subject: &'static str, text: String) -> Result<Message, InvalidReceiver> {
    Ok(Message {
        receiver: Receiver::Driver(client_id(id)?),
        subject,
        text,
    })
}

fn to_user(id: &str, subject: &'static str, text: String) -> Result<Message, InvalidReceiver> {
    Ok(Message {
        receiver: Receiver::User(client_id(id)?),
        subject,
        text,
    })
}

fn client_id(id: &str) -> Result<ClientId, InvalidReceiver> {
    ClientId::parse(id).map_err(|_| InvalidReceiver(id.to_owned()))
}

impl Notifies for BookRequested {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let text = format!(
            "Looking for a taxi from {} to {}.",
            self.pickup.name, self.dropoff.name
        );
        Ok(vec![to_customer(
            &self.customer_id,
            "book.requested",
            text,
        )?])
    }
}

impl Notifies for RideOffered {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let text = format!(
            "New ride: {} → {}. Accept by {}.",
            self.pickup.name,
            self.dropoff.name,
            seoul_time(&self.expires_at)
        );
        Ok(vec![to_driver(&self.driver_id, "ride.offered", text)?])
    }
}

impl Notifies for TaxiDispatched {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let customer = format!(
            "Taxi {} ({}, {}) is on its way: about {} min.",
            self.car_number,
            self.driver_name,
            self.phone,
            eta_minutes(self.eta_seconds)
        );
        Ok(vec![
            to_customer(&self.customer_id, "taxi.dispatched", customer)?,
            to_driver(
                &self.driver_id,
                "ride.accepted",
                "Ride accepted; head to the pickup.".to_owned(),
            )?,
        ])
    }
}

impl Notifies for TripStarted {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let text = "Your trip has started.".to_owned();
        Ok(vec![to_customer(&self.customer_id, "trip.started", text)?])
    }
}

impl Notifies for TripEnded {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let customer = format!(
            "You have arrived. {} was charged (payment {}).",
            won(self.fare),
            self.pay_id
        );
        let driver = format!("Trip complete: {}.", won(self.fare));
        Ok(vec![
            to_customer(&self.customer_id, "trip.ended", customer)?,
            to_driver(&self.driver_id, "trip.ended", driver)?,
        ])
    }
}

impl Notifies for DispatchFailed {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let text = "Sorry, no taxi could be found. Please try again in a little while.".to_owned();
        let mut messages = vec![to_customer(&self.customer_id, "dispatch.failed", text)?];
        if let Some(driver) = &self.driver_id {
            messages.push(to_driver(
                driver,
                "offer.withdrawn",
                "The ride offer was withdrawn: the booking has closed.".to_owned(),
            )?);
        }
        Ok(messages)
    }
}

impl Notifies for OfferExpired {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        Ok(vec![to_driver(
            &self.driver_id,
            "offer.expired",
            "The ride offer expired before you accepted it; it has gone to another driver."
                .to_owned(),
        )?])
    }
}

impl Notifies for DispatchCancelled {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let mut messages = vec![to_customer(
            &self.customer_id,
            "book.cancelled",
            "Your booking was cancelled.".to_owned(),
        )?];
        if let Some(driver) = &self.driver_id {
            messages.push(to_driver(
                driver,
                "ride.cancelled",
                "The customer cancelled the ride.".to_owned(),
            )?);
        }
        Ok(messages)
    }
}

impl Notifies for CancelRejected {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let text = "Too late to cancel: your trip has already started.".to_owned();
        Ok(vec![to_customer(
            &self.customer_id,
            "cancel.rejected",
            text,
        )?])
    }
}

// ---- flight: every step of a reservation is told to its user ----------------------------------

impl Notifies for ReservationRequested {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let text = format!(
            "Reservation received for flight {} ({} → {}); paying {}.",
            self.flight_id,
            self.from,
            self.to,
            won(self.price)
        );
        Ok(vec![to_user(&self.user_id, "reservation.requested", text)?])
    }
}

impl Notifies for ReservationStatusChanged {
    /// Only the statuses a user waits for; the others are told by the events that cause them.
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let (subject, text) = match self.status.as_str() {
            "PENDING" => (
                "reservation.pending",
                "Payment is delayed; your reservation is pending and will complete on its own.",
            ),
            "CONFIRMED" => ("reservation.confirmed", "Your reservation is confirmed."),
            "CANCELLED" => ("reservation.cancelled", "Your reservation is cancelled."),
            _ => return Ok(Vec::new()),
        };
        Ok(vec![to_user(&self.user_id, subject, text.to_owned())?])
    }
}

impl Notifies for PaymentSucceeded {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let text = format!("Paid {}; balance {}.", won(self.amount), won(self.balance));
        Ok(vec![to_user(&self.user_id, "payment.succeeded", text)?])
    }
}

impl Notifies for PaymentFailed {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let text = format!(
            "Payment failed: your balance of {} is below the price of {}.",
            won(self.balance),
            won(self.amount)
        );
        Ok(vec![to_user(&self.user_id, "payment.failed", text)?])
    }
}

impl Notifies for PaymentRefunded {
    /// A refund of nothing (nothing had been debited) is not news.
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        if self.amount <= 0 {
            return Ok(Vec::new());
        }
        let text = format!(
            "Refunded {}; balance {}.",
            won(self.amount),
            won(self.balance)
        );
        Ok(vec![to_user(&self.user_id, "payment.refunded", text)?])
    }
}

impl Notifies for TicketIssued {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let text = format!(
            "Ticket {} issued for flight {}.",
            self.ticket_id, self.flight_id
        );
        Ok(vec![to_user(&self.user_id, "ticket.issued", text)?])
    }
}

impl Notifies for TicketVoided {
    /// Only a ticket that existed is voided; "none will be issued" is not news to the user.
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let Some(ticket_id) = &self.ticket_id else {
            return Ok(Vec::new());
        };
        let text = format!("Ticket {ticket_id} is void.");
        Ok(vec![to_user(&self.user_id, "ticket.voided", text)?])
    }
}

/// Minutes to announce for an ETA: rounded up, and never "0 min" for a car still on its way.
fn eta_minutes(eta_seconds: i64) -> u64 {
    (eta_seconds.max(0) as u64).div_ceil(60).max(1)
}

/// Money as people read it: `11,200 won`.
/// `18:30:15 (Seoul time)`: Korea keeps UTC+9 all year. A time that does not parse is shown as is.
fn seoul_time(rfc3339: &str) -> String {
    let Some(at) = tanda_core::clock::parse_rfc3339(rfc3339) else {
        return rfc3339.to_owned();
    };
    let seconds = (at.div_euclid(1000) + 9 * 3600).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02} (Seoul time)",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

fn won(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + 8);
    if amount < 0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out.push_str(" won");
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tanda_catalog::Place;

    use super::*;

    fn place(name: &str) -> Place {
        Place {
            name: name.to_owned(),
            lat: 37.5,
            lng: 127.0,
        }
    }

    fn dispatched(eta_seconds: i64) -> TaxiDispatched {
        TaxiDispatched {
            dispatch_id: "d-1".into(),
            book_id: "b-1".into(),
            customer_id: "c1".into(),
            driver_id: "kim".into(),
            driver_name: "Kim".into(),
            car_number: "12가3456".into(),
            phone: "010-1234-5678".into(),
            eta_seconds,
        }
    }

    #[test]
    fn money_has_thousands_separators() {
        assert_eq!(won(0), "0 won");
        assert_eq!(won(999), "999 won");
        assert_eq!(won(4_800), "4,800 won");
        assert_eq!(won(11_200), "11,200 won");
        assert_eq!(won(1_234_567), "1,234,567 won");
        assert_eq!(won(-4_800), "-4,800 won");
        assert_eq!(won(i64::MIN), "-9,223,372,036,854,775,808 won");
    }

    #[test]
    fn eta_is_rounded_up_to_at_least_a_minute() {
        assert_eq!(eta_minutes(0), 1);
        assert_eq!(eta_minutes(-5), 1);
        assert_eq!(eta_minutes(60), 1);
        assert_eq!(eta_minutes(61), 2);
        assert_eq!(eta_minutes(250), 5);
    }

    #[test]
    fn receivers_parse_and_print() {
        let r = Receiver::parse("driver:kim-7").unwrap();
        assert_eq!(r, Receiver::Driver(ClientId::parse("kim-7").unwrap()));
        assert_eq!(r.to_string(), "driver:kim-7");
        assert!(Receiver::parse("user:u_1").is_ok());
        for bad in [
            "",
            "c1",
            "customer:",
            "customer:a b",
            "rider:c1",
            "Customer:c1",
            "customer:c1:x",
        ] {
            assert_eq!(
                Receiver::parse(bad),
                Err(InvalidReceiver(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_dispatched_taxi_tells_the_customer_and_the_driver() {
        let messages = dispatched(250).messages().unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].receiver.to_string(), "customer:c1");
        assert_eq!(messages[0].subject, "taxi.dispatched");
        assert_eq!(
            messages[0].text,
            "Taxi 12가3456 (Kim, 010-1234-5678) is on its way: about 5 min."
        );
        assert_eq!(messages[1].receiver.to_string(), "driver:kim");
        assert_eq!(messages[1].text, "Ride accepted; head to the pickup.");
    }

    #[test]
    fn a_ride_offer_goes_to_the_driver() {
        let offer = RideOffered {
            dispatch_id: "d-1".into(),
            book_id: "b-1".into(),
            customer_id: "c1".into(),
            driver_id: "kim".into(),
            pickup: place("Gangnam Station"),
            dropoff: place("Seoul Station"),
            expires_at: "2026-11-21T09:30:15.000Z".into(),
        };
        let messages = offer.messages().unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].receiver.to_string(), "driver:kim");
        assert_eq!(
            messages[0].text,
            "New ride: Gangnam Station → Seoul Station. Accept by 18:30:15 (Seoul time)."
        );
    }

    #[test]
    fn the_driver_hears_of_a_cancel_only_when_one_was_assigned() {
        let mut cancelled = DispatchCancelled {
            dispatch_id: "d-1".into(),
            book_id: "b-1".into(),
            customer_id: "c1".into(),
            driver_id: None,
        };
        let receivers = |e: &DispatchCancelled| -> Vec<String> {
            let messages = e.messages().unwrap();
            messages.iter().map(|m| m.receiver.to_string()).collect()
        };
        assert_eq!(receivers(&cancelled), ["customer:c1"]);
        cancelled.driver_id = Some("kim".into());
        assert_eq!(receivers(&cancelled), ["customer:c1", "driver:kim"]);
    }

    #[test]
    fn an_event_naming_an_impossible_receiver_is_an_error() {
        let mut e = dispatched(60);
        e.driver_id = "not a driver".into();
        assert_eq!(
            e.messages(),
            Err(InvalidReceiver("not a driver".to_owned()))
        );
    }

    fn status_changed(status: &str) -> ReservationStatusChanged {
        ReservationStatusChanged {
            reservation_id: "r-1".into(),
            user_id: "u1".into(),
            flight_id: "KE701".into(),
            status: status.into(),
        }
    }

    fn refunded(amount: i64) -> PaymentRefunded {
        PaymentRefunded {
            reservation_id: "r-1".into(),
            user_id: "u1".into(),
            amount,
            balance: 12_000,
        }
    }

    fn voided(ticket_id: Option<&str>) -> TicketVoided {
        TicketVoided {
            ticket_id: ticket_id.map(str::to_owned),
            reservation_id: "r-1".into(),
            user_id: "u1".into(),
        }
    }

    /// The one message `messages` holds, as `(receiver, subject, text)`.
    fn told(messages: Result<Vec<Message>, InvalidReceiver>) -> (String, &'static str, String) {
        let messages = messages.unwrap();
        assert_eq!(messages.len(), 1, "{messages:?}");
        let m = &messages[0];
        (m.receiver.to_string(), m.subject, m.text.clone())
    }

    #[test]
    fn every_step_of_a_reservation_is_told_to_its_user() {
        let requested = ReservationRequested {
            reservation_id: "r-1".into(),
            user_id: "u1".into(),
            flight_id: "KE701".into(),
            price: 120_000,
            from: "ICN".into(),
            to: "NRT".into(),
            departs_at: "2026-12-24T09:30:00.000Z".into(),
        };
        let paid = PaymentSucceeded {
            reservation_id: "r-1".into(),
            user_id: "u1".into(),
            amount: 120_000,
            balance: 1_880_000,
        };
        let failed = PaymentFailed {
            reservation_id: "r-1".into(),
            user_id: "u1".into(),
            amount: 1_200,
            balance: 50,
            reason: "insufficient_balance".into(),
        };
        let issued = TicketIssued {
            ticket_id: "t-9".into(),
            reservation_id: "r-1".into(),
            user_id: "u1".into(),
            flight_id: "KE701".into(),
        };
        let expected = [
            (
                told(requested.messages()),
                "reservation.requested",
                "Reservation received for flight KE701 (ICN → NRT); paying 120,000 won.",
            ),
            (
                told(status_changed("PENDING").messages()),
                "reservation.pending",
                "Payment is delayed; your reservation is pending and will complete on its own.",
            ),
            (
                told(paid.messages()),
                "payment.succeeded",
                "Paid 120,000 won; balance 1,880,000 won.",
            ),
            (
                told(failed.messages()),
                "payment.failed",
                "Payment failed: your balance of 50 won is below the price of 1,200 won.",
            ),
            (
                told(issued.messages()),
                "ticket.issued",
                "Ticket t-9 issued for flight KE701.",
            ),
            (
                told(status_changed("CONFIRMED").messages()),
                "reservation.confirmed",
                "Your reservation is confirmed.",
            ),
            (
                told(refunded(120_000).messages()),
                "payment.refunded",
                "Refunded 120,000 won; balance 12,000 won.",
            ),
            (
                told(voided(Some("t-9")).messages()),
                "ticket.voided",
                "Ticket t-9 is void.",
            ),
            (
                told(status_changed("CANCELLED").messages()),
                "reservation.cancelled",
                "Your reservation is cancelled.",
            ),
        ];
        for ((receiver, subject, text), want_subject, want_text) in expected {
            assert_eq!(receiver, "user:u1");
            assert_eq!((subject, text.as_str()), (want_subject, want_text));
        }
    }

    #[test]
    fn only_the_statuses_a_user_waits_for_are_told() {
        for status in [
            "REQUESTED",
            "PAID",
            "PAYMENT_FAILED",
            "CANCEL_REQUESTED",
            "SOMETHING_NEW",
        ] {
            assert_eq!(
                status_changed(status).messages(),
                Ok(Vec::new()),
                "{status}"
            );
        }
    }

    #[test]
    fn a_refund_of_nothing_and_a_void_of_no_ticket_are_not_news() {
        assert_eq!(refunded(0).messages(), Ok(Vec::new()));
        assert_eq!(voided(None).messages(), Ok(Vec::new()));
    }

    #[test]
    fn a_flight_event_naming_an_impossible_user_is_an_error() {
        let mut e = status_changed("CONFIRMED");
        e.user_id = "not a user".into();
        assert_eq!(e.messages(), Err(InvalidReceiver("not a user".to_owned())));
    }

    proptest! {
        #[test]
        fn money_reads_back_as_the_same_amount(amount in any::<i64>()) {
            let text = won(amount);
            let number = text.strip_suffix(" won").unwrap();
            prop_assert_eq!(number.replace(',', "").parse::<i64>().unwrap(), amount);
            // Groups after the first are exactly three digits.
            let groups: Vec<&str> = number.trim_start_matches('-').split(',').collect();
            prop_assert!((1..=3).contains(&groups[0].len()));
            prop_assert!(groups[1..].iter().all(|g| g.len() == 3));
        }

        #[test]
        fn receivers_round_trip(kind in "customer|driver|user", id in "[A-Za-z0-9_-]{1,64}") {
            let text = format!("{kind}:{id}");
            prop_assert_eq!(Receiver::parse(&text).unwrap().to_string(), text);
        }

        #[test]
        fn eta_never_promises_less_than_the_truth(eta in 0i64..100_000) {
            let minutes = eta_minutes(eta) as i64;
            prop_assert!(minutes >= 1 && minutes * 60 >= eta && (minutes - 1) * 60 < eta.max(1));
        }
    }

    #[test]
    fn offer_deadlines_read_in_seoul_time_across_midnight() {
        assert_eq!(seoul_time("2026-11-21T20:00:05Z"), "05:00:05 (Seoul time)");
        assert_eq!(
            seoul_time("2026-11-21T14:59:59.999Z"),
            "23:59:59 (Seoul time)"
        );
        assert_eq!(seoul_time("soon"), "soon");
    }
}
