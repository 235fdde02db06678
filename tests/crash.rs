//! Crash safety (DESIGN §5.1, §5.4, §5.5, §5.9): the real binary is killed with SIGKILL at the
//! worst moments and restarted on the same data dir; every saga still completes, timers still
//! fire, and nothing is charged twice. Also: SIGTERM is a clean exit.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const NEAR: (f64, f64) = (37.5668, 126.9785);
const QUICK: &[(&str, &str)] = &[
    ("TANDA_DISPATCH_OFFER_TIMEOUT", "30s"),
    ("TANDA_DISPATCH_DEADLINE", "60s"),
];

#[tokio::test]
async fn killed_right_after_a_booking_is_accepted_the_ride_still_happens() {
    let dir = tempfile::tempdir().unwrap();
    let tanda = Proc::start(dir.path(), QUICK);
    tanda.api.register_driver("k1", NEAR).await;
    tanda.api.online("k1").await;
    let book_id = tanda.api.book("cust-k1", GOOD_CARD).await["bookId"]
        .as_str()
        .unwrap()
        .to_owned();
    tanda.kill9(); // the 201 was sent; did the BookRequested event make it to dispatch? It must.

    let tanda = Proc::start(dir.path(), QUICK);
    let api = &tanda.api;
    assert_eq!(
        api.get(&format!("/books/{book_id}")).await.expect(200)["status"],
        "REQUESTED"
    );
    let dispatch_id = api.offer_for("k1").await["dispatchId"]
        .as_str()
        .unwrap()
        .to_owned();
    api.post(
        &format!("/dispatches/{dispatch_id}/accept"),
        json!({"driverId": "k1"}),
    )
    .await
    .expect(200);
    api.post(
        &format!("/dispatches/{dispatch_id}/start"),
        json!({"driverId": "k1"}),
    )
    .await
    .expect(200);
    api.post(
        &format!("/dispatches/{dispatch_id}/end"),
        json!({"driverId": "k1"}),
    )
    .await
    .expect(200);
    api.book_status(&book_id, "COMPLETED").await;
}

/// A crash right after each commit a booking makes, in turn (crash points, `tanda-failpoint`):
/// whatever of it was committed is whole. A booking that was stored reaches dispatch and is
/// offered to the free driver; none is stored that nobody will ever hear of.
#[tokio::test]
async fn a_crash_after_any_commit_of_a_booking_leaves_it_whole() {
    for crash_after in 1.. {
        let dir = tempfile::tempdir().unwrap();
        let tanda = Proc::start(dir.path(), QUICK);
        tanda.api.register_driver("f1", NEAR).await;
        tanda.api.online("f1").await;
        let booking = Api::booking("cust-f1", GOOD_CARD);
        // 503 (and nothing stored) until book has heard that the driver is free.
        let answer = loop {
            match post_armed(&tanda.api, "/books", &booking, crash_after).await {
                Some((503, _)) => tokio::time::sleep(Duration::from_millis(20)).await,
                answer => break answer,
            }
        };
        if completed(tanda, answer, 201, crash_after > 1).await {
            return;
        }

        let tanda = Proc::start(dir.path(), QUICK);
        let books = tanda.api.get("/books?customerId=cust-f1").await.expect(200);
        let [book] = books.as_array().unwrap().as_slice() else {
            panic!("after commit {crash_after}: one booking stored, not {books}");
        };
        let offer = tanda.api.offer_for("f1").await;
        assert_eq!(
            offer["bookId"], book["bookId"],
            "after commit {crash_after}"
        );
    }
}

