//! Ticket's view of a reservation: issuing once both the request and the payment arrived, in
//! either order; voiding or closing on cancel; duplicates; and randomized interleavings checking
//! the ticket invariants.

use proptest::prelude::*;

use super::*;

fn id(s: &str) -> ClientId {
    ClientId::parse(s).unwrap()
}

fn reservation() -> Reservation {
    Reservation::unknown("r-1".to_owned(), id("ew"))
}

fn requested() -> Command {
    Command::Requested {
        flight_id: id("KE-123"),
    }
}

/// Runs `command` like the store does (decide, then apply), naming a would-be ticket `t-{n}`.
fn run(r: &mut Reservation, command: Command, n: u32) -> Vec<Change> {
    let events = decide(r, command, i64::from(n), format!("t-{n}"));
    for e in &events {
        apply(r, e);
    }
    events.into_iter().map(|e| e.change).collect()
}

fn issued(n: u32) -> Change {
    Change::Issued {
        ticket_id: format!("t-{n}"),
        flight_id: id("KE-123"),
    }
}

#[test]
fn request_then_payment_issues_one_ticket() {
    let mut r = reservation();
    assert_eq!(
        run(&mut r, requested(), 1),
        [Change::FlightKnown {
            flight_id: id("KE-123")
        }]
    );
    assert_eq!(r.ticket, None);
    assert_eq!(run(&mut r, Command::Paid, 2), [Change::Paid, issued(2)]);
    let t = r.ticket.clone().unwrap();
    assert_eq!(
        (t.ticket_id.as_str(), t.reservation_id.as_str(), t.status()),
        ("t-2", "r-1", Status::Issued)
    );
    assert_eq!(
        (t.user_id, t.flight_id, t.issued_at),
        (id("ew"), id("KE-123"), 2)
    );
    assert_eq!(r.paid_at, Some(2));
}

#[test]
fn payment_before_the_request_issues_once_the_request_arrives() {
    let mut r = reservation();
    assert_eq!(run(&mut r, Command::Paid, 1), [Change::Paid]);
    assert_eq!(r.ticket, None, "the flight is not known yet");
    assert_eq!(
        run(&mut r, requested(), 2),
        [
            Change::FlightKnown {
                flight_id: id("KE-123")
            },
            issued(2)
        ]
    );
    assert_eq!(r.ticket.as_ref().unwrap().flight_id, id("KE-123"));
}

#[test]
fn duplicates_change_nothing() {
    let mut r = reservation();
    run(&mut r, requested(), 1);
    run(&mut r, Command::Paid, 2);
    let done = r.clone();
    assert!(run(&mut r, Command::Paid, 3).is_empty());
    assert!(run(&mut r, requested(), 4).is_empty());
    assert_eq!(r, done);

    let mut r = reservation();
    run(&mut r, Command::Paid, 1);
    assert!(run(&mut r, Command::Paid, 2).is_empty());
    assert_eq!(r.paid_at, Some(1));
}

#[test]
fn a_cancel_voids_the_issued_ticket_once() {
    let mut r = reservation();
    run(&mut r, requested(), 1);
    run(&mut r, Command::Paid, 2);
    assert_eq!(
        run(&mut r, Command::Cancel, 3),
        [Change::Voided {
            ticket_id: "t-2".into()
        }]
    );
    let t = r.ticket.clone().unwrap();
    assert_eq!(
        (t.status(), t.voided_at, r.closed_at),
        (Status::Void, Some(3), Some(3))
    );
    let voided = r.clone();
    assert!(run(&mut r, Command::Cancel, 4).is_empty());
    assert!(run(&mut r, Command::Paid, 5).is_empty());
    assert_eq!(r, voided);
}

#[test]
fn a_cancel_before_any_ticket_closes_the_reservation_to_tickets() {
    let mut r = reservation();
    run(&mut r, requested(), 1);
    assert_eq!(run(&mut r, Command::Cancel, 2), [Change::Closed]);
    assert_eq!(r.closed_at, Some(2));
    // Payment's success arriving after the cancel was answered issues nothing.
    assert!(run(&mut r, Command::Paid, 3).is_empty());
    assert!(run(&mut r, Command::Cancel, 4).is_empty());
    assert_eq!((r.ticket.clone(), r.paid_at), (None, None));

    // The cancel heard of before anything else.
    let mut r = reservation();
    assert_eq!(run(&mut r, Command::Cancel, 1), [Change::Closed]);
    assert!(run(&mut r, Command::Paid, 2).is_empty());
    assert!(run(&mut r, requested(), 3).is_empty());
    assert_eq!(r.ticket, None);
}

#[test]
fn statuses_are_named_as_the_api_says() {
    assert_eq!(Status::Issued.as_str(), "ISSUED");
    assert_eq!(Status::Void.as_str(), "VOID");
}

// ---- randomized ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Requested,
    Paid,
    Cancel,
}

fn command(input: Input) -> Command {
    match input {
        Input::Requested => requested(),
        Input::Paid => Command::Paid,
        Input::Cancel => Command::Cancel,
    }
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        Just(Input::Requested),
        Just(Input::Paid),
        Just(Input::Cancel)
    ]
}

proptest! {
    /// Any interleaving of the three events, each delivered any number of times (payment's
    /// success only if payment actually succeeded).
    #[test]
    fn ticket_invariants_hold_for_any_interleaving(
        paid in any::<bool>(),
        inputs in prop::collection::vec(input(), 0..16),
    ) {
        let mut r = reservation();
        let mut seen: Vec<Input> = Vec::new();
        let mut issued = 0;
        let mut answers = 0;
        let mut answered = false;
        for (n, input) in (0u32..).zip(inputs.into_iter().filter(|i| paid || *i != Input::Paid)) {
            let before = r.clone();
            seen.push(input);
            let changes = run(&mut r, command(input), n);
            for change in &changes {
                match change {
                    Change::Issued { ticket_id, .. } => {
                        issued += 1;
                        prop_assert!(seen.contains(&Input::Paid), "a ticket only for a paid reservation");
                        prop_assert!(!answered, "no ticket after the cancel was answered");
                        prop_assert_eq!(ticket_id, &format!("t-{n}"));
                    }
                    Change::Voided { ticket_id } => {
                        prop_assert_eq!(Some(ticket_id), before.ticket.as_ref().map(|t| &t.ticket_id));
                        answers += 1;
                    }
                    Change::Closed => {
                        prop_assert!(before.ticket.is_none());
                        answers += 1;
                    }
                    Change::FlightKnown { .. } | Change::Paid => {}
                }
            }
            answered = answers > 0;
            prop_assert!(issued <= 1, "at most one ticket per reservation");
            prop_assert_eq!(answers, usize::from(seen.contains(&Input::Cancel)), "every cancel answered exactly once");
            if before.closed_at.is_some() {
                prop_assert_eq!(&r, &before, "nothing changes once the cancel was answered");
            }
            // A live ticket exactly when paid and requested and not cancelled.
            let live = r.ticket.as_ref().is_some_and(|t| t.status() == Status::Issued);
            let expected = seen.contains(&Input::Paid) && seen.contains(&Input::Requested) && !seen.contains(&Input::Cancel);
            prop_assert_eq!(live, expected, "after {:?}", seen);
            if let Some(t) = &r.ticket {
                prop_assert_eq!(t.status() == Status::Void, r.closed_at.is_some());
            }
        }
    }
}
