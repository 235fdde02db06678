//! What notify says, and to whom: receivers parsed once at the edge, and each catalog event turned
//! into messages: a key of `locales/*/notify.ftl` and its arguments, worded in the receiver's
//! language only when read (`wording`). Pure, so the rules are tested without a database.

use std::fmt;

use tanda_catalog::flight::{
    PaymentFailed, PaymentRefunded, PaymentSucceeded, ReservationRequested,
    ReservationStatusChanged, TicketIssued, TicketVoided,
};
use tanda_catalog::taxi::{
    BookCardReplaced, BookExpired, BookRequested, CASH, CancelRejected, DispatchCancelled,
    DispatchFailed, EXPIRED, OfferExpired, PaymentDeclined, RideOffered, TaxiDispatched, TripEnded,
    TripStarted,
};
use tanda_core::Event;
use tanda_core::id::ClientId;
#[cfg(test)]
use tanda_core::locale::Locale;

#[cfg(test)]
use crate::wording;
use crate::wording::{Arg, Args, args};

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
    /// The person: `customer:{id}`, `driver:{id}` and `user:{id}` are all the account `{id}`.
    pub fn id(&self) -> &ClientId {
        match self {
            Self::Customer(id) | Self::Driver(id) | Self::User(id) => id,
        }
    }

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

/// One message for one receiver, before it is stored: what to say, not yet in any language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub receiver: Receiver,
    /// Short and machine-friendly, e.g. `taxi.dispatched`.
    pub subject: &'static str,
    /// The message in `locales/*/notify.ftl`, worded when it is read.
    pub key: &'static str,
    pub args: Args,
}

#[cfg(test)]
impl Message {
    /// The message in `locale`, as a reader in that language sees it.
    pub fn text(&self, locale: Locale) -> String {
        wording::render(locale, self.key, &self.args)
    }
}

/// A catalog event notify speaks about. Teaching notify a new event is an impl here, one line
/// in `policy::RULES` and its words in each `locales/*/notify.ftl`.
pub trait Notifies: Event {
    /// The messages this event causes. Ids in events were checked by their producer, so an id that
    /// is not a valid receiver is a poison event, not something to skip silently.
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver>;
}

fn message(receiver: Receiver, subject: &'static str, key: &'static str, args: Args) -> Message {
    Message {
        receiver,
        subject,
        key,
        args,
    }
}

fn to_customer(
    id: &str,
    subject: &'static str,
    key: &'static str,
    args: Args,
) -> Result<Message, InvalidReceiver> {
    Ok(message(
        Receiver::Customer(client_id(id)?),
        subject,
        key,
        args,
    ))
}

fn to_driver(
    id: &str,
    subject: &'static str,
    key: &'static str,
    args: Args,
) -> Result<Message, InvalidReceiver> {
    Ok(message(
        Receiver::Driver(client_id(id)?),
        subject,
        key,
        args,
    ))
}

fn to_user(
    id: &str,
    subject: &'static str,
    key: &'static str,
    args: Args,
) -> Result<Message, InvalidReceiver> {
    Ok(message(Receiver::User(client_id(id)?), subject, key, args))
}

fn client_id(id: &str) -> Result<ClientId, InvalidReceiver> {
    ClientId::parse(id).map_err(|_| InvalidReceiver(id.to_owned()))
}

fn text(s: &str) -> Arg {
    Arg::Text(s.to_owned())
}

/// A time as the catalog carries it (RFC 3339); one that does not parse is shown as it is.
fn time(rfc3339: &str) -> Arg {
    tanda_core::clock::parse_rfc3339(rfc3339).map_or_else(|| text(rfc3339), Arg::Time)
}

impl Notifies for BookRequested {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let places = args([
            ("pickup", text(&self.pickup.name)),
            ("dropoff", text(&self.dropoff.name)),
        ]);
        Ok(vec![to_customer(
            &self.customer_id,
            "book.requested",
            "book-requested",
            places,
        )?])
    }
}

