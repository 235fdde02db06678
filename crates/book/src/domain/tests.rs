//! The booking state machine: every transition and rejection, the cancel-versus-boarding races,
//! the answer deadline and its race with a late taxi, the card replaced, and randomized runs
//! (arbitrary inputs, and a simulated dispatch with duplicated, reordered deliveries) checking
//! the invariants.

use proptest::prelude::*;

use super::*;

fn book() -> Book {
    let place = |name: &str, lat: f64, lng: f64| Place {
        name: PlaceName::parse(name).unwrap(),
        location: LatLng::parse(lat, lng).unwrap(),
    };
    let new = NewBook {
        customer_id: ClientId::parse("c-1").unwrap(),
        customer_name: CustomerName::parse("유병전").unwrap(),
        phone: Phone::parse("+82 10-1234-5678").unwrap(),
        card: Token {
            token: "tok_4242_ok_0123456789abcdef".to_owned(),
            last4: "4242".to_owned(),
        },
        pickup: place("분당 KT 본사", 37.3591, 127.1052),
        dropoff: place("강남역", 37.4979, 127.0276),
    };
    Book::request("b-1".to_owned(), new, 1_000, 61_000)
}

fn new_card() -> Token {
    Token {
        token: "tok_5555_ok_fedcba9876543210".to_owned(),
        last4: "5555".to_owned(),
    }
}

fn taxi() -> Taxi {
    Taxi {
        driver_id: "d-1".to_owned(),
        driver_name: "Kim".to_owned(),
        car_number: "12가3456".to_owned(),
        phone: "010-0000-0000".to_owned(),
        eta_seconds: 240,
    }
}

fn dispatched() -> Command {
    Command::TaxiDispatched {
        dispatch_id: "x-1".to_owned(),
        taxi: taxi(),
    }
}

fn started() -> Command {
    Command::TripStarted {
        dispatch_id: "x-1".to_owned(),
    }
}

fn ended() -> Command {
    Command::TripEnded {
        dispatch_id: "x-1".to_owned(),
        fare: 12_300,
        pay_id: "p-1".to_owned(),
    }
}

/// Runs `command` like the store does: decide, then apply what was decided.
fn run(book: &mut Book, command: Command) -> Result<Vec<BookEvent>, Rejection> {
    let events = decide(book, command, book.updated_at + 1)?;
    for e in &events {
        apply(book, e);
    }
    Ok(events)
}

/// A book after `commands`, each of which must be accepted.
fn after(commands: impl IntoIterator<Item = Command>) -> Book {
    let mut b = book();
    for c in commands {
        run(&mut b, c).unwrap();
    }
    b
}

fn pending(from: Stage) -> Status {
    Status::CancelRequested { from }
}

#[test]
fn a_new_booking_is_requested() {
    let b = book();
    assert_eq!(b.status, Status::Requested);
    assert_eq!(b.status.as_str(), "REQUESTED");
    assert_eq!((b.created_at, b.updated_at), (1_000, 1_000));
    assert_eq!(b.answer_by, Some(61_000));
    assert!(b.taxi.is_none() && b.fare.is_none() && b.dispatch_id.is_none());
}

#[test]
fn happy_path_requested_dispatched_in_trip_completed() {
    let mut b = book();
    let events = run(&mut b, dispatched()).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(b.status, Status::Dispatched);
    assert_eq!(b.dispatch_id.as_deref(), Some("x-1"));
    assert_eq!(b.taxi, Some(taxi()));
    assert_eq!(b.updated_at, 1_001);

    run(&mut b, started()).unwrap();
    assert_eq!(b.status, Status::InTrip);

    run(&mut b, ended()).unwrap();
    assert_eq!(b.status, Status::Completed);
    assert_eq!(b.fare, Some(12_300));
    assert_eq!(b.pay_id.as_deref(), Some("p-1"));
}

#[test]
fn dispatch_failure_cancels_a_waiting_booking() {
    let mut b = book();
    run(&mut b, Command::DispatchFailed).unwrap();
    assert_eq!(b.status, Status::CancelledBySystem);

    let mut b = after([Command::Cancel]);
    run(&mut b, Command::DispatchFailed).unwrap();
    assert_eq!(b.status, Status::CancelledBySystem);
}

#[test]
fn dispatch_failure_never_cancels_a_dispatched_or_boarded_ride() {
    for mut b in [
        after([dispatched()]),
        after([dispatched(), started()]),
        after([dispatched(), Command::Cancel, started()]),
    ] {
        let before = b.clone();
        assert_eq!(run(&mut b, Command::DispatchFailed), Ok(vec![]));
        assert_eq!(b, before);
    }
}

