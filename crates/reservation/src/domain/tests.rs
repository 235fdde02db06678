//! The reservation state machine: every transition and rejection, answers overtaking each other,
//! and randomized runs (arbitrary inputs, and simulated payment and ticket services with
//! duplicated, reordered deliveries) checking the invariants.

use proptest::prelude::*;

use super::*;

const PRICE: i64 = 100;

fn flight() -> Flight {
    Flight::schedule(
        ClientId::parse("KE123").unwrap(),
        PlaceName::parse("Seoul (ICN)").unwrap(),
        PlaceName::parse("Jeju (CJU)").unwrap(),
        DEPARTS_AT,
        Seats::parse(10).unwrap(),
        Price::parse(PRICE).unwrap(),
        1_000,
    )
    .unwrap()
}

const DEPARTS_AT: Timestamp = 1_800_000_000_000;

fn reservation() -> Reservation {
    Reservation::request(
        "r-1".to_owned(),
        ClientId::parse("u-1").unwrap(),
        &flight(),
        1_000,
    )
}

fn issued() -> Command {
    Command::TicketIssued {
        ticket_id: "t-1".to_owned(),
    }
}

fn refunded(amount: i64) -> Command {
    Command::PaymentRefunded { amount }
}

fn voided(ticket_id: Option<&str>) -> Command {
    Command::TicketVoided {
        ticket_id: ticket_id.map(str::to_owned),
    }
}

/// Runs `command` like the store does: decide, then apply what was decided.
fn run(r: &mut Reservation, command: Command) -> Result<Vec<ReservationEvent>, Rejection> {
    let events = decide(r, command, r.updated_at + 1)?;
    for e in &events {
        apply(r, e);
    }
    Ok(events)
}

/// A reservation after `commands`, each of which must be accepted.
fn after(commands: impl IntoIterator<Item = Command>) -> Reservation {
    let mut r = reservation();
    for c in commands {
        run(&mut r, c).unwrap();
    }
    r
}

/// The statuses a reservation ends in without flying.
fn ended(status: Status) -> bool {
    matches!(status, Status::PaymentFailed | Status::Cancelled)
}

fn changes(events: &[ReservationEvent]) -> Vec<Change> {
    events.iter().map(|e| e.change.clone()).collect()
}

#[test]
fn a_new_reservation_is_requested_at_the_flights_price() {
    let r = reservation();
    assert_eq!(r.status, Status::Requested);
    assert_eq!(r.status.as_str(), "REQUESTED");
    assert_eq!(r.price.won(), PRICE);
    assert_eq!(r.flight_id.as_str(), "KE123");
    assert_eq!(r.from.as_str(), "Seoul (ICN)");
    assert_eq!(r.departs_at, 1_800_000_000_000);
    assert_eq!((r.created_at, r.updated_at), (1_000, 1_000));
    assert!(r.ticket_id.is_none() && r.refunded.is_none() && !r.ticket_voided);
}

#[test]
fn happy_path_requested_paid_confirmed() {
    let mut r = reservation();
    let events = run(&mut r, Command::PaymentSucceeded).unwrap();
    assert_eq!(changes(&events), [Change::Paid]);
    assert_eq!(r.status, Status::Paid);
    assert_eq!(r.updated_at, 1_001);

    let events = run(&mut r, issued()).unwrap();
    assert_eq!(
        changes(&events),
        [Change::Confirmed {
            ticket_id: "t-1".to_owned()
        }]
    );
    assert_eq!(r.status, Status::Confirmed);
    assert_eq!(r.ticket_id.as_deref(), Some("t-1"));
}

#[test]
fn slow_payment_shows_pending_then_completes() {
    let mut r = reservation();
    assert_eq!(
        changes(&run(&mut r, Command::PaymentOverdue).unwrap()),
        [Change::PaymentDelayed]
    );
    assert_eq!(r.status, Status::Pending);
    run(&mut r, Command::PaymentSucceeded).unwrap();
    assert_eq!(r.status, Status::Paid);
    run(&mut r, issued()).unwrap();
    assert_eq!(r.status, Status::Confirmed);

    let mut r = after([Command::PaymentOverdue]);
    run(&mut r, Command::PaymentFailed).unwrap();
    assert_eq!(r.status, Status::PaymentFailed);
}