impl Notifies for RideOffered {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let offer = args([
            ("pickup", text(&self.pickup.name)),
            ("dropoff", text(&self.dropoff.name)),
            ("deadline", time(&self.expires_at)),
        ]);
        Ok(vec![to_driver(
            &self.driver_id,
            "ride.offered",
            "ride-offered",
            offer,
        )?])
    }
}

impl Notifies for TaxiDispatched {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let taxi = args([
            ("car", text(&self.car_number)),
            ("driver", text(&self.driver_name)),
            ("phone", text(&self.phone)),
            ("minutes", Arg::Number(eta_minutes(self.eta_seconds))),
        ]);
        Ok(vec![
            to_customer(
                &self.customer_id,
                "taxi.dispatched",
                "taxi-dispatched",
                taxi,
            )?,
            to_driver(
                &self.driver_id,
                "ride.accepted",
                "ride-accepted",
                Args::new(),
            )?,
        ])
    }
}

impl Notifies for TripStarted {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        Ok(vec![to_customer(
            &self.customer_id,
            "trip.started",
            "trip-started",
            Args::new(),
        )?])
    }
}

impl Notifies for TripEnded {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let fare = || ("fare", Arg::Won(self.fare));
        let (customer, driver) = if self.method == CASH {
            (
                ("trip-ended-cash", args([fare()])),
                "trip-ended-driver-cash",
            )
        } else {
            (
                (
                    "trip-ended-card",
                    args([fare(), ("payId", text(&self.pay_id))]),
                ),
                "trip-ended-driver",
            )
        };
        Ok(vec![
            to_customer(&self.customer_id, "trip.ended", customer.0, customer.1)?,
            to_driver(&self.driver_id, "trip.ended", driver, args([fare()]))?,
        ])
    }
}

impl Notifies for DispatchFailed {
    /// Only the driver whose offer was open hears of it here: the customer is told once, by
    /// book's `BookExpired`.
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let Some(driver) = &self.driver_id else {
            return Ok(Vec::new());
        };
        Ok(vec![to_driver(
            driver,
            "offer.withdrawn",
            "offer-withdrawn",
            Args::new(),
        )?])
    }
}

impl Notifies for BookExpired {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        Ok(vec![to_customer(
            &self.customer_id,
            "dispatch.failed",
            "dispatch-failed",
            Args::new(),
        )?])
    }
}

impl Notifies for OfferExpired {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        Ok(vec![to_driver(
            &self.driver_id,
            "offer.expired",
            "offer-expired",
            Args::new(),
        )?])
    }
}

impl Notifies for DispatchCancelled {
    /// A customer's cancel is told to both; a booking that ran out (`reason: "expired"`) only to
    /// the driver, the customer hearing of it from `BookExpired`.
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let expired = self.reason.as_deref() == Some(EXPIRED);
        let mut messages = Vec::new();
        if !expired {
            messages.push(to_customer(
                &self.customer_id,
                "book.cancelled",
                "book-cancelled",
                Args::new(),
            )?);
        }
        if let Some(driver) = &self.driver_id {
            let key = if expired {
                "ride-cancelled-expired"
            } else {
                "ride-cancelled"
            };
            messages.push(to_driver(driver, "ride.cancelled", key, Args::new())?);
        }
        Ok(messages)
    }
}

impl Notifies for CancelRejected {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        Ok(vec![to_customer(
            &self.customer_id,
            "cancel.rejected",
            "cancel-rejected",
            Args::new(),
        )?])
    }
}

impl Notifies for PaymentDeclined {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        Ok(vec![
            to_customer(
                &self.customer_id,
                "payment.declined",
                "payment-declined",
                args([("fare", Arg::Won(self.fare))]),
            )?,
            to_driver(
                &self.driver_id,
                "payment.declined",
                "payment-declined-driver",
                Args::new(),
            )?,
        ])
    }
}

impl Notifies for BookCardReplaced {
    /// Only a driver waiting to end the trip needs to know; before one is assigned, nobody does.
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let Some(driver) = &self.driver_id else {
            return Ok(Vec::new());
        };
        Ok(vec![to_driver(
            driver,
            "card.replaced",
            "card-replaced",
            args([("last4", text(&self.card_last4))]),
        )?])
    }
}

// ---- flight: every step of a reservation is told to its user ----------------------------------