#[test]
fn the_answer_deadline_cancels_a_booking_still_waiting_for_a_taxi() {
    for mut b in [book(), after([Command::Cancel])] {
        assert!(b.status.waiting());
        let events = run(&mut b, Command::Expire).unwrap();
        assert_eq!(events[0].change, Change::CancelledBySystem);
        assert_eq!(b.status, Status::CancelledBySystem);
        assert!(!b.status.waiting());
    }
}

#[test]
fn the_answer_deadline_leaves_a_dispatched_or_finished_booking_alone() {
    for mut b in [
        after([dispatched()]),
        after([dispatched(), Command::Cancel]),
        after([started()]),
        after([dispatched(), started(), ended()]),
        after([Command::Cancel, Command::DispatchCancelled]),
        after([Command::DispatchFailed]),
    ] {
        assert!(!b.status.waiting(), "{:?}", b.status);
        let before = b.clone();
        assert_eq!(run(&mut b, Command::Expire), Ok(vec![]));
        assert_eq!(b, before);
    }
}

/// A taxi that accepted too late is dispatch's to call back: until the customer boards it, the
/// system's answer stands (`a_trip_started_after_the_system_cancel_is_what_happened`).
#[test]
fn a_taxi_landing_after_the_system_cancel_changes_nothing() {
    let mut b = after([Command::Expire]);
    for late in [dispatched(), Command::DispatchCancelled] {
        assert_eq!(run(&mut b, late), Ok(vec![]));
        assert_eq!(b.status, Status::CancelledBySystem);
    }
    assert_eq!(b.taxi, None, "the late taxi is not the customer's");
}

#[test]
fn the_card_is_replaced_until_the_booking_is_completed_or_cancelled() {
    for mut b in [
        book(),
        after([dispatched()]),
        after([dispatched(), started()]),
        after([dispatched(), Command::Cancel]),
    ] {
        let status = b.status;
        let events = run(&mut b, Command::ReplaceCard(new_card())).unwrap();
        assert_eq!(events[0].change, Change::CardReplaced(new_card()));
        assert_eq!(b.card, new_card());
        assert_eq!(b.status, status, "the ride goes on as it was");
    }
    for (b, rejection) in [
        (after([ended()]), Rejection::Completed),
        (after([Command::Expire]), Rejection::AlreadyCancelled),
        (
            after([Command::Cancel, Command::DispatchCancelled]),
            Rejection::AlreadyCancelled,
        ),
    ] {
        assert_eq!(
            decide(&b, Command::ReplaceCard(new_card()), 9),
            Err(rejection)
        );
    }
}

#[test]
fn cancel_before_boarding_is_requested_and_remembers_where_it_came_from() {
    let mut b = book();
    let events = run(&mut b, Command::Cancel).unwrap();
    assert_eq!(events[0].change, Change::CancelRequested);
    assert_eq!(b.status, pending(Stage::Requested));
    assert_eq!(b.status.as_str(), "CANCEL_REQUESTED");

    let b = after([dispatched(), Command::Cancel]);
    assert_eq!(b.status, pending(Stage::Dispatched));
}

#[test]
fn cancel_rejections() {
    let cases = [
        (
            after([dispatched(), started()]),
            Rejection::TripStarted,
            "trip_started",
        ),
        (
            after([Command::Cancel]),
            Rejection::CancelPending,
            "cancel_pending",
        ),
        (
            after([dispatched(), started(), ended()]),
            Rejection::Completed,
            "already_completed",
        ),
        (
            after([Command::Cancel, Command::DispatchCancelled]),
            Rejection::AlreadyCancelled,
            "already_cancelled",
        ),
        (
            after([Command::DispatchFailed]),
            Rejection::AlreadyCancelled,
            "already_cancelled",
        ),
    ];
    for (b, rejection, code) in cases {
        assert_eq!(
            decide(&b, Command::Cancel, 9),
            Err(rejection),
            "{:?}",
            b.status
        );
        assert_eq!(rejection.code(), code);
    }
}

#[test]
fn dispatch_cancelled_confirms_the_pending_cancel() {
    for mut b in [
        after([Command::Cancel]),
        after([dispatched(), Command::Cancel]),
    ] {
        run(&mut b, Command::DispatchCancelled).unwrap();
        assert_eq!(b.status, Status::CancelledByCustomer);
    }
}