#[test]
fn the_pending_timer_only_moves_a_reservation_still_waiting() {
    for mut r in [
        after([Command::PaymentOverdue]),
        after([Command::PaymentSucceeded]),
        after([Command::PaymentSucceeded, issued()]),
        after([Command::PaymentFailed]),
        after([Command::Cancel]),
    ] {
        let before = r.clone();
        assert_eq!(run(&mut r, Command::PaymentOverdue), Ok(vec![]));
        assert_eq!(r, before);
    }
}

#[test]
fn a_ticket_overtaking_the_payment_confirms() {
    for mut r in [reservation(), after([Command::PaymentOverdue])] {
        run(&mut r, issued()).unwrap();
        assert_eq!(r.status, Status::Confirmed);
        assert_eq!(r.ticket_id.as_deref(), Some("t-1"));
        // The payment event arriving afterwards changes nothing.
        assert_eq!(run(&mut r, Command::PaymentSucceeded), Ok(vec![]));
        assert_eq!(r.status, Status::Confirmed);
    }
}

#[test]
fn payment_failure_ends_the_reservation_and_releases_its_seat() {
    let mut r = reservation();
    let events = run(&mut r, Command::PaymentFailed).unwrap();
    assert_eq!(changes(&events), [Change::PaymentFailed]);
    assert!(events[0].change.releases_seat());
    assert_eq!(r.status, Status::PaymentFailed);
}

#[test]
fn cancel_is_requested_from_every_live_status() {
    for mut r in [
        reservation(),
        after([Command::PaymentOverdue]),
        after([Command::PaymentSucceeded]),
        after([Command::PaymentSucceeded, issued()]),
    ] {
        let events = run(&mut r, Command::Cancel).unwrap();
        assert_eq!(changes(&events), [Change::CancelRequested]);
        assert!(!events[0].change.releases_seat());
        assert_eq!(r.status, Status::CancelRequested);
    }
}

#[test]
fn cancel_rejections() {
    let cases = [
        (
            after([Command::Cancel]),
            Rejection::CancelPending,
            "cancel_pending",
        ),
        (
            after([Command::Cancel, refunded(0), voided(None)]),
            Rejection::AlreadyCancelled,
            "already_cancelled",
        ),
        (
            after([Command::PaymentFailed]),
            Rejection::PaymentFailed,
            "payment_failed",
        ),
    ];
    for (r, rejection, code) in cases {
        assert_eq!(
            decide(&r, Command::Cancel, 9),
            Err(rejection),
            "{:?}",
            r.status
        );
        assert_eq!(rejection.code(), code);
    }
}

#[test]
fn cancel_completes_on_both_answers_in_either_order() {
    let confirmed = [Command::PaymentSucceeded, issued(), Command::Cancel];

    let mut r = after(confirmed.clone());
    assert_eq!(
        changes(&run(&mut r, refunded(PRICE)).unwrap()),
        [Change::Refunded { amount: PRICE }]
    );
    assert_eq!(r.status, Status::CancelRequested);
    let events = run(&mut r, voided(Some("t-1"))).unwrap();
    assert_eq!(
        changes(&events),
        [
            Change::TicketVoided {
                ticket_id: Some("t-1".to_owned())
            },
            Change::Cancelled
        ]
    );
    assert_eq!(
        events.iter().filter(|e| e.change.releases_seat()).count(),
        1
    );
    assert_eq!(r.status, Status::Cancelled);
    assert_eq!(r.refunded, Some(PRICE));
    assert_eq!(r.ticket_id.as_deref(), Some("t-1"));

    let mut r = after(confirmed);
    run(&mut r, voided(Some("t-1"))).unwrap();
    assert_eq!(r.status, Status::CancelRequested);
    let events = run(&mut r, refunded(PRICE)).unwrap();
    assert_eq!(
        changes(&events),
        [Change::Refunded { amount: PRICE }, Change::Cancelled]
    );
    assert_eq!(r.status, Status::Cancelled);
}

