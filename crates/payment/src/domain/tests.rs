//! The wallet state machine: deposits, debits, declines, refunds and their duplicates and
//! reorderings, and randomized runs over several users and reservations checking the money
//! invariants of DESIGN §5.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn user(id: &str) -> ClientId {
    ClientId::parse(id).unwrap()
}

fn state(balance: i64) -> State {
    State {
        account: Account {
            balance,
            ..Account::empty(user("u-1"))
        },
        payment: None,
    }
}

fn pay(reservation_id: &str, price: i64) -> Command {
    Command::Pay {
        reservation_id: reservation_id.to_owned(),
        price: Price::parse(price).unwrap(),
    }
}

fn cancel(reservation_id: &str) -> Command {
    Command::Cancel {
        reservation_id: reservation_id.to_owned(),
    }
}

fn deposit(won: i64) -> Command {
    Command::Deposit(Deposit::parse(won).unwrap())
}

/// Runs `command` like the store does: decide, then apply what was decided.
fn run(s: &mut State, command: Command) -> Result<Vec<Change>, Rejection> {
    let events = decide(s, command, 1_000)?;
    for e in &events {
        apply(s, e);
    }
    Ok(events.into_iter().map(|e| e.change).collect())
}

fn status(s: &State) -> Option<Status> {
    s.payment.as_ref().map(|p| p.status)
}

#[test]
fn deposits_add_up() {
    let mut s = state(0);
    assert_eq!(
        run(&mut s, deposit(150)),
        Ok(vec![Change::Deposited { amount: 150 }])
    );
    run(&mut s, deposit(50)).unwrap();
    assert_eq!(s.account.balance, 200);
    assert_eq!(s.payment, None);
}

#[test]
fn deposit_amounts_are_parsed() {
    assert_eq!(Deposit::parse(1).map(Deposit::won), Ok(1));
    assert_eq!(
        Deposit::parse(MAX_DEPOSIT).map(Deposit::won),
        Ok(MAX_DEPOSIT)
    );
    for bad in [0, -1, MAX_DEPOSIT + 1, i64::MIN, i64::MAX] {
        assert_eq!(Deposit::parse(bad), Err(InvalidAmount), "{bad}");
    }
    assert_eq!(Price::parse(0).map(Price::won), Some(0));
    assert_eq!(Price::parse(-1), None);
    assert_eq!(Price::parse(MAX_BALANCE + 1), None);
}

#[test]
fn a_deposit_past_the_balance_limit_is_refused_and_changes_nothing() {
    let mut s = state(MAX_BALANCE - 10);
    let before = s.clone();
    assert_eq!(run(&mut s, deposit(11)), Err(Rejection::BalanceLimit));
    assert_eq!(s, before);
    assert_eq!(Rejection::BalanceLimit.code(), "balance_limit");
    run(&mut s, deposit(10)).unwrap();
    assert_eq!(s.account.balance, MAX_BALANCE);
}

#[test]
fn a_covered_price_is_debited() {
    let mut s = state(150);
    assert_eq!(
        run(&mut s, pay("r-1", 100)),
        Ok(vec![Change::Debited {
            reservation_id: "r-1".into(),
            amount: 100
        }])
    );
    assert_eq!(s.account.balance, 50);
    let p = s.payment.as_ref().unwrap();
    assert_eq!(
        (p.reservation_id.as_str(), &p.user_id, p.status),
        ("r-1", &user("u-1"), Status::Paid { amount: 100 })
    );
}

#[test]
fn the_exact_balance_covers_the_price() {
    let mut s = state(100);
    run(&mut s, pay("r-1", 100)).unwrap();
    assert_eq!(
        (s.account.balance, status(&s)),
        (0, Some(Status::Paid { amount: 100 }))
    );
}

#[test]
fn a_short_balance_is_declined_and_nothing_is_debited() {
    let mut s = state(70);
    assert_eq!(
        run(&mut s, pay("r-1", 100)),
        Ok(vec![Change::Declined {
            reservation_id: "r-1".into(),
            price: 100
        }])
    );
    assert_eq!(s.account.balance, 70);
    assert_eq!(status(&s), Some(Status::Declined { price: 100 }));
}

#[test]
fn a_reservation_is_paid_for_once() {
    for start in [150, 70] {
        let mut s = state(start);
        run(&mut s, pay("r-1", 100)).unwrap();
        let after_first = s.clone();
        // A redelivery, even after a deposit that would now cover it.
        run(&mut s, deposit(1_000)).unwrap();
        assert_eq!(run(&mut s, pay("r-1", 100)), Ok(vec![]));
        assert_eq!(s.account.balance, after_first.account.balance + 1_000);
        assert_eq!(s.payment, after_first.payment);
    }
}

