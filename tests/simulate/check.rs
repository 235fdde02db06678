//! The invariants (DESIGN §5) the simulator holds the system to: while it runs, whether every
//! booking and reservation has reached its end, and once they all have.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::world::World;

const BOOK_ENDS: &[&str] = &["COMPLETED", "CANCELLED_BY_CUSTOMER", "CANCELLED_BY_SYSTEM"];
const RESERVATION_ENDS: &[&str] = &["CONFIRMED", "PAYMENT_FAILED", "CANCELLED"];

/// What must hold at any moment, checked after each restart: nothing acknowledged is lost, no
/// balance is negative or differs from its ledger, no flight has more seats sold than it has.
pub async fn meanwhile(world: &World) {
    let api = &world.api;
    let books = stored_books(world).await;
    for book in &world.books {
        assert!(
            books.contains_key(book),
            "booking {book} was acknowledged, and is gone"
        );
    }
    let reservations = stored_reservations(world).await;
    for id in &world.reservations {
        assert!(
            reservations.contains_key(id),
            "reservation {id} was acknowledged, and is gone"
        );
    }
    for user in &world.users {
        let (balance, ledger) = wallet(world, user).await;
        assert!(balance >= 0, "{user}: balance {balance}");
        assert_eq!(
            balance,
            ledger.balance(),
            "{user}: balance against the ledger"
        );
        let answered = world.deposited.get(user).copied().unwrap_or(0);
        let unanswered = world.deposits_unanswered.get(user).copied().unwrap_or(0);
        assert!(
            (answered..=answered + unanswered).contains(&ledger.deposits),
            "{user}: {} deposited; {answered} acknowledged, {unanswered} unanswered",
            ledger.deposits
        );
    }
    for (flight, seats) in &world.flights {
        let left = api.seats_left(flight).await;
        assert!(
            (0..=*seats).contains(&left),
            "{flight}: {left} of {seats} left"
        );
    }
}

/// Whether every booking and reservation is at an end and every driver free.
pub async fn all_at_an_end(world: &World) -> bool {
    let api = &world.api;
    for book in stored_books(world).await.values() {
        if !BOOK_ENDS.contains(&book["status"].as_str().unwrap()) {
            return false;
        }
    }
    for reservation in stored_reservations(world).await.values() {
        if !RESERVATION_ENDS.contains(&reservation["status"].as_str().unwrap()) {
            return false;
        }
    }
    for driver in &world.drivers {
        let me = api.get(&format!("/drivers/{driver}")).await.expect(200);
        if me["status"] != "AVAILABLE" {
            return false;
        }
    }
    true
}

/// Once everything is at an end: each trip paid once, its fare, and charged at most once, only if
/// paid by card; each reservation debited at most once, refunded at most once and only after a
/// debit; balances equal to their ledgers; seats sold equal to tickets issued; nothing parked.
pub async fn at_the_end(world: &mut World) -> String {
    let card_trips = rides(world).await;
    flights(world).await;
    let parked = world.api.get("/admin/dead-letters").await.expect(200);
    assert_eq!(
        parked,
        serde_json::json!([]),
        "nothing is any event's fault here"
    );
    world.stop();
    assert_eq!(
        network_charges(world.data_dir()),
        card_trips,
        "the card network charged exactly the trips paid by card, each once"
    );
    format!(
        "{} bookings, {} trips paid by card, {} reservations, {} steps",
        world.books.len(),
        card_trips.len(),
        world.reservations.len(),
        world.steps(),
    )
}

/// Checks every booking's payments; returns the dispatch ids of the trips paid by card.
async fn rides(world: &World) -> BTreeSet<String> {
    let mut card_trips = BTreeSet::new();
    for (book_id, book) in stored_books(world).await {
        let pays = world
            .api
            .get(&format!("/pays?bookId={book_id}"))
            .await
            .expect(200);
        let pays = pays.as_array().unwrap();
        if book["status"] != "COMPLETED" {
            assert!(
                pays.is_empty(),
                "{book_id} ({}) paid: {pays:?}",
                book["status"]
            );
            continue;
        }
        let [pay] = pays.as_slice() else {
            panic!(
                "{book_id}: completed with {} payments: {pays:?}",
                pays.len()
            );
        };
        assert_eq!(
            pay["amount"], book["fare"],
            "{book_id}: the fare dispatch computed"
        );
        if pay["method"] == "CARD" {
            card_trips.insert(pay["dispatchId"].as_str().unwrap().to_owned());
        }
    }
    card_trips
}