#[test]
fn cancel_before_payment_answers_ends_cancelled_whatever_payment_did() {
    // Payment failed after the cancel: ignored for status; the refund of 0 and the void finish it.
    let mut r = after([Command::Cancel]);
    assert_eq!(run(&mut r, Command::PaymentFailed), Ok(vec![]));
    run(&mut r, refunded(0)).unwrap();
    run(&mut r, voided(None)).unwrap();
    assert_eq!(r.status, Status::Cancelled);
    assert_eq!(r.refunded, Some(0));
    assert!(r.ticket_id.is_none());

    // Payment succeeded and ticket issued after the cancel: remembered, not shown.
    let mut r = after([Command::Cancel]);
    assert_eq!(run(&mut r, Command::PaymentSucceeded), Ok(vec![]));
    assert_eq!(
        changes(&run(&mut r, issued()).unwrap()),
        [Change::TicketRecorded {
            ticket_id: "t-1".to_owned()
        }]
    );
    assert_eq!(r.status, Status::CancelRequested);
    assert_eq!(r.ticket_id.as_deref(), Some("t-1"));
    run(&mut r, voided(Some("t-1"))).unwrap();
    run(&mut r, refunded(PRICE)).unwrap();
    assert_eq!(r.status, Status::Cancelled);
}

#[test]
fn a_void_names_the_ticket_even_if_its_issue_was_not_seen() {
    let mut r = after([Command::PaymentSucceeded, Command::Cancel]);
    run(&mut r, voided(Some("t-9"))).unwrap();
    assert_eq!(r.ticket_id.as_deref(), Some("t-9"));
    assert!(r.ticket_voided);
}

#[test]
fn answers_that_do_not_apply_are_ignored() {
    let cases = [
        (reservation(), refunded(PRICE)),
        (reservation(), voided(None)),
        (
            after([Command::PaymentSucceeded]),
            Command::PaymentSucceeded,
        ),
        (after([Command::PaymentSucceeded]), Command::PaymentFailed),
        (after([Command::PaymentSucceeded, issued()]), issued()),
        (
            after([Command::PaymentSucceeded, issued()]),
            refunded(PRICE),
        ),
        (after([Command::Cancel, refunded(0)]), refunded(0)),
        (after([Command::Cancel, voided(None)]), voided(None)),
        (after([Command::Cancel, issued()]), issued()),
        (after([Command::Cancel]), Command::PaymentSucceeded),
        (after([Command::Cancel]), Command::PaymentOverdue),
    ];
    for (mut r, command) in cases {
        let before = r.clone();
        assert_eq!(run(&mut r, command.clone()), Ok(vec![]), "{command:?}");
        assert_eq!(r, before);
    }
}

#[test]
fn terminal_states_ignore_every_answer() {
    let terminals = [
        after([Command::PaymentFailed]),
        after([Command::Cancel, refunded(0), voided(None)]),
    ];
    for t in terminals {
        for command in [
            Command::PaymentOverdue,
            Command::PaymentSucceeded,
            Command::PaymentFailed,
            issued(),
            refunded(PRICE),
            voided(Some("t-1")),
        ] {
            let mut r = t.clone();
            assert_eq!(run(&mut r, command), Ok(vec![]));
            assert_eq!(r, t);
        }
    }
}

#[test]
fn statuses_round_trip() {
    for s in Status::ALL {
        assert_eq!(Status::parse(s.as_str()), Some(s));
    }
    assert_eq!(Status::parse("CANCELED"), None);
    assert_eq!(Status::parse(""), None);
}

#[test]
fn flight_fields_are_parsed() {
    assert!(PlaceName::parse("인천").is_ok());
    assert!(PlaceName::parse(&"가".repeat(100)).is_ok());
    assert_eq!(PlaceName::parse(""), Err(InvalidField::PlaceName));
    assert_eq!(PlaceName::parse("  "), Err(InvalidField::PlaceName));
    assert_eq!(
        PlaceName::parse(&"가".repeat(101)),
        Err(InvalidField::PlaceName)
    );

    assert_eq!(Seats::parse(1).map(Seats::get), Ok(1));
    assert_eq!(Seats::parse(1000).map(Seats::get), Ok(1000));
    assert_eq!(Seats::parse(0), Err(InvalidField::Seats));
    assert_eq!(Seats::parse(1001), Err(InvalidField::Seats));
    assert_eq!(Seats::parse(-5), Err(InvalidField::Seats));

    assert_eq!(Price::DEFAULT.won(), 100);
    assert_eq!(Price::parse(10_000_000).map(Price::won), Ok(10_000_000));
    assert_eq!(Price::parse(0), Err(InvalidField::Price));
    assert_eq!(Price::parse(10_000_001), Err(InvalidField::Price));

    let f = flight();
    assert_eq!(f.seats_left, 10);
    let same = Flight::schedule(
        f.id.clone(),
        PlaceName::parse("ICN").unwrap(),
        PlaceName::parse(" icn ").unwrap(),
        DEPARTS_AT,
        f.seats,
        f.price,
        0,
    );
    assert_eq!(same, Err(InvalidField::SameAsOrigin));
    for now in [DEPARTS_AT, DEPARTS_AT + 1] {
        let gone = Flight::schedule(
            f.id.clone(),
            f.from.clone(),
            f.to.clone(),
            DEPARTS_AT,
            f.seats,
            f.price,
            now,
        );
        assert_eq!(gone, Err(InvalidField::Departed), "scheduled at {now}");
    }
    assert!(!f.has_departed(DEPARTS_AT - 1) && f.has_departed(DEPARTS_AT));
}