#[test]
fn a_cancel_refunds_the_debit_once() {
    let mut s = state(150);
    run(&mut s, pay("r-1", 100)).unwrap();
    assert_eq!(
        run(&mut s, cancel("r-1")),
        Ok(vec![Change::Refunded {
            reservation_id: "r-1".into(),
            amount: 100
        }])
    );
    assert_eq!(s.account.balance, 150);
    assert_eq!(status(&s), Some(Status::Refunded { amount: 100 }));
    let refunded = s.clone();
    assert_eq!(run(&mut s, cancel("r-1")), Ok(vec![]));
    assert_eq!(run(&mut s, pay("r-1", 100)), Ok(vec![]));
    assert_eq!(s, refunded);
}

#[test]
fn a_cancel_without_a_debit_is_answered_with_nothing_to_refund() {
    let mut s = state(70);
    run(&mut s, pay("r-1", 100)).unwrap();
    assert_eq!(
        run(&mut s, cancel("r-1")),
        Ok(vec![Change::Closed {
            reservation_id: "r-1".into()
        }])
    );
    assert_eq!((s.account.balance, status(&s)), (70, Some(Status::Closed)));
    assert_eq!(run(&mut s, cancel("r-1")), Ok(vec![]));
}

#[test]
fn a_request_arriving_after_its_cancel_was_answered_is_ignored() {
    let mut s = state(500);
    assert_eq!(
        run(&mut s, cancel("r-1")),
        Ok(vec![Change::Closed {
            reservation_id: "r-1".into()
        }])
    );
    let p = s.payment.as_ref().unwrap();
    assert_eq!((p.status, p.version), (Status::Closed, 0));
    assert_eq!(run(&mut s, pay("r-1", 100)), Ok(vec![]));
    assert_eq!(s.account.balance, 500);
}

#[test]
fn only_money_moves_make_ledger_lines() {
    let r = || "r-1".to_owned();
    assert_eq!(
        Change::Deposited { amount: 5 }.movement(),
        Some((MovementKind::Deposit, 5))
    );
    assert_eq!(
        Change::Debited {
            reservation_id: r(),
            amount: 100
        }
        .movement(),
        Some((MovementKind::Debit, 100))
    );
    assert_eq!(
        Change::Refunded {
            reservation_id: r(),
            amount: 100
        }
        .movement(),
        Some((MovementKind::Refund, 100))
    );
    assert_eq!(
        Change::Declined {
            reservation_id: r(),
            price: 100
        }
        .movement(),
        None
    );
    assert_eq!(
        Change::Closed {
            reservation_id: r()
        }
        .movement(),
        None
    );
    assert_eq!(Change::Deposited { amount: 5 }.reservation_id(), None);
    assert_eq!(
        Change::Closed {
            reservation_id: r()
        }
        .reservation_id(),
        Some("r-1")
    );
}

#[test]
fn stored_statuses_and_kinds_round_trip() {
    for s in [
        Status::Paid { amount: 100 },
        Status::Declined { price: 100 },
        Status::Refunded { amount: 100 },
        Status::Closed,
    ] {
        assert_eq!(Status::from_parts(s.as_str(), s.amount()), Some(s));
    }
    assert_eq!(Status::from_parts("PAID", None), None);
    assert_eq!(Status::from_parts("PENDING", Some(1)), None);
    for k in [
        MovementKind::Deposit,
        MovementKind::Debit,
        MovementKind::Refund,
    ] {
        assert_eq!(MovementKind::parse(k.as_str()), Some(k));
    }
    assert_eq!(MovementKind::parse("deposit"), None);
}

// ---- randomized ---------------------------------------------------------------------------

const USERS: usize = 3;
const RESERVATIONS: usize = 6;

/// One input reaching payment: a deposit, or (a delivery, possibly repeated, of) reservation's
/// request or cancel for reservation `r`.
#[derive(Debug, Clone)]
enum Input {
    Deposit { user: usize, won: i64 },
    Requested { r: usize },
    CancelRequested { r: usize },
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        1 => (0..USERS, 1..=300i64).prop_map(|(user, won)| Input::Deposit { user, won }),
        3 => (0..RESERVATIONS).prop_map(|r| Input::Requested { r }),
        2 => (0..RESERVATIONS).prop_map(|r| Input::CancelRequested { r }),
    ]
}

/// Payment's tables as the store keeps them, driven the way the store drives the domain.
#[derive(Default)]
struct Tables {
    accounts: HashMap<ClientId, Account>,
    payments: HashMap<String, Payment>,
    /// (user, kind, amount, reservation)
    ledger: Vec<(ClientId, MovementKind, i64, Option<String>)>,
    /// Per reservation: every change the domain decided for it, in order.
    history: HashMap<String, Vec<Change>>,
}