/// A crash right after each commit the end of a trip makes (pay noting the attempt, the network's
/// record of the charge, pay's payment, dispatch's trip), in turn: the driver's retried `end`
/// finishes it, and the trip is charged once, paid once, and its booking completes.
#[tokio::test]
async fn a_crash_after_any_commit_of_a_trips_end_charges_it_once() {
    for crash_after in 1.. {
        let dir = tempfile::tempdir().unwrap();
        let tanda = Proc::start(dir.path(), QUICK);
        tanda.api.register_driver("f2", NEAR).await;
        tanda.api.online("f2").await;
        let (book_id, dispatch_id) = tanda.api.ride_to_in_trip("cust-f2", GOOD_CARD, "f2").await;
        let end = format!("/dispatches/{dispatch_id}/end");
        let driver = json!({"driverId": "f2"});
        let answer = post_armed(&tanda.api, &end, &driver, crash_after).await;
        // The charge attempt, the network's charge, the payment and the trip each commit.
        if completed(tanda, answer, 200, crash_after > 4).await {
            return;
        }

        let tanda = Proc::start(dir.path(), QUICK);
        let api = &tanda.api;
        let dispatch = api
            .get(&format!("/dispatches/{dispatch_id}"))
            .await
            .expect(200);
        if dispatch["status"] == "IN_TRIP" {
            api.post(&end, driver).await.expect(200);
        }
        api.book_status(&book_id, "COMPLETED").await;
        let pays = api
            .get(&format!("/pays?bookId={book_id}"))
            .await
            .expect(200);
        assert_eq!(
            pays.as_array().unwrap().len(),
            1,
            "after commit {crash_after}: {pays}"
        );
        let pay_db = dir.path().join("pay.db");
        assert_eq!(network_charges(&pay_db), 1, "after commit {crash_after}");
        // The payment was announced too: the ride's history has it.
        let history = format!("/rideHistories/{book_id}");
        api.eventually(&history, "the payment in the history", |h| {
            h["payId"] == pays[0]["payId"]
        })
        .await;
    }
}

/// A crash right after each commit a reservation request makes, in turn: a reservation stored
/// goes on to its end, paid once, and the seats add up.
#[tokio::test]
async fn a_crash_after_any_commit_of_a_reservation_leaves_it_whole() {
    for crash_after in 1.. {
        let dir = tempfile::tempdir().unwrap();
        let tanda = Proc::start(dir.path(), QUICK);
        tanda.api.flight("KE7000", 5).await;
        tanda.api.deposit("f3", 150).await;
        let request = json!({"userId": "f3", "flightId": "KE7000"});
        let answer = post_armed(&tanda.api, "/reservations", &request, crash_after).await;
        if completed(tanda, answer, 201, crash_after > 1).await {
            return;
        }

        let tanda = Proc::start(dir.path(), QUICK);
        let api = &tanda.api;
        let list = api.get("/reservations?userId=f3").await.expect(200);
        let [reservation] = list.as_array().unwrap().as_slice() else {
            panic!("after commit {crash_after}: one reservation stored, not {list}");
        };
        let id = reservation["reservationId"].as_str().unwrap();
        api.reservation_status(id, "CONFIRMED").await;
        assert_eq!(api.balance("f3").await, 50, "after commit {crash_after}");
        assert_eq!(
            api.seats_left("KE7000").await,
            4,
            "after commit {crash_after}"
        );
    }
}

/// Whether an armed request completed, answered `status`: it commits fewer times than the crash
/// point's count, so every crash point has been tried (`committed_at_least` says the path did
/// reach each one expected). Otherwise the process exited at the crash point.
async fn completed(
    tanda: Proc,
    answer: Option<(u16, serde_json::Value)>,
    status: u16,
    committed_at_least: bool,
) -> bool {
    match answer {
        Some((answered, body)) => {
            assert_eq!(answered, status, "{body}");
            assert!(
                committed_at_least,
                "the path commits fewer times than it should"
            );
            true
        }
        None => {
            let exit = tanda.exited().await.code();
            assert_eq!(exit, Some(137), "the crash point exits");
            false
        }
    }
}

/// POSTs `body` to `path` as the operator, with the process armed to exit right after this
/// request's `commits`-th commit; the status and body, or `None` if the process died first.
async fn post_armed(
    api: &Api,
    path: &str,
    body: &serde_json::Value,
    commits: u32,
) -> Option<(u16, serde_json::Value)> {
    let token = api.bearer_token().await;
    let sent = api
        .http
        .post(format!("{}{path}", api.base))
        .bearer_auth(token)
        .header("tanda-failpoint", format!("exit-after-commit={commits}"))
        .json(body)
        .send()
        .await
        .ok()?;
    let status = sent.status().as_u16();
    Some((status, sent.json().await.unwrap_or_default()))
}