#[test]
fn cancel_rejected_returns_to_the_remembered_status() {
    let mut b = after([dispatched(), Command::Cancel]);
    run(&mut b, Command::CancelRejected).unwrap();
    assert_eq!(b.status, Status::Dispatched);

    let mut b = after([Command::Cancel]);
    run(&mut b, Command::CancelRejected).unwrap();
    assert_eq!(b.status, Status::Requested);
}

#[test]
fn dispatch_progress_during_a_pending_cancel_is_remembered_not_shown() {
    let mut b = after([Command::Cancel]);
    run(&mut b, dispatched()).unwrap();
    assert_eq!(b.status, pending(Stage::Dispatched));
    assert_eq!(b.taxi, Some(taxi()));
    run(&mut b, started()).unwrap();
    assert_eq!(b.status, pending(Stage::InTrip));
}

#[test]
fn boarding_before_cancel_rejected_ends_in_trip() {
    let mut b = after([dispatched(), Command::Cancel]);
    run(&mut b, started()).unwrap();
    run(&mut b, Command::CancelRejected).unwrap();
    assert_eq!(b.status, Status::InTrip);
}

#[test]
fn boarding_after_cancel_rejected_ends_in_trip() {
    let mut b = after([dispatched(), Command::Cancel]);
    run(&mut b, Command::CancelRejected).unwrap();
    run(&mut b, started()).unwrap();
    assert_eq!(b.status, Status::InTrip);
}

#[test]
fn cancel_winning_the_race_ends_cancelled_by_customer() {
    let mut b = after([dispatched(), Command::Cancel]);
    run(&mut b, Command::DispatchCancelled).unwrap();
    assert_eq!(b.status, Status::CancelledByCustomer);
    // Boarding can no longer be reported for a cancelled dispatch; if it were, it changes nothing.
    assert_eq!(run(&mut b, started()), Ok(vec![]));
    assert_eq!(b.status, Status::CancelledByCustomer);
}

#[test]
fn trip_ended_completes_even_with_a_cancel_pending() {
    let mut b = after([dispatched(), Command::Cancel, started()]);
    run(&mut b, ended()).unwrap();
    assert_eq!(b.status, Status::Completed);
}

#[test]
fn reordered_deliveries_still_reach_the_ride_state() {
    // Boarding delivered before the taxi: in trip, and the taxi is still recorded.
    let mut b = after([started()]);
    assert_eq!(b.status, Status::InTrip);
    assert_eq!(b.dispatch_id.as_deref(), Some("x-1"));
    run(&mut b, dispatched()).unwrap();
    assert_eq!((b.status, b.taxi.clone()), (Status::InTrip, Some(taxi())));

    // The end delivered before everything else.
    let mut b = after([ended()]);
    assert_eq!(b.status, Status::Completed);
    assert_eq!(run(&mut b, dispatched()), Ok(vec![]));
    assert_eq!(run(&mut b, started()), Ok(vec![]));
    assert_eq!(b.status, Status::Completed);
}

#[test]
fn answers_that_do_not_apply_are_ignored() {
    let cases = [
        (book(), Command::DispatchCancelled),
        (book(), Command::CancelRejected),
        (after([dispatched()]), dispatched()),
        (after([dispatched(), started()]), started()),
        (after([dispatched(), started()]), dispatched()),
        (after([dispatched()]), Command::CancelRejected),
    ];
    for (mut b, command) in cases {
        let before = b.clone();
        assert_eq!(run(&mut b, command.clone()), Ok(vec![]), "{command:?}");
        assert_eq!(b, before);
    }
}

#[test]
fn terminal_states_ignore_every_dispatch_answer() {
    let terminals = [
        after([ended()]),
        after([Command::DispatchFailed]),
        after([Command::Cancel, Command::DispatchCancelled]),
    ];
    for t in terminals {
        for command in [
            dispatched(),
            started(),
            ended(),
            Command::DispatchFailed,
            Command::DispatchCancelled,
            Command::CancelRejected,
        ] {
            if t.status == Status::CancelledBySystem && follows_a_boarding(&command) {
                continue;
            }
            let mut b = t.clone();
            assert_eq!(run(&mut b, command), Ok(vec![]));
            assert_eq!(b, t);
        }
    }
}

/// Whether `command` tells of a customer aboard: the one thing a system cancel gives way to.
fn follows_a_boarding(command: &Command) -> bool {
    matches!(
        command,
        Command::TripStarted { .. } | Command::TripEnded { .. }
    )
}