impl Notifies for ReservationRequested {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let reservation = args([
            ("flight", text(&self.flight_id)),
            ("from", text(&self.from)),
            ("to", text(&self.to)),
            ("departs", time(&self.departs_at)),
            ("price", Arg::Won(self.price)),
        ]);
        Ok(vec![to_user(
            &self.user_id,
            "reservation.requested",
            "reservation-requested",
            reservation,
        )?])
    }
}

impl Notifies for ReservationStatusChanged {
    /// Only the statuses a user waits for; the others are told by the events that cause them.
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let (subject, key) = match self.status.as_str() {
            "PENDING" => ("reservation.pending", "reservation-pending"),
            "CONFIRMED" => ("reservation.confirmed", "reservation-confirmed"),
            "CANCELLED" => ("reservation.cancelled", "reservation-cancelled"),
            _ => return Ok(Vec::new()),
        };
        Ok(vec![to_user(&self.user_id, subject, key, Args::new())?])
    }
}

impl Notifies for PaymentSucceeded {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let paid = args([
            ("amount", Arg::Won(self.amount)),
            ("balance", Arg::Won(self.balance)),
        ]);
        Ok(vec![to_user(
            &self.user_id,
            "payment.succeeded",
            "payment-succeeded",
            paid,
        )?])
    }
}

impl Notifies for PaymentFailed {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let short = args([
            ("balance", Arg::Won(self.balance)),
            ("price", Arg::Won(self.amount)),
        ]);
        Ok(vec![to_user(
            &self.user_id,
            "payment.failed",
            "payment-failed",
            short,
        )?])
    }
}

impl Notifies for PaymentRefunded {
    /// A refund of nothing (nothing had been debited) is not news.
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        if self.amount <= 0 {
            return Ok(Vec::new());
        }
        let refunded = args([
            ("amount", Arg::Won(self.amount)),
            ("balance", Arg::Won(self.balance)),
        ]);
        Ok(vec![to_user(
            &self.user_id,
            "payment.refunded",
            "payment-refunded",
            refunded,
        )?])
    }
}

impl Notifies for TicketIssued {
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let ticket = args([
            ("ticket", text(&self.ticket_id)),
            ("flight", text(&self.flight_id)),
        ]);
        Ok(vec![to_user(
            &self.user_id,
            "ticket.issued",
            "ticket-issued",
            ticket,
        )?])
    }
}

impl Notifies for TicketVoided {
    /// Only a ticket that existed is voided; "none will be issued" is not news to the user.
    fn messages(&self) -> Result<Vec<Message>, InvalidReceiver> {
        let Some(ticket_id) = &self.ticket_id else {
            return Ok(Vec::new());
        };
        Ok(vec![to_user(
            &self.user_id,
            "ticket.voided",
            "ticket-voided",
            args([("ticket", text(ticket_id))]),
        )?])
    }
}