#[tokio::test]
async fn killed_while_an_offer_is_pending_the_timers_still_fire_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let env = &[
        ("TANDA_DISPATCH_OFFER_TIMEOUT", "700ms"),
        ("TANDA_DISPATCH_DEADLINE", "1500ms"),
    ];
    let tanda = Proc::start(dir.path(), env);
    tanda.api.register_driver("k2", NEAR).await;
    tanda.api.online("k2").await;
    let book_id = tanda.api.book("cust-k2", GOOD_CARD).await["bookId"]
        .as_str()
        .unwrap()
        .to_owned();
    let booked = Instant::now(); // after the server set the booking's deadline
    tanda.api.offer_for("k2").await;
    tanda.kill9();
    // Down until both deadlines (the offer's, the booking's) have passed: they fall due while
    // nothing runs.
    tokio::time::sleep_until((booked + Duration::from_millis(1500)).into()).await;

    let tanda = Proc::start(dir.path(), env);
    let api = &tanda.api;
    api.book_status(&book_id, "CANCELLED_BY_SYSTEM").await;
    api.driver_status("k2", "AVAILABLE").await;
    assert_eq!(api.get("/drivers/k2/offers").await.expect(200), json!([]));
    api.wait_message("customer:cust-k2", "택시를 찾지 못했어요")
        .await;
}

#[tokio::test]
async fn killed_right_after_a_trip_ends_the_booking_completes_and_is_charged_once() {
    let dir = tempfile::tempdir().unwrap();
    let tanda = Proc::start(dir.path(), QUICK);
    let api = tanda.api.clone();
    api.register_driver("k3", NEAR).await;
    api.online("k3").await;
    let (book_id, dispatch_id) = api.ride_to_in_trip("cust-k3", GOOD_CARD, "k3").await;
    let ended = api
        .post(
            &format!("/dispatches/{dispatch_id}/end"),
            json!({"driverId": "k3", "distanceMeters": 5000}),
        )
        .await
        .expect(200);
    tanda.kill9();

    let tanda = Proc::start(dir.path(), QUICK);
    let api = &tanda.api;
    let done = api.book_status(&book_id, "COMPLETED").await;
    assert_eq!(done["fare"], ended["fare"]);
    api.post(
        &format!("/dispatches/{dispatch_id}/end"),
        json!({"driverId": "k3"}),
    )
    .await
    .expect(409);
    let pays = api
        .get(&format!("/pays?bookId={book_id}"))
        .await
        .expect(200);
    assert_eq!(
        pays.as_array().unwrap().len(),
        1,
        "charged exactly once: {pays}"
    );
    api.eventually(&format!("/rideHistories/{book_id}"), "history", |h| {
        h["bookStatus"] == "COMPLETED"
    })
    .await;
}