#[test]
fn a_departed_flights_reservation_cannot_be_cancelled_for_a_refund() {
    let confirmed = after([Command::PaymentSucceeded, issued()]);
    assert!(decide(&confirmed, Command::Cancel, DEPARTS_AT - 1).is_ok());
    assert_eq!(
        decide(&confirmed, Command::Cancel, DEPARTS_AT),
        Err(Rejection::FlightDeparted)
    );
    // What was already asked before departure still completes: payment and ticket answer.
    let mut pending = after([Command::PaymentSucceeded, issued(), Command::Cancel]);
    for (answer, at) in [
        (refunded(PRICE), DEPARTS_AT + 1),
        (voided(Some("t-1")), DEPARTS_AT + 2),
    ] {
        for e in &decide(&pending, answer, at).unwrap() {
            apply(&mut pending, e);
        }
    }
    assert_eq!(pending.status, Status::Cancelled);
}

// ---- randomized ---------------------------------------------------------------------------

fn any_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::Cancel),
        Just(Command::PaymentOverdue),
        Just(Command::PaymentSucceeded),
        Just(Command::PaymentFailed),
        Just(issued()),
        Just(refunded(PRICE)),
        Just(refunded(0)),
        Just(voided(None)),
        Just(voided(Some("t-1"))),
    ]
}

/// What every run of the machine must keep, checked after each step: `seats_released` counts
/// the seat releases decided so far, `cancel_answers` whether the refund and the void arrived.
fn check_invariants(
    r: &Reservation,
    before: &Reservation,
    seats_released: usize,
    ticket_seen: bool,
    cancel_answers: (bool, bool),
) -> Result<(), TestCaseError> {
    if ended(before.status) {
        prop_assert_eq!(r, before, "terminal states stay terminal");
    }
    prop_assert!(seats_released <= 1, "a seat is released at most once");
    prop_assert_eq!(
        seats_released == 1,
        ended(r.status),
        "the seat is released exactly when the reservation ends without flying"
    );
    if r.status == Status::Confirmed {
        prop_assert!(
            ticket_seen && r.ticket_id.is_some(),
            "CONFIRMED only with a ticket"
        );
    }
    if r.status == Status::Cancelled {
        prop_assert!(
            cancel_answers.0 && cancel_answers.1,
            "CANCELLED only after both answers"
        );
        prop_assert!(r.refunded.is_some() && r.ticket_voided);
    }
    prop_assert!(r.updated_at >= before.updated_at);
    Ok(())
}

proptest! {
    /// Any sequence of inputs, however duplicated or out of order.
    #[test]
    fn invariants_hold_for_any_inputs(commands in prop::collection::vec(any_command(), 0..40)) {
        let mut r = reservation();
        let mut seats_released = 0;
        let mut ticket_seen = false;
        let mut answers = (false, false);
        for command in commands {
            let before = r.clone();
            let result = run(&mut r, command.clone());
            match &result {
                // Only the user's cancel is ever refused, and a refusal changes nothing.
                Err(_) => {
                    prop_assert_eq!(&command, &Command::Cancel);
                    prop_assert_eq!(&r, &before);
                }
                Ok(events) => {
                    seats_released += events.iter().filter(|e| e.change.releases_seat()).count();
                }
            }
            let changed = result.as_ref().is_ok_and(|e| !e.is_empty());
            match command {
                Command::TicketIssued { .. } if changed => ticket_seen = true,
                Command::PaymentRefunded { .. } if changed => answers.0 = true,
                Command::TicketVoided { .. } if changed => answers.1 = true,
                _ => {}
            }
            check_invariants(&r, &before, seats_released, ticket_seen, answers)?;
            // A duplicate delivery of the same input is a no-op.
            if changed && command != Command::Cancel {
                let again = r.clone();
                prop_assert_eq!(run(&mut r, command), Ok(vec![]));
                prop_assert_eq!(&r, &again);
            }
        }
    }
}