/// Book answered "no taxi" at its deadline, but a taxi had accepted just before and the customer
/// boarded it before dispatch heard of the answer: the booking follows the ride to its end.
#[test]
fn a_trip_started_after_the_system_cancel_is_what_happened() {
    let mut b = after([Command::Expire]);
    assert_eq!(b.status, Status::CancelledBySystem);
    run(&mut b, started()).unwrap();
    assert_eq!(b.status, Status::InTrip);
    run(&mut b, ended()).unwrap();
    assert_eq!(b.status, Status::Completed);

    let mut paid = after([Command::Expire]);
    run(&mut paid, ended()).unwrap();
    assert_eq!(
        paid.status,
        Status::Completed,
        "the fare paid tells of the ride too"
    );
}

#[test]
fn stored_statuses_round_trip() {
    let all = [
        Status::Requested,
        Status::Dispatched,
        Status::InTrip,
        pending(Stage::Requested),
        pending(Stage::Dispatched),
        pending(Stage::InTrip),
        Status::Completed,
        Status::CancelledByCustomer,
        Status::CancelledBySystem,
    ];
    for s in all {
        let from = match s {
            Status::CancelRequested { from } => Some(from.as_str()),
            _ => None,
        };
        assert_eq!(Status::from_parts(s.as_str(), from), Some(s));
    }
    assert_eq!(Status::from_parts("CANCEL_REQUESTED", None), None);
    assert_eq!(
        Status::from_parts("CANCEL_REQUESTED", Some("COMPLETED")),
        None
    );
    assert_eq!(Status::from_parts("PENDING", None), None);
}

#[test]
fn request_fields_are_parsed() {
    assert!(CustomerName::parse("Kim").is_ok());
    assert!(CustomerName::parse(&"가".repeat(100)).is_ok());
    assert_eq!(
        CustomerName::parse(""),
        Err(InvalidField::Text { max: 100 })
    );
    assert_eq!(
        CustomerName::parse("   "),
        Err(InvalidField::Text { max: 100 })
    );
    assert_eq!(
        CustomerName::parse(&"가".repeat(101)),
        Err(InvalidField::Text { max: 100 })
    );

    assert!(PlaceName::parse(&"a".repeat(200)).is_ok());
    assert_eq!(
        PlaceName::parse(&"a".repeat(201)),
        Err(InvalidField::Text { max: 200 })
    );
}

// ---- randomized ---------------------------------------------------------------------------

const API_STATUSES: [&str; 7] = [
    "REQUESTED",
    "DISPATCHED",
    "IN_TRIP",
    "CANCEL_REQUESTED",
    "COMPLETED",
    "CANCELLED_BY_CUSTOMER",
    "CANCELLED_BY_SYSTEM",
];

fn any_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::Cancel),
        Just(Command::ReplaceCard(new_card())),
        Just(Command::Expire),
        Just(dispatched()),
        Just(started()),
        Just(ended()),
        Just(Command::DispatchFailed),
        Just(Command::DispatchCancelled),
        Just(Command::CancelRejected),
    ]
}

proptest! {
    /// Any sequence of inputs, however duplicated or out of order.
    #[test]
    fn invariants_hold_for_any_inputs(commands in prop::collection::vec(any_command(), 0..40)) {
        let mut b = book();
        let mut trip_ended = false;
        let mut dispatch_failed = false;
        let mut expired = false;
        let mut card = book().card;
        // The latest accepted cancel, until dispatch refuses it.
        let mut cancel_pending = false;
        for command in commands {
            let before = b.clone();
            let result = run(&mut b, command.clone());
            prop_assert!(API_STATUSES.contains(&b.status.as_str()));
            if before.status.stage().is_none() && !follows_a_boarding(&command) {
                prop_assert_eq!(&b, &before, "terminal states stay terminal");
            }
            // Only the customer's commands are ever refused, and a refusal changes nothing.
            let customers = matches!(command, Command::Cancel | Command::ReplaceCard(_));
            match &result {
                Err(_) => {
                    prop_assert!(customers, "{:?} refused", command);
                    prop_assert_eq!(&b, &before);
                }
                Ok(events) => prop_assert!(events.len() <= 1),
            }
            let changed = result.as_ref().is_ok_and(|e| !e.is_empty());
            match &command {
                Command::TripEnded { .. } if changed => trip_ended = true,
                Command::DispatchFailed if changed => dispatch_failed = true,
                Command::Expire if changed => {
                    prop_assert!(before.status.waiting(), "only a waiting booking expires");
                    expired = true;
                }
                Command::Cancel if changed => cancel_pending = true,
                Command::CancelRejected if changed => cancel_pending = false,
                Command::ReplaceCard(new) if changed => card = new.clone(),
                _ => {}
            }
            prop_assert_eq!(&b.card, &card, "the card is the latest one accepted");
            // A duplicate delivery of the same input is a no-op.
            if changed && !customers {
                let again = b.clone();
                prop_assert_eq!(run(&mut b, command), Ok(vec![]));
                prop_assert_eq!(&b, &again);
            }
            if b.status == Status::Completed {
                prop_assert!(trip_ended, "COMPLETED only after a TripEnded");
                prop_assert!(b.fare.is_some() && b.pay_id.is_some());
            }
            if b.status == Status::CancelledBySystem {
                prop_assert!(dispatch_failed || expired);
            }
            if b.status == Status::CancelledByCustomer {
                prop_assert!(cancel_pending, "a rejected cancel never ends cancelled");
            }
            prop_assert!(b.updated_at >= before.updated_at);
        }
    }
}