/// Killed after the card network charged the trip and before pay stored the payment (the
/// network's answer is slow): the charge is in the network's durable log, and the driver's
/// retried `end` gets that same charge back under the trip's key; one charge, one payment.
#[tokio::test]
async fn killed_after_the_charge_before_pay_stored_it_the_retry_charges_once() {
    let dir = tempfile::tempdir().unwrap();
    let tanda = Proc::start(dir.path(), QUICK);
    let api = tanda.api.clone();
    api.register_driver("k4", NEAR).await;
    api.online("k4").await;
    let (book_id, dispatch_id) = api.ride_to_in_trip("cust-k4", GOOD_CARD, "k4").await;
    api.put(
        "/admin/card-network",
        json!({"latencyMs": 0, "down": false, "answerDelayMs": 10_000}),
    )
    .await
    .expect(200);
    let end = format!("{}/dispatches/{dispatch_id}/end", api.base);
    let token = api.token("operator", OPERATOR_PASSWORD).await;
    let in_flight = tokio::spawn({
        let http = api.http.clone();
        async move {
            let body = json!({"driverId": "k4"});
            http.post(end).bearer_auth(token).json(&body).send().await
        }
    });
    let pay_db = dir.path().join("pay.db");
    let asked = Instant::now();
    while network_charges(&pay_db) == 0 {
        assert!(
            asked.elapsed() < Duration::from_secs(20),
            "the network never recorded the charge"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tanda.kill9(); // the driver's end call dies with the process, its answer never sent
    assert!(in_flight.await.unwrap().is_err());
    assert_eq!(
        payments(&pay_db, &dispatch_id),
        0,
        "killed before pay stored it"
    );

    let tanda = Proc::start(dir.path(), QUICK);
    let api = &tanda.api;
    assert_eq!(
        api.get(&format!("/dispatches/{dispatch_id}"))
            .await
            .expect(200)["status"],
        "IN_TRIP"
    );
    // The network's mode outlives the restart (pay keeps it): its answer made quick again.
    let slow = api.get("/admin/card-network").await.expect(200);
    assert_eq!(slow["answerDelayMs"], 10_000);
    api.put(
        "/admin/card-network",
        json!({"latencyMs": 0, "down": false, "answerDelayMs": 0}),
    )
    .await
    .expect(200);
    api.post(
        &format!("/dispatches/{dispatch_id}/end"),
        json!({"driverId": "k4"}),
    )
    .await
    .expect(200);
    api.book_status(&book_id, "COMPLETED").await;
    let pays = api
        .get(&format!("/pays?bookId={book_id}"))
        .await
        .expect(200);
    assert_eq!(pays.as_array().unwrap().len(), 1, "{pays}");
    assert_eq!(network_charges(&pay_db), 1, "charged once");
}

/// Charges the simulated card network made, read from its log in `pay.db` (the test makes one
/// trip, so any second charge is a duplicate, under its key or another).
fn network_charges(pay_db: &std::path::Path) -> i64 {
    count_rows(
        pay_db,
        "SELECT COUNT(*) FROM card_network_charges WHERE ?1 = ?1",
        "",
    )
}

/// Payments pay stored for the trip `dispatch_id`.
fn payments(pay_db: &std::path::Path, dispatch_id: &str) -> i64 {
    count_rows(
        pay_db,
        "SELECT COUNT(*) FROM pays WHERE dispatch_id = ?1",
        dispatch_id,
    )
}

fn count_rows(db: &std::path::Path, sql: &str, key: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(sql, [key], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let tanda = Proc::start(dir.path(), QUICK);
    tanda.api.register_driver("t1", NEAR).await;
    let status = tanda.terminate();
    assert!(status.success(), "exit status {status}");
    let tanda = Proc::start(dir.path(), QUICK);
    assert_eq!(
        tanda.api.get("/drivers/t1").await.expect(200)["status"],
        "OFFLINE"
    );
}

/// SIGTERM while drivers' `end` calls wait on a slow card network: each is answered (the
/// trip ended and charged), not cut off, and the process exits 0 once they are; after a restart
/// each booking completes with its one charge.
#[tokio::test]
async fn sigterm_answers_every_request_in_flight_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let tanda = Proc::start(dir.path(), QUICK);
    let api = tanda.api.clone();
    let drivers = ["s1", "s2", "s3"];
    let mut trips = Vec::new();
    for driver in drivers {
        api.register_driver(driver, NEAR).await;
        api.online(driver).await;
        let customer = format!("cust-{driver}");
        trips.push(api.ride_to_in_trip(&customer, GOOD_CARD, driver).await);
    }
    api.put(
        "/admin/card-network",
        json!({"latencyMs": 1500, "down": false}),
    )
    .await
    .expect(200);
    let ends = trips.iter().zip(drivers).map(|((_, dispatch_id), driver)| {
        let path = format!("/dispatches/{dispatch_id}/end");
        let api = &api;
        async move { api.post(&path, json!({"driverId": driver})).await }
    });
    let signal = async {
        // The three ends, and the scrape that counts them.
        while in_flight(&api).await < drivers.len() as f64 + 1.0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tanda.sigterm();
    };
    let (answers, ()) = tokio::join!(futures::future::join_all(ends), signal);
    for answer in answers {
        assert_eq!(answer.expect(200)["status"], "ENDED");
    }
    let status = tanda.exited().await;
    assert!(status.success(), "exit status {status}");

    let tanda = Proc::start(dir.path(), QUICK);
    for (book_id, _) in &trips {
        tanda.api.book_status(book_id, "COMPLETED").await;
        let pays = tanda
            .api
            .get(&format!("/pays?bookId={book_id}"))
            .await
            .expect(200);
        assert_eq!(pays.as_array().unwrap().len(), 1, "{pays}");
    }
}

/// `tanda_http_requests_in_flight` as `/metrics` reports it (the scrape itself included).
async fn in_flight(api: &Api) -> f64 {
    api.metric("tanda_http_requests_in_flight").await
}

/// Kubernetes sends SIGTERM and takes the pod out of its Service at the same moment, and the
/// endpoints take a while to follow: for the drain delay the instance answers `/readyz` 503 while
/// it goes on serving every request; then it stops and exits 0.
#[tokio::test]
async fn sigterm_turns_readiness_off_then_serves_for_the_drain_delay_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = QUICK.to_vec();
    env.push(("TANDA_DRAIN_DELAY", "3s"));
    let tanda = Proc::start(dir.path(), &env);
    let api = tanda.api.clone();
    api.register_driver("dr1", NEAR).await;
    let asked = Instant::now();
    tanda.sigterm();
    while api.get("/readyz").await.status != 503 {
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "readiness off at once"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut served = 0;
    while asked.elapsed() < Duration::from_secs(2) {
        api.get("/drivers/dr1").await.expect(200);
        api.online("dr1").await;
        api.post_empty("/drivers/dr1/offline").await.expect(200);
        served += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served > 5, "served {served} rounds while draining");
    let status = tanda.exited().await;
    assert!(status.success(), "exit status {status}");
    assert!(
        asked.elapsed() >= Duration::from_secs(3),
        "exited only after the drain delay"
    );
}

/// The listen address may name its host (as a container's `localhost:8080`), not only an IP.
#[tokio::test]
async fn the_listen_address_may_be_a_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let tanda = Proc::start(dir.path(), &[("TANDA_HTTP_ADDR", "localhost:0")]);
    assert_eq!(tanda.api.get("/healthz").await.expect(200)["status"], "ok");
}

#[tokio::test]
async fn killed_with_fifty_reservations_in_flight_everything_reconciles_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tanda = Proc::start(dir.path(), QUICK);
    let api = tanda.api.clone();
    api.flight("KE9000", 40).await;
    // 50 users: the even ones can pay, the odd ones cannot; 40 seats, so some are sold out too.
    let users: Vec<String> = (0..50).map(|i| format!("c{i}")).collect();
    for (i, u) in users.iter().enumerate() {
        api.deposit(u, if i % 2 == 0 { 100 } else { 60 }).await;
    }
    let token = api.bearer_token().await;
    let in_flight: Vec<_> = users
        .iter()
        .map(|u| {
            let api = api.clone();
            let u = u.clone();
            let token = token.clone();
            tokio::spawn(async move {
                api.http
                    .post(format!("{}/reservations", api.base))
                    .bearer_auth(token)
                    .json(&json!({"userId": u, "flightId": "KE9000"}))
                    .send()
                    .await
            })
        })
        .collect();
    // Killed once some reservations are stored: the others are still on their way in.
    let reservation_db = dir.path().join("reservation.db");
    while stored_reservations(&reservation_db).0 < 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tanda.kill9();
    let mut died = 0;
    for t in in_flight {
        died += usize::from(t.await.unwrap().is_err());
    }
    let (stored, unfinished) = stored_reservations(&reservation_db);
    assert!(
        died > 0,
        "no request was in flight when the process was killed"
    );
    assert!(
        unfinished > 0,
        "of {stored} reservations stored, none was still on its way to an end"
    );

    let tanda = Proc::start(dir.path(), QUICK);
    let api = &tanda.api;
    let terminal = ["CONFIRMED", "PAYMENT_FAILED"];
    let mut confirmed = 0;
    for (i, u) in users.iter().enumerate() {
        let list = api
            .eventually(
                &format!("/reservations?userId={u}"),
                "terminal reservations",
                |l| {
                    l.as_array()
                        .unwrap()
                        .iter()
                        .all(|r| terminal.contains(&r["status"].as_str().unwrap()))
                },
            )
            .await;
        let list = list.as_array().unwrap();
        assert!(
            list.len() <= 1,
            "one request per user makes at most one reservation"
        );
        let mine = list.iter().filter(|r| r["status"] == "CONFIRMED").count() as i64;
        if i % 2 == 1 {
            assert_eq!(mine, 0, "a wallet of 60 cannot pay 100");
        }
        confirmed += mine;
        let deposit = if i % 2 == 0 { 100 } else { 60 };
        assert_eq!(
            api.balance(u).await,
            deposit - 100 * mine,
            "{u}: debited exactly once per confirmed reservation"
        );
        let tickets = api.get(&format!("/tickets?userId={u}")).await.expect(200);
        assert_eq!(
            tickets
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["status"] == "ISSUED")
                .count() as i64,
            mine
        );
        let movements = api
            .get(&format!("/accounts/{u}/movements"))
            .await
            .expect(200);
        let sum: i64 = movements
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                if m["kind"] == "DEBIT" {
                    -m["amount"].as_i64().unwrap()
                } else {
                    m["amount"].as_i64().unwrap()
                }
            })
            .sum();
        assert_eq!(
            sum,
            api.balance(u).await,
            "{u}: the ledger adds up to the balance"
        );
    }
    assert_eq!(
        api.seats_left("KE9000").await,
        40 - confirmed,
        "seats held = confirmed reservations"
    );
}