/// A message in flight to one of the simulated services.
#[derive(Debug, Clone)]
enum ToService {
    Requested,
    CancelRequested,
    /// Payment's success, as ticket receives it.
    Paid,
}

/// Payment as reservation sees it from outside: one wallet, debited at most once, refunding a
/// cancel exactly once.
#[derive(Debug, Default)]
struct Payment {
    balance: i64,
    debited: u32,
    refunded: u32,
    failed: bool,
}

impl Payment {
    /// Handles a reservation event; returns its answers to reservation and to ticket.
    fn handle(&mut self, message: &ToService) -> (Option<Command>, Option<ToService>) {
        match message {
            ToService::Requested if self.balance >= PRICE => {
                self.balance -= PRICE;
                self.debited += 1;
                (Some(Command::PaymentSucceeded), Some(ToService::Paid))
            }
            ToService::Requested => {
                self.failed = true;
                (Some(Command::PaymentFailed), None)
            }
            ToService::CancelRequested => {
                self.refunded += 1;
                let amount = if self.debited > 0 { PRICE } else { 0 };
                self.balance += amount;
                (Some(refunded(amount)), None)
            }
            ToService::Paid => (None, None),
        }
    }
}

/// Ticket as reservation sees it: issues on payment unless the cancel came first; answers every
/// cancel with a void.
#[derive(Debug, Default)]
struct Ticket {
    issued: Option<String>,
    closed: bool,
}

impl Ticket {
    fn handle(&mut self, message: &ToService) -> Option<Command> {
        match message {
            ToService::Paid if !self.closed && self.issued.is_none() => {
                self.issued = Some("t-1".to_owned());
                Some(issued())
            }
            ToService::CancelRequested => {
                self.closed = true;
                Some(Command::TicketVoided {
                    ticket_id: self.issued.clone(),
                })
            }
            _ => None,
        }
    }
}

/// One scheduler decision of the simulation.
#[derive(Debug, Clone)]
enum Step {
    /// Payment handles its next message (its input is ordered: reservation's own stream).
    Payment,
    /// Ticket handles the next message from reservation (`true`) or from payment (`false`).
    Ticket(bool),
    /// The user asks to cancel.
    Cancel,
    /// The pending timer fires.
    Timer,
    /// An in-flight answer reaches reservation (picked by index); `keep` leaves a copy in flight
    /// to be delivered again later.
    Deliver { pick: usize, keep: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Payment),
        2 => any::<bool>().prop_map(Step::Ticket),
        1 => Just(Step::Cancel),
        1 => Just(Step::Timer),
        4 => (any::<usize>(), prop::bool::weighted(0.2))
            .prop_map(|(pick, keep)| Step::Deliver { pick, keep }),
    ]
}

/// The whole saga around one reservation.
struct Saga {
    r: Reservation,
    payment: Payment,
    ticket: Ticket,
    to_payment: std::collections::VecDeque<ToService>,
    ticket_from_reservation: std::collections::VecDeque<ToService>,
    ticket_from_payment: std::collections::VecDeque<ToService>,
    to_reservation: Vec<Command>,
    seats_released: usize,
    ticket_seen: bool,
    answers: (bool, bool),
    cancels_published: u32,
}

impl Saga {
    fn new(balance: i64) -> Self {
        Self {
            r: reservation(),
            payment: Payment {
                balance,
                ..Payment::default()
            },
            ticket: Ticket::default(),
            to_payment: [ToService::Requested].into(),
            ticket_from_reservation: Default::default(),
            ticket_from_payment: Default::default(),
            to_reservation: Vec::new(),
            seats_released: 0,
            ticket_seen: false,
            answers: (false, false),
            cancels_published: 0,
        }
    }