/// Dispatch as book sees it from outside: the truth of one ride, emitting the events book reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ride {
    Searching,
    Dispatched,
    InTrip,
    Ended,
    Cancelled,
    Failed,
}

/// How the ride goes if nobody cancels it.
#[derive(Debug, Clone, Copy)]
enum Script {
    /// No driver accepts.
    Fail,
    /// A driver accepts and the ride gets as far as `Ride::Dispatched`, `InTrip` or `Ended`.
    Run(Ride),
}

struct Dispatch {
    ride: Ride,
    script: Script,
    rejected_a_cancel: bool,
}

impl Dispatch {
    /// Takes the next step of the script, if any, returning the event it publishes.
    fn step(&mut self) -> Option<Command> {
        let (next, event) = match (self.ride, self.script) {
            (Ride::Searching, Script::Fail) => (Ride::Failed, Command::DispatchFailed),
            (Ride::Searching, Script::Run(_)) => (Ride::Dispatched, dispatched()),
            (Ride::Dispatched, Script::Run(Ride::InTrip | Ride::Ended)) => {
                (Ride::InTrip, started())
            }
            (Ride::InTrip, Script::Run(Ride::Ended)) => (Ride::Ended, ended()),
            _ => return None,
        };
        self.ride = next;
        Some(event)
    }

    /// Answers a `BookCancelRequested`: cancel before boarding, refuse after.
    fn cancel(&mut self) -> Option<Command> {
        match self.ride {
            Ride::Searching | Ride::Dispatched => {
                self.ride = Ride::Cancelled;
                Some(Command::DispatchCancelled)
            }
            Ride::InTrip | Ride::Ended => {
                self.rejected_a_cancel = true;
                Some(Command::CancelRejected)
            }
            Ride::Cancelled | Ride::Failed => None,
        }
    }

    /// Answers a `BookExpired`: whatever is still open is cancelled as expired (book hears it as
    /// the system's cancel); a trip under way is left to finish.
    fn expire(&mut self) -> Option<Command> {
        match self.ride {
            Ride::Searching | Ride::Dispatched => {
                self.ride = Ride::Cancelled;
                Some(Command::DispatchFailed)
            }
            Ride::InTrip | Ride::Ended | Ride::Cancelled | Ride::Failed => None,
        }
    }
}

/// What book sends dispatch, in order.
#[derive(Debug, Clone, Copy)]
enum ToDispatch {
    Cancel,
    Expired,
}

/// One scheduler decision of the simulation.
#[derive(Debug, Clone)]
enum Step {
    /// Dispatch moves on along its script.
    Progress,
    /// The customer asks to cancel.
    Cancel,
    /// Book's answer timer fires.
    Expire,
    /// An in-flight event reaches book (picked by index); `keep` leaves a copy in flight to be
    /// delivered again later.
    DeliverToBook { pick: usize, keep: bool },
    /// The next of book's in-flight events reaches dispatch.
    DeliverToDispatch,
}