/// The disk filling up for a moment while events are waiting to be handled: the writes that
/// come meanwhile are refused (503, so clients try again), the events wait, and once there is
/// room again every saga completes by itself, with nothing parked as a dead letter: a full disk
/// is no event's fault.
#[tokio::test]
async fn a_disk_full_for_a_moment_parks_nothing_and_every_saga_completes() {
    let disk = SmallDisk::mount(64);
    let tanda = Proc::start(disk.path(), QUICK);
    // A reader holding a snapshot of every database (as a backup would) keeps SQLite from
    // starting its WALs over, so that the writes from here on need more room on the disk.
    let snapshots = hold_snapshots(disk.path());
    let api = tanda.api.clone();
    api.flight("KE7000", 60).await;
    let users: Vec<String> = (0..40).map(|i| format!("d{i}")).collect();
    for (i, u) in users.iter().enumerate() {
        api.deposit(u, if i % 2 == 0 { 100 } else { 60 }).await;
    }
    // Forty reservations waiting for payment when the disk fills up.
    api.post_empty("/admin/consumers/payment/pause")
        .await
        .expect(200);
    for u in &users {
        api.reserve(u, "KE7000").await.expect(201);
    }
    let filler = disk.fill();
    let refused = api
        .post("/accounts/late/deposit", json!({"amount": 1}))
        .await;
    assert_eq!(
        refused.status, 503,
        "a write on a full disk: {}",
        refused.body
    );
    assert_eq!(
        api.get("/readyz").await.status,
        503,
        "not ready on a full disk"
    );
    // Resuming is a write too (the switch is kept in payment's database): a little room for it,
    // which payment's first units fill again.
    let mut resumed = api.post_empty("/admin/consumers/payment/resume").await;
    for _ in 0..8 {
        if resumed.status != 503 {
            break;
        }
        disk.make_room(&filler, 256 * 1024);
        resumed = api.post_empty("/admin/consumers/payment/resume").await;
    }
    resumed.expect(200);
    // The disk stays full until payment has failed on it more often than a handler's own error
    // may fail before its event is parked: only then does "nothing parked" say something.
    let failures = "tanda_consumer_transient_failures_total{consumer=\"payment\"}";
    let enough = f64::from(tanda_core::consumer::MAX_ATTEMPTS + 1);
    let full_until = Instant::now() + Duration::from_secs(60);
    while api.metric(failures).await < enough {
        assert!(
            Instant::now() < full_until,
            "payment never tried the full disk"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::remove_file(filler).unwrap();
    drop(snapshots);
    api.eventually("/readyz", "ready with room on the disk again", |r| {
        r["ready"] == true
    })
    .await;

    for u in &users {
        api.eventually(
            &format!("/reservations?userId={u}"),
            "a reservation at its end",
            |l| ["CONFIRMED", "PAYMENT_FAILED"].contains(&l[0]["status"].as_str().unwrap()),
        )
        .await;
    }
    let parked = api.get("/admin/dead-letters").await.expect(200);
    assert_eq!(parked, json!([]), "a full disk is not the events' fault");
}

/// Reservations stored in `reservation.db`, and how many of them are not at an end yet.
fn stored_reservations(db: &std::path::Path) -> (i64, i64) {
    if !db.exists() {
        return (0, 0);
    }
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let exists: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'reservations'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if exists == 0 {
        return (0, 0);
    }
    conn.query_row(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE status NOT IN ('CONFIRMED', 'PAYMENT_FAILED'))
         FROM reservations",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// A read transaction open on every SQLite database in `dir`.
fn hold_snapshots(dir: &std::path::Path) -> Vec<rusqlite::Connection> {
    let mut held = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "db") {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch("BEGIN").unwrap();
            let _: i64 = conn
                .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
                .unwrap();
            held.push(conn);
        }
    }
    assert!(
        held.len() > 5,
        "every service's database is in the data dir"
    );
    held
}

/// A small disk of the test's own: a tmpfs (mounting one needs root, as `.ci/run` has).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={megabytes}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(mounted.success(), "mounting a tmpfs needs root");
        Self { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Fills what is left of the disk with one file; returns its path.
    /// Frees `bytes` of the room `filler` took.
    fn make_room(&self, filler: &std::path::Path, bytes: u64) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(filler)
            .unwrap();
        let len = file.metadata().unwrap().len();
        file.set_len(len.saturating_sub(bytes)).unwrap();
    }

    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