    /// Runs a command on the reservation, sending what it publishes and checking the invariants.
    fn run(&mut self, command: Command) -> Result<(), TestCaseError> {
        let before = self.r.clone();
        let is_cancel = command == Command::Cancel;
        // What has reached the reservation so far, whatever it made of it.
        match command {
            Command::TicketIssued { .. } => self.ticket_seen = true,
            Command::PaymentRefunded { .. } => self.answers.0 = true,
            Command::TicketVoided { .. } => self.answers.1 = true,
            _ => {}
        }
        let Ok(events) = run(&mut self.r, command) else {
            prop_assert!(is_cancel, "only the user's cancel is refused");
            prop_assert_eq!(&self.r, &before);
            return Ok(());
        };
        for e in &events {
            self.seats_released += usize::from(e.change.releases_seat());
            if e.change == Change::CancelRequested {
                self.cancels_published += 1;
                self.to_payment.push_back(ToService::CancelRequested);
                self.ticket_from_reservation
                    .push_back(ToService::CancelRequested);
            }
        }
        check_invariants(
            &self.r,
            &before,
            self.seats_released,
            self.ticket_seen,
            self.answers,
        )?;
        prop_assert!(self.cancels_published <= 1, "a cancel is announced once");
        Ok(())
    }

    fn payment_step(&mut self) {
        if let Some(message) = self.to_payment.pop_front() {
            let (answer, to_ticket) = self.payment.handle(&message);
            self.to_reservation.extend(answer);
            self.ticket_from_payment.extend(to_ticket);
        }
    }

    fn ticket_step(&mut self, from_reservation: bool) {
        let queue = if from_reservation {
            &mut self.ticket_from_reservation
        } else {
            &mut self.ticket_from_payment
        };
        if let Some(message) = queue.pop_front() {
            self.to_reservation.extend(self.ticket.handle(&message));
        }
    }

    /// The money invariants of DESIGN §5 that rest on reservation: it asks payment once and
    /// announces a cancel at most once.
    fn check_money(&self) -> Result<(), TestCaseError> {
        let p = &self.payment;
        prop_assert!(p.debited <= 1, "never debited twice");
        prop_assert!(p.refunded <= 1, "never refunded twice");
        prop_assert!(p.balance >= 0, "balances never negative");
        Ok(())
    }
}

proptest! {
    /// Reservation with simulated payment and ticket services exchanging events with duplicated,
    /// reordered delivery, the pending timer and a user cancelling at random moments: once
    /// everything is delivered, the reservation agrees with what payment and ticket did.
    #[test]
    fn reservation_converges_on_what_payment_and_ticket_did(
        balance in prop_oneof![Just(0i64), Just(PRICE), Just(PRICE * 3)],
        steps in prop::collection::vec(step(), 0..60),
    ) {
        let mut saga = Saga::new(balance);
        for s in steps {
            match s {
                Step::Payment => saga.payment_step(),
                Step::Ticket(from_reservation) => saga.ticket_step(from_reservation),
                Step::Cancel => saga.run(Command::Cancel)?,
                Step::Timer => saga.run(Command::PaymentOverdue)?,
                Step::Deliver { pick, keep } if !saga.to_reservation.is_empty() => {
                    let i = pick % saga.to_reservation.len();
                    let answer = if keep {
                        saga.to_reservation[i].clone()
                    } else {
                        saga.to_reservation.swap_remove(i)
                    };
                    saga.run(answer)?;
                }
                Step::Deliver { .. } => {}
            }
            saga.check_money()?;
        }
        // Quiesce: every service handles everything sent to it; every answer is delivered.
        loop {
            if !saga.to_payment.is_empty() {
                saga.payment_step();
            } else if !saga.ticket_from_payment.is_empty() {
                saga.ticket_step(false);
            } else if !saga.ticket_from_reservation.is_empty() {
                saga.ticket_step(true);
            } else if let Some(answer) = saga.to_reservation.pop() {
                saga.run(answer)?;
            } else {
                break;
            }
            saga.check_money()?;
        }
        let expected = if saga.cancels_published == 1 {
            Status::Cancelled
        } else if saga.payment.failed {
            Status::PaymentFailed
        } else {
            Status::Confirmed
        };
        prop_assert_eq!(saga.r.status, expected);
        prop_assert_eq!(saga.payment.failed, balance < PRICE);
        match expected {
            Status::Confirmed => prop_assert_eq!(saga.r.ticket_id.as_deref(), Some("t-1")),
            Status::Cancelled => {
                // Whatever was debited came back, exactly once.
                prop_assert_eq!(saga.payment.balance, balance);
                prop_assert_eq!(saga.r.refunded, Some(PRICE * i64::from(saga.payment.debited)));
                prop_assert_eq!(saga.r.ticket_id.clone(), saga.ticket.issued.clone());
            }
            _ => prop_assert_eq!(saga.payment.balance, balance),
        }
    }
}