/// Checks every user's reservations against their ledger and tickets, and every flight's seats.
async fn flights(world: &World) {
    let mut confirmed: BTreeMap<String, i64> = BTreeMap::new();
    for user in &world.users {
        let (balance, ledger) = wallet(world, user).await;
        assert_eq!(
            balance,
            ledger.balance(),
            "{user}: balance against the ledger"
        );
        assert!(balance >= 0, "{user}: balance {balance}");
        let list = world
            .api
            .get(&format!("/reservations?userId={user}"))
            .await
            .expect(200);
        let tickets = world
            .api
            .get(&format!("/tickets?userId={user}"))
            .await
            .expect(200);
        for reservation in list.as_array().unwrap() {
            let id = reservation["reservationId"].as_str().unwrap();
            let status = reservation["status"].as_str().unwrap();
            let (debits, refunds) = ledger.of(id);
            let issued = tickets_of(&tickets, id, "ISSUED");
            let (expected_debits, expected_refunds, expected_issued) = match status {
                "CONFIRMED" => (1, 0, 1),
                "PAYMENT_FAILED" => (0, 0, 0),
                // Cancelled before the debit, or after it: refunded exactly when debited.
                "CANCELLED" => (debits.min(1), debits.min(1), 0),
                other => panic!("{id} still {other}"),
            };
            assert_eq!(
                (debits, refunds, issued),
                (expected_debits, expected_refunds, expected_issued),
                "{user}'s {id} ({status}): debits, refunds, issued tickets"
            );
            if status == "CONFIRMED" {
                *confirmed
                    .entry(reservation["flightId"].as_str().unwrap().into())
                    .or_default() += 1;
            }
        }
    }
    for (flight, seats) in &world.flights {
        let sold = confirmed.get(flight).copied().unwrap_or(0);
        assert_eq!(
            world.api.seats_left(flight).await,
            seats - sold,
            "{flight}'s seats"
        );
    }
}

fn tickets_of(tickets: &Value, reservation_id: &str, status: &str) -> usize {
    tickets
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["reservationId"] == reservation_id && t["status"] == status)
        .count()
}

/// Every booking stored, by id: those acknowledged and those whose answer died with the process.
async fn stored_books(world: &World) -> BTreeMap<String, Value> {
    let mut books = BTreeMap::new();
    for customer in &world.customers {
        let path = format!("/books?customerId={customer}");
        for book in world.api.get(&path).await.expect(200).as_array().unwrap() {
            books.insert(book["bookId"].as_str().unwrap().to_owned(), book.clone());
        }
    }
    books
}

/// Every reservation stored, by id.
async fn stored_reservations(world: &World) -> BTreeMap<String, Value> {
    let mut reservations = BTreeMap::new();
    for user in &world.users {
        let path = format!("/reservations?userId={user}");
        for reservation in world.api.get(&path).await.expect(200).as_array().unwrap() {
            let id = reservation["reservationId"].as_str().unwrap().to_owned();
            reservations.insert(id, reservation.clone());
        }
    }
    reservations
}

/// A user's ledger, summed.
#[derive(Default)]
pub struct Ledger {
    pub deposits: i64,
    debits: BTreeMap<String, (usize, i64)>,
    refunds: BTreeMap<String, (usize, i64)>,
}

impl Ledger {
    fn balance(&self) -> i64 {
        let total = |m: &BTreeMap<String, (usize, i64)>| m.values().map(|(_, a)| a).sum::<i64>();
        self.deposits - total(&self.debits) + total(&self.refunds)
    }

    /// How many debits and refunds the reservation has.
    fn of(&self, reservation_id: &str) -> (usize, usize) {
        let count = |m: &BTreeMap<String, (usize, i64)>| m.get(reservation_id).map_or(0, |e| e.0);
        (count(&self.debits), count(&self.refunds))
    }
}

/// A user's balance, and their ledger.
async fn wallet(world: &World, user: &str) -> (i64, Ledger) {
    let balance = world.api.balance(user).await;
    let movements = world
        .api
        .get(&format!("/accounts/{user}/movements"))
        .await
        .expect(200);
    let mut ledger = Ledger::default();
    for m in movements.as_array().unwrap() {
        let amount = m["amount"].as_i64().unwrap();
        let reservation = m["reservationId"].as_str().unwrap_or_default().to_owned();
        let entry = match m["kind"].as_str().unwrap() {
            "DEPOSIT" => {
                ledger.deposits += amount;
                continue;
            }
            "DEBIT" => ledger.debits.entry(reservation).or_default(),
            "REFUND" => ledger.refunds.entry(reservation).or_default(),
            other => panic!("a movement of kind {other}"),
        };
        entry.0 += 1;
        entry.1 += amount;
    }
    (balance, ledger)
}

/// The keys (dispatch ids) under which the card network charged, from its log in `pay.db`.
fn network_charges(data_dir: &std::path::Path) -> BTreeSet<String> {
    let conn = rusqlite::Connection::open(data_dir.join("pay.db")).unwrap();
    let mut select = conn
        .prepare("SELECT idempotency_key FROM card_network_charges")
        .unwrap();
    select
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}