/// Minutes to announce for an ETA: rounded up, and never "0 min" for a car still on its way.
fn eta_minutes(eta_seconds: i64) -> i64 {
    (eta_seconds.max(0) as u64).div_ceil(60).max(1) as i64
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

    /// Each message as `(receiver, subject, English, Korean)`.
    fn worded(messages: Vec<Message>) -> Vec<(String, &'static str, String, String)> {
        messages
            .iter()
            .map(|m| {
                (
                    m.receiver.to_string(),
                    m.subject,
                    m.text(Locale::En),
                    m.text(Locale::Ko),
                )
            })
            .collect()
    }

    fn receivers(messages: Vec<Message>) -> Vec<(String, &'static str)> {
        messages
            .iter()
            .map(|m| (m.receiver.to_string(), m.subject))
            .collect()
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
        let told = worded(dispatched(250).messages().unwrap());
        assert_eq!(
            told,
            [
                (
                    "customer:c1".to_owned(),
                    "taxi.dispatched",
                    "Taxi 12가3456 (Kim, 010-1234-5678) is on its way: about 5 min.".to_owned(),
                    "택시가 배차됐어요: 12가3456 (Kim 기사님, 010-1234-5678). 약 5분 후 도착해요."
                        .to_owned()
                ),
                (
                    "driver:kim".to_owned(),
                    "ride.accepted",
                    "Ride accepted; head to the pickup.".to_owned(),
                    "배차가 확정됐어요. 승차 위치로 이동해 주세요.".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_booking_is_told_in_either_language() {
        let booked = BookRequested {
            book_id: "b-1".into(),
            customer_id: "c1".into(),
            customer_name: "Hong Gildong".into(),
            phone: "010-2233-0002".into(),
            card_token: "tok".into(),
            card_last4: "4242".into(),
            pickup: place("Seoul City Hall"),
            dropoff: place("Gangnam Station"),
            answer_by: None,
        };
        let told = worded(booked.messages().unwrap());
        assert_eq!(told[0].1, "book.requested");
        assert_eq!(
            told[0].2,
            "Looking for a taxi from Seoul City Hall to Gangnam Station."
        );
        assert_eq!(
            told[0].3,
            "택시를 찾고 있어요: Seoul City Hall → Gangnam Station"
        );
    }

    #[test]
    fn a_ride_offer_goes_to_the_driver_with_its_deadline_in_seoul_time() {
        let offer = RideOffered {
            dispatch_id: "d-1".into(),
            book_id: "b-1".into(),
            customer_id: "c1".into(),
            driver_id: "kim".into(),
            pickup: place("Gangnam Station"),
            dropoff: place("Seoul Station"),
            expires_at: "2026-11-21T09:30:15.000Z".into(),
        };
        let told = worded(offer.messages().unwrap());
        assert_eq!(told.len(), 1);
        assert_eq!(
            (told[0].0.as_str(), told[0].1),
            ("driver:kim", "ride.offered")
        );
        assert_eq!(
            told[0].2,
            "New ride: Gangnam Station → Seoul Station. Accept by 21 Nov 18:30 (Seoul time)."
        );
        assert_eq!(
            told[0].3,
            "새 호출이 왔어요: Gangnam Station → Seoul Station. 11월 21일 18:30까지 수락해 주세요."
        );
        // A deadline that does not parse is shown as it is.
        let odd = RideOffered {
            expires_at: "soon".into(),
            ..offer
        };
        assert!(
            worded(odd.messages().unwrap())[0]
                .2
                .contains("Accept by soon")
        );
    }

    fn ended(method: &str) -> TripEnded {
        TripEnded {
            dispatch_id: "d-1".into(),
            book_id: "b-1".into(),
            customer_id: "c1".into(),
            driver_id: "kim".into(),
            distance_meters: 10_000,
            fare: 11_200,
            pay_id: "p-1".into(),
            method: method.into(),
        }
    }

    #[test]
    fn the_end_of_a_trip_says_how_the_fare_was_paid() {
        let card = worded(ended("CARD").messages().unwrap());
        assert_eq!(
            card,
            [
                (
                    "customer:c1".to_owned(),
                    "trip.ended",
                    "You have arrived. ₩11,200 was charged (payment p-1).".to_owned(),
                    "목적지에 도착했어요. 요금 11,200원이 결제됐어요. (결제번호 p-1)".to_owned()
                ),
                (
                    "driver:kim".to_owned(),
                    "trip.ended",
                    "Trip complete: ₩11,200.".to_owned(),
                    "운행이 끝났어요. 요금은 11,200원이에요.".to_owned()
                ),
            ]
        );
        let cash = worded(ended("CASH").messages().unwrap());
        assert_eq!(
            (cash[0].1, cash[0].2.as_str(), cash[0].3.as_str()),
            (
                "trip.ended",
                "You have arrived. The ₩11,200 fare was paid in cash.",
                "목적지에 도착했어요. 요금 11,200원은 현금으로 결제됐어요."
            )
        );
        assert!(!cash[0].2.contains("charged"), "{}", cash[0].2);
        assert_eq!(cash[1].2, "Trip complete: ₩11,200, paid in cash.");
    }

    fn cancelled(driver: Option<&str>, reason: Option<&str>) -> DispatchCancelled {
        DispatchCancelled {
            dispatch_id: "d-1".into(),
            book_id: "b-1".into(),
            customer_id: "c1".into(),
            driver_id: driver.map(str::to_owned),
            reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn the_driver_hears_of_a_cancel_only_when_one_was_assigned() {
        let told = |e: DispatchCancelled| receivers(e.messages().unwrap());
        assert_eq!(
            told(cancelled(None, None)),
            [("customer:c1".to_owned(), "book.cancelled")]
        );
        let both = [
            ("customer:c1".to_owned(), "book.cancelled"),
            ("driver:kim".to_owned(), "ride.cancelled"),
        ];
        assert_eq!(told(cancelled(Some("kim"), None)), both);
        assert_eq!(told(cancelled(Some("kim"), Some("customer"))), both);
        let driver = cancelled(Some("kim"), None).messages().unwrap();
        assert_eq!(
            driver[1].text(Locale::En),
            "The customer cancelled the ride."
        );
    }

    #[test]
    fn a_booking_that_ran_out_is_told_to_its_customer_once() {
        // The customer hears of it from book's `BookExpired`...
        let expired = BookExpired {
            book_id: "b-1".into(),
            customer_id: "c1".into(),
        };
        assert_eq!(
            worded(expired.messages().unwrap()),
            [(
                "customer:c1".to_owned(),
                "dispatch.failed",
                "Sorry, no taxi could be found. Please try again in a little while.".to_owned(),
                "죄송해요, 주변에서 택시를 찾지 못했어요. 잠시 후 다시 시도해 주세요.".to_owned()
            )]
        );
        // ...and not again from dispatch, which tells only the driver whose offer was open...
        let mut failed = DispatchFailed {
            dispatch_id: "d-1".into(),
            book_id: "b-1".into(),
            customer_id: "c1".into(),
            reason: "no_driver_accepted".into(),
            driver_id: None,
        };
        assert_eq!(failed.messages(), Ok(Vec::new()));
        failed.driver_id = Some("kim".into());
        assert_eq!(
            receivers(failed.messages().unwrap()),
            [("driver:kim".to_owned(), "offer.withdrawn")]
        );
        // ...or the driver already on the way, whose ride is cancelled.
        let closed = worded(cancelled(Some("kim"), Some("expired")).messages().unwrap());
        assert_eq!(
            closed,
            [(
                "driver:kim".to_owned(),
                "ride.cancelled",
                "The booking closed before the ride could start; you are free for the next one."
                    .to_owned(),
                "운행을 시작하기 전에 예약이 마감됐어요. 다음 호출을 받을 수 있어요.".to_owned()
            )]
        );
        assert_eq!(cancelled(None, Some("expired")).messages(), Ok(Vec::new()));
    }

    #[test]
    fn a_declined_card_is_told_to_both_and_a_replaced_one_to_the_driver() {
        let declined = PaymentDeclined {
            dispatch_id: "d-1".into(),
            book_id: "b-1".into(),
            customer_id: "c1".into(),
            driver_id: "kim".into(),
            fare: 11_200,
            reason: "card_declined".into(),
        };
        let told = worded(declined.messages().unwrap());
        assert_eq!(
            (told[0].0.as_str(), told[0].1, told[0].2.as_str()),
            (
                "customer:c1",
                "payment.declined",
                "Your card was declined for the ₩11,200 fare: replace the card in the app, or \
                 pay the driver in cash."
            )
        );
        assert_eq!(
            told[0].3,
            "요금 11,200원 카드 결제가 거절됐어요. 앱에서 카드를 바꾸거나 기사님께 현금으로 결제해 주세요."
        );
        assert_eq!(
            (told[1].0.as_str(), told[1].1, told[1].2.as_str()),
            (
                "driver:kim",
                "payment.declined",
                "The customer's card was declined: end the trip again once they replace it, or \
                 settle in cash."
            )
        );

        let mut replaced = BookCardReplaced {
            book_id: "b-1".into(),
            customer_id: "c1".into(),
            driver_id: Some("kim".into()),
            card_token: "tok".into(),
            card_last4: "1881".into(),
        };
        assert_eq!(
            worded(replaced.messages().unwrap()),
            [(
                "driver:kim".to_owned(),
                "card.replaced",
                "The customer replaced their card (…1881); you can end the trip now.".to_owned(),
                "고객님이 카드를 바꿨어요(…1881). 이제 운행을 종료할 수 있어요.".to_owned()
            )]
        );
        replaced.driver_id = None;
        assert_eq!(replaced.messages(), Ok(Vec::new()));
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

    /// The one message `messages` holds, as `(receiver, subject, English, Korean)`.
    fn told(
        messages: Result<Vec<Message>, InvalidReceiver>,
    ) -> (String, &'static str, String, String) {
        let messages = worded(messages.unwrap());
        assert_eq!(messages.len(), 1, "{messages:?}");
        messages.into_iter().next().unwrap()
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
                "Reservation received for flight KE701 (ICN → NRT, departing 24 Dec 18:30); \
                 paying ₩120,000.",
                "KE701 항공편(ICN → NRT, 12월 24일 18:30 출발) 예약을 접수했어요. 120,000원을 결제할게요.",
            ),
            (
                told(status_changed("PENDING").messages()),
                "reservation.pending",
                "Payment is delayed; your reservation is pending and will complete on its own.",
                "결제가 늦어지고 있어요. 예약은 대기 중이며 결제가 끝나면 자동으로 완료돼요.",
            ),
            (
                told(paid.messages()),
                "payment.succeeded",
                "Paid ₩120,000; balance ₩1,880,000.",
                "120,000원을 결제했어요. 남은 잔액은 1,880,000원이에요.",
            ),
            (
                told(failed.messages()),
                "payment.failed",
                "Payment failed: your balance of ₩50 is below the price of ₩1,200.",
                "결제에 실패했어요. 잔액 50원이 요금 1,200원보다 적어요.",
            ),
            (
                told(issued.messages()),
                "ticket.issued",
                "Ticket t-9 issued for flight KE701.",
                "KE701 항공편 탑승권이 발급됐어요. (탑승권 번호 t-9)",
            ),
            (
                told(status_changed("CONFIRMED").messages()),
                "reservation.confirmed",
                "Your reservation is confirmed.",
                "예약이 확정됐어요.",
            ),
            (
                told(refunded(120_000).messages()),
                "payment.refunded",
                "Refunded ₩120,000; balance ₩12,000.",
                "120,000원을 환불했어요. 남은 잔액은 12,000원이에요.",
            ),
            (
                told(voided(Some("t-9")).messages()),
                "ticket.voided",
                "Ticket t-9 is void.",
                "탑승권이 취소됐어요. (탑승권 번호 t-9)",
            ),
            (
                told(status_changed("CANCELLED").messages()),
                "reservation.cancelled",
                "Your reservation is cancelled.",
                "예약이 취소됐어요.",
            ),
        ];
        for ((receiver, subject, english, korean), want_subject, want_en, want_ko) in expected {
            assert_eq!(receiver, "user:u1");
            assert_eq!(
                (subject, english.as_str(), korean.as_str()),
                (want_subject, want_en, want_ko)
            );
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
        fn receivers_round_trip(kind in "customer|driver|user", id in "[A-Za-z0-9_-]{1,64}") {
            let text = format!("{kind}:{id}");
            prop_assert_eq!(Receiver::parse(&text).unwrap().to_string(), text);
        }

        #[test]
        fn eta_never_promises_less_than_the_truth(eta in 0i64..100_000) {
            let minutes = eta_minutes(eta);
            prop_assert!(minutes >= 1 && minutes * 60 >= eta && (minutes - 1) * 60 < eta.max(1));
        }

        #[test]
        fn any_fare_reads_as_the_same_amount_in_both_languages(fare in 0i64..10_000_000_000) {
            let messages = ended("CARD").messages().unwrap();
            let mut m = messages[1].clone();
            m.args.insert("fare".into(), Arg::Won(fare));
            let english = m.text(Locale::En);
            let korean = m.text(Locale::Ko);
            let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
            prop_assert_eq!(digits(&english), fare.to_string());
            prop_assert_eq!(digits(&korean), fare.to_string());
            prop_assert!(english.contains('₩') && korean.contains('원'));
        }
    }
}