impl Tables {
    fn execute(&mut self, user: &ClientId, command: Command) -> Result<(), TestCaseError> {
        let payment = command
            .reservation_id()
            .and_then(|r| self.payments.get(r).cloned());
        let user = payment.as_ref().map_or(user, |p| &p.user_id).clone();
        let account = self
            .accounts
            .get(&user)
            .cloned()
            .unwrap_or_else(|| Account::empty(user.clone()));
        let mut s = State { account, payment };
        let events =
            decide(&s, command, 1).map_err(|r| TestCaseError::fail(format!("refused: {r}")))?;
        for e in &events {
            apply(&mut s, e);
            prop_assert!(s.account.balance >= 0, "balance went negative: {:?}", e);
            if let Some((kind, amount)) = e.change.movement() {
                let r = e.change.reservation_id().map(str::to_owned);
                self.ledger.push((user.clone(), kind, amount, r));
            }
            if let Some(r) = e.change.reservation_id() {
                self.history
                    .entry(r.to_owned())
                    .or_default()
                    .push(e.change.clone());
            }
        }
        self.accounts.insert(user, s.account);
        if let Some(p) = s.payment {
            self.payments.insert(p.reservation_id.clone(), p);
        }
        Ok(())
    }
}

proptest! {
    /// Deposits and reservation's requests and cancels for several users and reservations, in
    /// any order and duplicated: the money invariants hold after every step, and every
    /// reservation gets at most one payment outcome and, once cancelled, exactly one answer.
    #[test]
    fn money_invariants_hold_for_any_delivery_order(
        owners in prop::collection::vec(0..USERS, RESERVATIONS),
        prices in prop::collection::vec(0..=200i64, RESERVATIONS),
        inputs in prop::collection::vec(input(), 0..80),
    ) {
        let users: Vec<ClientId> = (0..USERS).map(|u| user(&format!("u-{u}"))).collect();
        let reservation = |r: usize| format!("r-{r}");
        let mut t = Tables::default();
        let mut requested = [false; RESERVATIONS];
        let mut cancelled = [false; RESERVATIONS];
        for input in inputs {
            match input {
                Input::Deposit { user, won } => t.execute(&users[user], deposit(won))?,
                Input::Requested { r } => {
                    requested[r] = true;
                    t.execute(&users[owners[r]], pay(&reservation(r), prices[r]))?;
                }
                Input::CancelRequested { r } => {
                    cancelled[r] = true;
                    t.execute(&users[owners[r]], cancel(&reservation(r)))?;
                }
            }

            // Balances never go negative, and the ledger of each wallet sums to its balance.
            for (u, account) in &t.accounts {
                prop_assert!(account.balance >= 0);
                let sum: i64 = t.ledger.iter().filter(|(owner, ..)| owner == u).map(|(_, kind, amount, _)| match kind {
                    MovementKind::Debit => -amount,
                    MovementKind::Deposit | MovementKind::Refund => *amount,
                }).sum();
                prop_assert_eq!(sum, account.balance, "ledger of {}", u);
            }

            for r in 0..RESERVATIONS {
                let history = t.history.get(&reservation(r)).cloned().unwrap_or_default();
                let count = |f: fn(&Change) -> bool| history.iter().filter(|c| f(c)).count();
                let debits = count(|c| matches!(c, Change::Debited { .. }));
                let declines = count(|c| matches!(c, Change::Declined { .. }));
                let refunds = count(|c| matches!(c, Change::Refunded { .. }));
                let answers = refunds + count(|c| matches!(c, Change::Closed { .. }));
                prop_assert!(debits <= 1, "debited twice: {:?}", history);
                prop_assert!(refunds <= 1, "refunded twice: {:?}", history);
                prop_assert!(debits + declines <= 1, "two payment outcomes: {:?}", history);
                // A refund gives back exactly the debit that came before it.
                if let Some(i) = history.iter().position(|c| matches!(c, Change::Refunded { .. })) {
                    let debit = history[..i].iter().find_map(|c| match c {
                        Change::Debited { amount, .. } => Some(*amount),
                        _ => None,
                    });
                    prop_assert_eq!(Some(&Change::Refunded { reservation_id: reservation(r), amount: prices[r] }), history.get(i));
                    prop_assert_eq!(debit, Some(prices[r]), "refund without a debit: {:?}", history);
                }
                // Every cancel delivered is answered, exactly once however often it came.
                prop_assert_eq!(answers, usize::from(cancelled[r]), "answers for {:?}", history);
                // Nothing is ever paid after the cancel was answered.
                if let Some(i) = history.iter().position(|c| matches!(c, Change::Refunded { .. } | Change::Closed { .. })) {
                    prop_assert_eq!(i, history.len() - 1, "activity after the cancel: {:?}", history);
                }
                // A request seen before any cancel gets an outcome.
                if requested[r] && !cancelled[r] {
                    prop_assert_eq!(debits + declines, 1);
                }
                // Money moves only on the reservation owner's wallet.
                for (owner, _, _, res) in &t.ledger {
                    if res.as_deref() == Some(reservation(r).as_str()) {
                        prop_assert_eq!(owner, &users[owners[r]]);
                    }
                }
            }
        }
    }
}