/// Delivers one of dispatch's events to book, checking what book may never show.
fn deliver(b: &mut Book, command: Command, dispatch: &Dispatch) -> Result<(), TestCaseError> {
    let before = b.clone();
    let ended = matches!(command, Command::TripEnded { .. });
    let boarding = follows_a_boarding(&command);
    run(b, command).map_err(|r| TestCaseError::fail(format!("dispatch answer refused: {r}")))?;
    if before.status.stage().is_none() && !(boarding && before.status == Status::CancelledBySystem)
    {
        prop_assert_eq!(&*b, &before, "terminal states stay terminal");
    }
    if b.status == Status::Completed && before.status != Status::Completed {
        prop_assert!(ended, "COMPLETED only after a TripEnded");
    }
    if b.status == Status::CancelledByCustomer {
        prop_assert_eq!(dispatch.ride, Ride::Cancelled);
        prop_assert!(
            !dispatch.rejected_a_cancel,
            "a rejected cancel never ends cancelled"
        );
    }
    Ok(())
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Progress),
        1 => Just(Step::Cancel),
        1 => Just(Step::Expire),
        4 => (any::<usize>(), prop::bool::weighted(0.2)).prop_map(|(pick, keep)| Step::DeliverToBook { pick, keep }),
        2 => Just(Step::DeliverToDispatch),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    prop_oneof![
        Just(Script::Fail),
        Just(Script::Run(Ride::Dispatched)),
        Just(Script::Run(Ride::InTrip)),
        Just(Script::Run(Ride::Ended)),
    ]
}

proptest! {
    /// Book and a simulated dispatch exchanging events with duplicated, reordered delivery and a
    /// customer cancelling at random moments: once everything is delivered, book agrees with the
    /// ride's truth, and never shows an outcome the ride did not have.
    #[test]
    fn book_converges_on_what_dispatch_did(script in script(), steps in prop::collection::vec(step(), 0..60)) {
        let mut b = book();
        let mut dispatch = Dispatch { ride: Ride::Searching, script, rejected_a_cancel: false };
        let mut to_book: Vec<Command> = Vec::new();
        let mut to_dispatch = std::collections::VecDeque::new();
        let mut expired = false;
        let answer = |dispatch: &mut Dispatch, event: ToDispatch| match event {
            ToDispatch::Cancel => dispatch.cancel(),
            ToDispatch::Expired => dispatch.expire(),
        };
        for s in steps {
            match s {
                Step::Progress => to_book.extend(dispatch.step()),
                Step::Cancel if run(&mut b, Command::Cancel).is_ok() => {
                    to_dispatch.push_back(ToDispatch::Cancel);
                }
                Step::Expire if run(&mut b, Command::Expire).is_ok_and(|e| !e.is_empty()) => {
                    expired = true;
                    to_dispatch.push_back(ToDispatch::Expired);
                }
                Step::DeliverToBook { pick, keep } if !to_book.is_empty() => {
                    let i = pick % to_book.len();
                    let event = if keep { to_book[i].clone() } else { to_book.swap_remove(i) };
                    deliver(&mut b, event, &dispatch)?;
                }
                Step::DeliverToDispatch => {
                    if let Some(event) = to_dispatch.pop_front() {
                        to_book.extend(answer(&mut dispatch, event));
                    }
                }
                _ => {}
            }
        }
        // Quiesce: dispatch answers everything book sent and finishes its script; everything in
        // flight is delivered.
        loop {
            if let Some(event) = to_dispatch.pop_front() {
                to_book.extend(answer(&mut dispatch, event));
            } else if let Some(event) = dispatch.step() {
                to_book.push(event);
            } else if let Some(event) = to_book.pop() {
                deliver(&mut b, event, &dispatch)?;
            } else {
                break;
            }
        }
        if expired {
            // Book's answer stands, and dispatch offers no taxi after it: one outcome. A trip its
            // driver started before dispatch heard of the expiry is left to finish, and the
            // booking follows it.
            let expected = match dispatch.ride {
                Ride::InTrip => Status::InTrip,
                Ride::Ended => Status::Completed,
                _ => Status::CancelledBySystem,
            };
            prop_assert_eq!(b.status, expected);
            prop_assert!(dispatch.ride != Ride::Dispatched, "a taxi still on its way");
            return Ok(());
        }
        let expected = match dispatch.ride {
            Ride::Searching => unreachable!("quiesced dispatch always decides"),
            Ride::Dispatched => Status::Dispatched,
            Ride::InTrip => Status::InTrip,
            Ride::Ended => Status::Completed,
            Ride::Cancelled => Status::CancelledByCustomer,
            Ride::Failed => Status::CancelledBySystem,
        };
        prop_assert_eq!(b.status, expected);
        if expected == Status::Completed {
            prop_assert_eq!(b.fare, Some(12_300));
        }
        if matches!(expected, Status::Dispatched | Status::InTrip) {
            prop_assert_eq!(b.taxi, Some(taxi()));
        }
    }
}
