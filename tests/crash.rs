//! Crash safety (DESIGN §5.1, §5.4, §5.5, §5.9): the real binary is killed with SIGKILL at the
//! worst moments and restarted on the same data dir; every saga still completes, timers still
//! fire, and nothing is charged twice. Also: SIGTERM is a clean exit.

mod common;

use std::time::Duration;

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
    tanda.api.offer_for("k2").await;
    tanda.kill9();
    tokio::time::sleep(Duration::from_millis(2000)).await; // both deadlines pass while it is down

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

#[tokio::test]
async fn killed_with_the_card_network_slow_mid_payment_a_retry_charges_once() {
    let dir = tempfile::tempdir().unwrap();
    let tanda = Proc::start(dir.path(), QUICK);
    let api = tanda.api.clone();
    api.register_driver("k4", NEAR).await;
    api.online("k4").await;
    let (book_id, dispatch_id) = api.ride_to_in_trip("cust-k4", GOOD_CARD, "k4").await;
    api.put(
        "/admin/card-network",
        json!({"latencyMs": 1000, "down": false}),
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
    tokio::time::sleep(Duration::from_millis(500)).await;
    tanda.kill9(); // the driver's end call dies with the process
    assert!(in_flight.await.unwrap().is_err());

    let tanda = Proc::start(dir.path(), QUICK);
    let api = &tanda.api;
    assert_eq!(
        api.get(&format!("/dispatches/{dispatch_id}"))
            .await
            .expect(200)["status"],
        "IN_TRIP"
    );
    api.post(
        &format!("/dispatches/{dispatch_id}/end"),
        json!({"driverId": "k4"}),
    )
    .await
    .expect(200);
    api.book_status(&book_id, "COMPLETED").await;
    assert_eq!(
        api.get(&format!("/pays?bookId={book_id}"))
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
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
    let in_flight: Vec<_> = users
        .iter()
        .map(|u| {
            let api = api.clone();
            let u = u.clone();
            tokio::spawn(async move {
                api.http
                    .post(format!("{}/reservations", api.base))
                    .json(&json!({"userId": u, "flightId": "KE9000"}))
                    .send()
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(60)).await;
    tanda.kill9();
    // Typically a handful have answered by now and the rest die with the process.
    for t in in_flight {
        let _ = t.await;
    }

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
