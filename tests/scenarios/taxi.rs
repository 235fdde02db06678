//! The taxi scenarios of seed 000, black-box over HTTP; run against each topology by the test
//! files that include this module (`tests/taxi.rs`, `tests/distributed.rs`).

/// Every scenario of this file that runs on both topologies, listed once: `tests/taxi.rs` runs
/// them all-in-one (`taxi_scenarios!(AllInOne)`), `tests/distributed.rs` on the cluster.
#[macro_export]
macro_rules! taxi_scenarios {
    ($topology:ident) => {
        tests_on!($topology, taxi:
            a_full_ride_from_request_to_automatic_payment,
            a_declined_card_is_a_402_and_the_trip_stays_in_trip,
            the_fare_cannot_be_set_by_paying_first,
            an_implausible_distance_is_refused_and_the_trip_stays_in_trip,
            the_breaker_opens_while_the_card_network_is_down_and_the_trip_completes_after_recovery,
            cancel_before_accept_withdraws_the_offer,
            cancel_after_dispatch_frees_the_driver,
            cancel_after_boarding_is_refused,
            cancel_racing_boarding_resolves_to_the_trip,
            nobody_accepts_so_the_system_cancels_within_the_deadline_and_tells_the_customer,
            with_no_driver_online_booking_answers_503_with_retry_after,
            a_creating_post_with_an_idempotency_key_creates_once,
            bad_input_gets_problems_and_changes_nothing,
            rides_complete_while_ride_history_is_down_and_it_catches_up,
            operations_endpoints,
            the_story_reads_in_order_after_a_notify_outage,
            a_driver_outside_the_pickup_radius_is_never_offered,
            a_declined_card_is_replaced_and_the_ride_is_paid,
            a_declined_card_is_settled_in_cash_and_the_driver_is_free,
            with_dispatch_paused_the_customer_is_answered_by_the_deadline_and_nothing_is_offered_after,
            a_dispatch_that_lands_after_the_system_cancel_is_compensated,
            booking_far_from_every_free_driver_answers_503,
        );
    };
}

use std::time::Duration;

use crate::common::*;
use serde_json::json;

const NEAR: (f64, f64) = (37.5668, 126.9785); // ~75 m from City Hall
const MID: (f64, f64) = (37.5700, 126.9850); // ~750 m
const FAR: (f64, f64) = (37.6000, 127.0500); // ~7 km
const JUST_OUTSIDE: (f64, f64) = (37.6203, 126.9779); // 6 km due north
const OUT_OF_TOWN: (f64, f64) = (37.8361, 126.9779); // 30 km due north

async fn three_drivers(api: &Api, prefix: &str) -> [String; 3] {
    let ids = [
        format!("{prefix}-near"),
        format!("{prefix}-mid"),
        format!("{prefix}-far"),
    ];
    for (id, at) in ids.iter().zip([NEAR, MID, FAR]) {
        let d = api.register_driver(id, at).await;
        assert_eq!(d["status"], "OFFLINE");
        assert_eq!(api.online(id).await["status"], "AVAILABLE");
    }
    ids
}

pub async fn a_full_ride_from_request_to_automatic_payment(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    let [near, mid, far] = three_drivers(api, "d").await;

    // The customer requests a taxi; the card never comes back in full.
    let book = api.book("cust-1", GOOD_CARD).await;
    assert_eq!(book["status"], "REQUESTED");
    assert_eq!(book["cardLast4"], "4242");
    assert!(!book.to_string().contains(GOOD_CARD));
    let book_id = book["bookId"].as_str().unwrap().to_owned();
    wait_subject(api, "customer:cust-1", "book.requested").await;

    // The nearest available driver is offered the ride first, and only they.
    let offer = api.offer_for(&near).await;
    assert_eq!(offer["bookId"], book_id.as_str());
    assert_eq!(offer["pickup"]["name"], "Seoul City Hall");
    assert!(offer["expiresAt"].as_str().unwrap().ends_with('Z'));
    for other in [&mid, &far] {
        assert_eq!(
            api.get(&format!("/drivers/{other}/offers"))
                .await
                .expect(200),
            json!([])
        );
    }
    assert_eq!(
        api.get(&format!("/drivers/{near}")).await.expect(200)["status"],
        "OFFERED"
    );
    let dispatch_id = offer["dispatchId"].as_str().unwrap().to_owned();

    // The driver accepts: the taxi is dispatched with an arrival time.
    let accepted = api
        .post(
            &format!("/dispatches/{dispatch_id}/accept"),
            json!({"driverId": near}),
        )
        .await
        .expect(200);
    assert_eq!(accepted["status"], "DISPATCHED");
    let eta = accepted["etaSeconds"].as_i64().unwrap();
    assert!((1..120).contains(&eta), "75 m at city speed: {eta}s");

    // The customer sees the car and is told its arrival time.
    let dispatched = api.book_status(&book_id, "DISPATCHED").await;
    assert_eq!(dispatched["taxi"]["driverId"], near.as_str());
    assert_eq!(dispatched["dispatchId"], dispatch_id.as_str());
    let car = dispatched["taxi"]["carNumber"].as_str().unwrap().to_owned();
    let told = api.wait_message("customer:cust-1", &car).await;
    assert!(
        told.contains("분 후 도착"),
        "told the arrival time in Korean: {told}"
    );

    // Boarding.
    let started = api
        .post(
            &format!("/dispatches/{dispatch_id}/start"),
            json!({"driverId": near}),
        )
        .await
        .expect(200);
    assert_eq!(started["status"], "IN_TRIP");
    api.book_status(&book_id, "IN_TRIP").await;
    assert_eq!(
        api.get(&format!("/drivers/{near}")).await.expect(200)["status"],
        "IN_TRIP"
    );

    // Alighting: exact Seoul meter fare, charged automatically, once.
    let ended = api
        .post(
            &format!("/dispatches/{dispatch_id}/end"),
            json!({"driverId": near, "distanceMeters": 10_000}),
        )
        .await
        .expect(200);
    assert_eq!(ended["status"], "ENDED");
    assert_eq!(ended["fare"], 4800 + 100 * ((10_000 - 1600) / 131));
    assert_eq!(ended["fare"], 11_200);
    let pay_id = ended["payId"].as_str().unwrap().to_owned();

    let completed = api.book_status(&book_id, "COMPLETED").await;
    assert_eq!(completed["fare"], 11_200);
    let pays = api
        .get(&format!("/pays?bookId={book_id}"))
        .await
        .expect(200);
    assert_eq!(pays.as_array().unwrap().len(), 1);
    assert_eq!(pays[0]["payId"], pay_id.as_str());
    assert_eq!(pays[0]["amount"], 11_200);
    assert_eq!(pays[0]["status"], "PAID");
    assert_eq!(pays[0]["cardLast4"], "4242");

    // Ending again is refused and charges nothing more.
    api.post(
        &format!("/dispatches/{dispatch_id}/end"),
        json!({"driverId": near}),
    )
    .await
    .expect(409);
    assert_eq!(
        api.get(&format!("/pays?bookId={book_id}"))
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The driver is free again; the customer heard about the fare; the ride history has it all.
    api.driver_status(&near, "AVAILABLE").await;
    api.wait_message("customer:cust-1", "11,200원").await;
    let history = api
        .eventually(
            &format!("/rideHistories/{book_id}"),
            "a completed history",
            |h| h["bookStatus"] == "COMPLETED" && h["payId"].is_string(),
        )
        .await;
    assert_eq!(history["dispatchStatus"], "ENDED");
    assert_eq!(history["fare"], 11_200);
    assert_eq!(history["taxi"]["driverId"], near.as_str());
    let mine = api
        .get("/rideHistories?customerId=cust-1")
        .await
        .expect(200);
    assert_eq!(mine.as_array().unwrap().len(), 1);
    app.shutdown().await;
}

pub async fn a_declined_card_is_a_402_and_the_trip_stays_in_trip(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.register_driver("dec", NEAR).await;
    api.online("dec").await;
    let (book_id, dispatch_id) = api.ride_to_in_trip("cust-dec", DECLINED_CARD, "dec").await;
    api.post(
        &format!("/dispatches/{dispatch_id}/end"),
        json!({"driverId": "dec"}),
    )
    .await
    .expect_problem(402, "card_declined");
    assert_eq!(
        api.get(&format!("/dispatches/{dispatch_id}"))
            .await
            .expect(200)["status"],
        "IN_TRIP"
    );
    assert_eq!(
        api.get(&format!("/books/{book_id}")).await.expect(200)["status"],
        "IN_TRIP"
    );
    assert_eq!(
        api.get(&format!("/pays?bookId={book_id}"))
            .await
            .expect(200),
        json!([])
    );
    app.shutdown().await;
}

/// A card token of the simulated network's format, as anyone can write one.
const FORGED_TOKEN: &str = "tok_4242_ok_0123456789abcdef";

/// The trip's payments, as its customer reads them.
async fn pays_of(api: &Api, book_id: &str) -> serde_json::Value {
    api.get(&format!("/pays?bookId={book_id}"))
        .await
        .expect(200)
}

/// The fare is dispatch's: nobody sets it by paying first. `POST /pays` is not routed by the
/// gateway (405, in both topologies), so neither the customer (1 won) nor a stranger (9,999,999
/// won) can record a payment, and the trip is charged what its meter says.
pub async fn the_fare_cannot_be_set_by_paying_first(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.register_driver("fix", NEAR).await;
    api.online("fix").await;
    let (book_id, dispatch_id) = api.ride_to_in_trip("cust-fix", GOOD_CARD, "fix").await;

    for amount in [1, 9_999_999] {
        let forged = json!({"bookId": book_id, "dispatchId": dispatch_id, "amount": amount,
                            "cardToken": FORGED_TOKEN});
        api.post("/pays", forged)
            .await
            .expect_problem(405, "method_not_allowed");
    }
    assert_eq!(pays_of(api, &book_id).await, json!([]));

    let ended = api
        .post(
            &format!("/dispatches/{dispatch_id}/end"),
            json!({"driverId": "fix", "distanceMeters": 10_000}),
        )
        .await
        .expect(200);
    assert_eq!(ended["fare"], 11_200);
    let pays = pays_of(api, &book_id).await;
    assert_eq!(pays.as_array().unwrap().len(), 1, "{pays}");
    assert_eq!(pays[0]["amount"], 11_200);
    assert_eq!(api.book_status(&book_id, "COMPLETED").await["fare"], 11_200);
    app.shutdown().await;
}

/// A driver's `distanceMeters` far from the trip is refused (400 `implausible_distance`) and
/// changes nothing; a long one is accepted when the locations the driver reported on the way
/// show the detour.
pub async fn an_implausible_distance_is_refused_and_the_trip_stays_in_trip(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.register_driver("odo", NEAR).await;
    api.online("odo").await;
    let (book_id, dispatch_id) = api.ride_to_in_trip("cust-odo", GOOD_CARD, "odo").await;
    let end = format!("/dispatches/{dispatch_id}/end");

    // City Hall to Gangnam is 8.8 km in a straight line.
    for metres in [1_000_000, 28_000, 100] {
        api.post(&end, json!({"driverId": "odo", "distanceMeters": metres}))
            .await
            .expect_problem(400, "implausible_distance");
    }
    assert_eq!(
        api.get(&format!("/dispatches/{dispatch_id}"))
            .await
            .expect(200)["status"],
        "IN_TRIP"
    );
    assert_eq!(
        api.get(&format!("/books/{book_id}")).await.expect(200)["status"],
        "IN_TRIP"
    );
    assert_eq!(pays_of(api, &book_id).await, json!([]));

    // A detour by way of a point 10 km north of City Hall, reported as it was driven: 29 km.
    for at in [(37.6563, 126.9779), GANGNAM] {
        api.put("/drivers/odo/location", json!({"lat": at.0, "lng": at.1}))
            .await
            .expect(200);
    }
    let ended = api
        .post(&end, json!({"driverId": "odo", "distanceMeters": 28_000}))
        .await
        .expect(200);
    assert_eq!(ended["fare"], 4800 + 100 * ((28_000 - 1600) / 131));
    api.book_status(&book_id, "COMPLETED").await;
    app.shutdown().await;
}

pub async fn the_breaker_opens_while_the_card_network_is_down_and_the_trip_completes_after_recovery(
    t: Topology,
) {
    let app = TestApp::spawn_with(t, |c| {
        c.services.dispatch.payment.retries = 0;
        c.services.dispatch.payment.breaker_failures = 2;
        // Long enough that the calls below find it open however slow the machine; the recovery
        // below waits for it to half-open rather than for a fixed time.
        c.services.dispatch.payment.breaker_open_for = Duration::from_secs(3);
    })
    .await;
    let api = &app.api;
    api.register_driver("brk", NEAR).await;
    api.online("brk").await;
    let (book_id, dispatch_id) = api.ride_to_in_trip("cust-brk", GOOD_CARD, "brk").await;
    let end = format!("/dispatches/{dispatch_id}/end");

    api.put("/admin/card-network", json!({"latencyMs": 0, "down": true}))
        .await
        .expect(200);
    for _ in 0..2 {
        api.post(&end, json!({"driverId": "brk"}))
            .await
            .expect_problem(503, "payment_unavailable");
    }
    // Open: fails fast, says when to retry, and the trip is untouched.
    let open = api.post(&end, json!({"driverId": "brk"})).await;
    assert!(open.headers.contains_key("retry-after"));
    open.expect_problem(503, "payment_unavailable");
    if t == Topology::AllInOne {
        // (Distributed, the gauge is on dispatch's own /metrics, not the gateway's.)
        let metrics = api
            .send(api.http.get(format!("{}/metrics", api.base)))
            .await;
        assert!(
            metrics
                .body
                .as_str()
                .unwrap()
                .contains("tanda_breaker_state{name=\"pay\"} 2"),
            "breaker shows open"
        );
    }
    assert_eq!(
        api.get(&format!("/dispatches/{dispatch_id}"))
            .await
            .expect(200)["status"],
        "IN_TRIP"
    );
    assert_eq!(
        api.get(&format!("/books/{book_id}")).await.expect(200)["status"],
        "IN_TRIP"
    );

    // Recovery: after the open period a trial call goes through and the ride completes.
    api.put(
        "/admin/card-network",
        json!({"latencyMs": 0, "down": false}),
    )
    .await
    .expect(200);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let ended = loop {
        let answer = api
            .post(&end, json!({"driverId": "brk", "distanceMeters": 10_000}))
            .await;
        if answer.status != 503 {
            break answer.expect(200);
        }
        answer.expect_problem(503, "payment_unavailable");
        assert!(
            std::time::Instant::now() < deadline,
            "the breaker never let a call through"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ended["fare"], 11_200);
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
    app.shutdown().await;
}

pub async fn cancel_before_accept_withdraws_the_offer(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.register_driver("c1", NEAR).await;
    api.online("c1").await;
    let book_id = api.book("cust-c1", GOOD_CARD).await["bookId"]
        .as_str()
        .unwrap()
        .to_owned();
    let dispatch_id = api.offer_for("c1").await["dispatchId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancelling = api
        .post_empty(&format!("/books/{book_id}/cancel"))
        .await
        .expect(202);
    assert_eq!(cancelling["status"], "CANCEL_REQUESTED");
    api.book_status(&book_id, "CANCELLED_BY_CUSTOMER").await;
    assert_eq!(
        api.get(&format!("/dispatches/{dispatch_id}"))
            .await
            .expect(200)["status"],
        "CANCELLED"
    );
    api.driver_status("c1", "AVAILABLE").await;
    assert_eq!(api.get("/drivers/c1/offers").await.expect(200), json!([]));
    api.post(
        &format!("/dispatches/{dispatch_id}/accept"),
        json!({"driverId": "c1"}),
    )
    .await
    .expect(409);
    api.post_empty(&format!("/books/{book_id}/cancel"))
        .await
        .expect(409);
    wait_subject(api, "customer:cust-c1", "book.cancelled").await;
    app.shutdown().await;
}

pub async fn cancel_after_dispatch_frees_the_driver(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.register_driver("c2", NEAR).await;
    api.online("c2").await;
    let book_id = api.book("cust-c2", GOOD_CARD).await["bookId"]
        .as_str()
        .unwrap()
        .to_owned();
    let dispatch_id = api.offer_for("c2").await["dispatchId"]
        .as_str()
        .unwrap()
        .to_owned();
    api.post(
        &format!("/dispatches/{dispatch_id}/accept"),
        json!({"driverId": "c2"}),
    )
    .await
    .expect(200);
    api.book_status(&book_id, "DISPATCHED").await;
    api.post_empty(&format!("/books/{book_id}/cancel"))
        .await
        .expect(202);
    api.book_status(&book_id, "CANCELLED_BY_CUSTOMER").await;
    assert_eq!(
        api.get(&format!("/dispatches/{dispatch_id}"))
            .await
            .expect(200)["status"],
        "CANCELLED"
    );
    api.driver_status("c2", "AVAILABLE").await;
    wait_subject(api, "driver:c2", "ride.cancelled").await;
    // The freed driver can take the next ride.
    let next = api.book("cust-c2b", GOOD_CARD).await;
    assert_eq!(api.offer_for("c2").await["bookId"], next["bookId"]);
    app.shutdown().await;
}

pub async fn cancel_after_boarding_is_refused(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.register_driver("c3", NEAR).await;
    api.online("c3").await;
    let (book_id, dispatch_id) = api.ride_to_in_trip("cust-c3", GOOD_CARD, "c3").await;
    api.post_empty(&format!("/books/{book_id}/cancel"))
        .await
        .expect_problem(409, "trip_started");
    assert_eq!(
        api.get(&format!("/dispatches/{dispatch_id}"))
            .await
            .expect(200)["status"],
        "IN_TRIP"
    );
    app.shutdown().await;
}

pub async fn cancel_racing_boarding_resolves_to_the_trip(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.register_driver("c4", NEAR).await;
    api.online("c4").await;
    let book_id = api.book("cust-c4", GOOD_CARD).await["bookId"]
        .as_str()
        .unwrap()
        .to_owned();
    let dispatch_id = api.offer_for("c4").await["dispatchId"]
        .as_str()
        .unwrap()
        .to_owned();
    api.post(
        &format!("/dispatches/{dispatch_id}/accept"),
        json!({"driverId": "c4"}),
    )
    .await
    .expect(200);
    api.book_status(&book_id, "DISPATCHED").await;

    // Book has not yet heard that the customer boarded when the cancel arrives.
    api.post_empty("/admin/consumers/book/pause")
        .await
        .expect(200);
    api.post(
        &format!("/dispatches/{dispatch_id}/start"),
        json!({"driverId": "c4"}),
    )
    .await
    .expect(200);
    assert_eq!(
        api.post_empty(&format!("/books/{book_id}/cancel"))
            .await
            .expect(202)["status"],
        "CANCEL_REQUESTED"
    );
    api.post_empty("/admin/consumers/book/resume")
        .await
        .expect(200);

    // Dispatch refuses (the trip started) and the booking returns to the trip: one outcome.
    api.book_status(&book_id, "IN_TRIP").await;
    assert_eq!(
        api.get(&format!("/dispatches/{dispatch_id}"))
            .await
            .expect(200)["status"],
        "IN_TRIP"
    );
    wait_subject(api, "customer:cust-c4", "cancel.rejected").await;
    let ended = api
        .post(
            &format!("/dispatches/{dispatch_id}/end"),
            json!({"driverId": "c4"}),
        )
        .await
        .expect(200);
    assert_eq!(ended["status"], "ENDED");
    api.book_status(&book_id, "COMPLETED").await;
    app.shutdown().await;
}

/// How long the booking in `nobody_accepts_…` searches.
const SEARCH_DEADLINE: Duration = Duration::from_secs(4);

pub async fn nobody_accepts_so_the_system_cancels_within_the_deadline_and_tells_the_customer(
    t: Topology,
) {
    // The deadline leaves the first offer time to be made and run out on a loaded machine
    // (the second driver is offered the ride only after that).
    let app = TestApp::spawn_with(t, |c| {
        c.services.dispatch.offer_timeout = Duration::from_millis(300);
        c.services.dispatch.search.deadline = SEARCH_DEADLINE;
    })
    .await;
    let api = &app.api;
    for (id, at) in [("n1", NEAR), ("n2", MID)] {
        api.register_driver(id, at).await;
        api.online(id).await;
    }
    let book_id = api.book("cust-n", GOOD_CARD).await["bookId"]
        .as_str()
        .unwrap()
        .to_owned();
    // The offer moves on when it expires: the second driver gets it too. (Their notifications
    // stay, where an offer is on a driver's list only until it expires.)
    wait_subject(api, "driver:n1", "ride.offered").await;
    wait_subject(api, "driver:n2", "ride.offered").await;
    let cancelled = api.book_status(&book_id, "CANCELLED_BY_SYSTEM").await;
    let took = millis(&cancelled["updatedAt"]) - millis(&cancelled["createdAt"]);
    // Not before the deadline (how soon after it is the timers' latency: a benchmark's business).
    let deadline = i64::try_from(SEARCH_DEADLINE.as_millis()).unwrap();
    assert!(
        took >= deadline,
        "answered {took} ms after it was accepted, before the {deadline} ms deadline"
    );
    // Book's answer and dispatch's own deadline come due together: whichever acts first, the
    // search ends once, failed (dispatch's timer) or cancelled as expired (book's).
    let path = format!("/dispatches?bookId={book_id}");
    let dispatch = &api
        .eventually(&path, "the search closed", |list| {
            matches!(list[0]["status"].as_str(), Some("FAILED" | "CANCELLED"))
        })
        .await[0];
    let closed = millis(&dispatch["updatedAt"]) - millis(&cancelled["createdAt"]);
    assert!(
        closed >= deadline,
        "closed {closed} ms after the booking, before its deadline"
    );
    wait_subject(api, "customer:cust-n", "dispatch.failed").await;
    // The first driver let the offer run out, and was told it had gone to someone else.
    wait_subject(api, "driver:n1", "offer.expired").await;
    api.driver_status("n1", "AVAILABLE").await;
    api.driver_status("n2", "AVAILABLE").await;
    app.shutdown().await;
}

fn millis(rfc3339: &serde_json::Value) -> i64 {
    let t = humantime::parse_rfc3339(rfc3339.as_str().unwrap()).unwrap();
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

pub async fn with_no_driver_online_booking_answers_503_with_retry_after(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.register_driver("off", NEAR).await; // registered but offline
    let a = api.post("/books", Api::booking("cust-x", GOOD_CARD)).await;
    assert_eq!(a.headers.get("retry-after").unwrap(), "7");
    a.expect_problem(503, "no_taxi_available");
    assert_eq!(
        api.get("/books?customerId=cust-x").await.expect(200),
        json!([])
    );
    app.shutdown().await;
}

pub async fn a_creating_post_with_an_idempotency_key_creates_once(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.register_driver("idem", NEAR).await;
    api.online("idem").await;
    let post = |body: serde_json::Value, key: &'static str| {
        api.send(
            api.http
                .post(format!("{}/books", api.base))
                .header("Idempotency-Key", key)
                .json(&body),
        )
    };
    // Until book hears that a driver is available it answers 503, and a 503 keeps nothing.
    let first = loop {
        let a = post(Api::booking("cust-i", GOOD_CARD), "key-1").await;
        if a.status != 503 {
            break a.expect(201);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let again = post(Api::booking("cust-i", GOOD_CARD), "key-1")
        .await
        .expect(201);
    assert_eq!(first["bookId"], again["bookId"]);
    assert_eq!(
        api.get("/books?customerId=cust-i")
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    post(Api::booking("cust-other", GOOD_CARD), "key-1")
        .await
        .expect_problem(422, "idempotency_key_reused");

    let driver = json!({"driverId": "idem-2", "name": "Kim", "carNumber": "34나5678", "phone": "010-9999-0000",
                        "location": {"lat": MID.0, "lng": MID.1}});
    let d1 = api
        .send(
            api.http
                .post(format!("{}/drivers", api.base))
                .header("Idempotency-Key", "drv")
                .json(&driver),
        )
        .await;
    let d2 = api
        .send(
            api.http
                .post(format!("{}/drivers", api.base))
                .header("Idempotency-Key", "drv")
                .json(&driver),
        )
        .await;
    assert_eq!(d1.expect(201), d2.expect(201));
    api.post("/drivers", driver)
        .await
        .expect_problem(409, "driver_exists");
    app.shutdown().await;
}

pub async fn bad_input_gets_problems_and_changes_nothing(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.register_driver("bad", NEAR).await;
    api.online("bad").await;
    api.book("warm-up", GOOD_CARD).await;

    api.post("/books", Api::booking("cust-b", "4242424242424241"))
        .await
        .expect(400);
    let mut b = Api::booking("cust-b", GOOD_CARD);
    b["pickup"]["lat"] = json!(91.0);
    api.post("/books", b).await.expect(400);
    let mut b = Api::booking("cust-b", GOOD_CARD);
    b["customerId"] = json!("no spaces allowed");
    api.post("/books", b).await.expect(400);
    let mut b = Api::booking("cust-b", GOOD_CARD);
    b.as_object_mut().unwrap().remove("dropoff");
    api.post("/books", b)
        .await
        .expect_problem(400, "missing_field");
    let raw = api
        .send(
            api.http
                .post(format!("{}/books", api.base))
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    raw.expect_problem(400, "invalid_body");
    assert_eq!(
        api.get("/books?customerId=cust-b").await.expect(200),
        json!([])
    );

    api.get("/books/no-such-book")
        .await
        .expect_problem(404, "not_found");
    api.get("/drivers/nobody")
        .await
        .expect_problem(404, "not_found");
    api.get("/dispatches/nothing")
        .await
        .expect_problem(404, "not_found");
    api.get("/rideHistories/nothing")
        .await
        .expect_problem(404, "not_found");
    api.get("/no/such/path")
        .await
        .expect_problem(404, "not_found");
    api.post("/drivers", json!({"driverId": "a b", "name": "x", "carNumber": "1", "phone": "010-1111-2222", "location": {"lat": 0, "lng": 0}}))
        .await
        .expect(400);
    api.put("/drivers/bad/location", json!({"lat": 37.5, "lng": 181}))
        .await
        .expect(400);
    api.post("/dispatches/nothing/accept", json!({"driverId": "bad"}))
        .await
        .expect(404);
    api.get("/notifications?receiver=nobody")
        .await
        .expect_problem(400, "invalid_receiver");
    app.shutdown().await;
}

pub async fn rides_complete_while_ride_history_is_down_and_it_catches_up(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.register_driver("iso", NEAR).await;
    api.online("iso").await;
    api.post_empty("/admin/consumers/ride-history/pause")
        .await
        .expect(200);

    let mut books = Vec::new();
    for i in 0..3 {
        let (book_id, dispatch_id) = api.ride_to_in_trip("cust-iso", GOOD_CARD, "iso").await;
        api.post(
            &format!("/dispatches/{dispatch_id}/end"),
            json!({"driverId": "iso", "distanceMeters": 10_000 + i}),
        )
        .await
        .expect(200);
        api.book_status(&book_id, "COMPLETED").await;
        api.driver_status("iso", "AVAILABLE").await;
        books.push(book_id);
    }
    assert_eq!(
        api.get("/rideHistories?customerId=cust-iso")
            .await
            .expect(200),
        json!([])
    );

    api.post_empty("/admin/consumers/ride-history/resume")
        .await
        .expect(200);
    api.eventually("/rideHistories?customerId=cust-iso", "every ride", |list| {
        list.as_array().unwrap().len() == 3
            && list
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["bookStatus"] == "COMPLETED" && h["fare"] == 11_200)
    })
    .await;
    app.shutdown().await;
}

pub async fn operations_endpoints(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    assert_eq!(api.get("/healthz").await.expect(200)["status"], "ok");
    assert_eq!(api.get("/readyz").await.expect(200)["ready"], true);
    assert_eq!(api.get("/admin/dead-letters").await.expect(200), json!([]));
    api.post_empty("/admin/dead-letters/nope/redrive")
        .await
        .expect_problem(404, "not_found");
    let r = api
        .send(api.http.get(format!("{}/healthz", api.base)))
        .await;
    assert!(r.headers.contains_key("x-request-id"));
    api.get("/books/x").await;
    let metrics = api
        .send(api.http.get(format!("{}/metrics", api.base)))
        .await;
    let text = metrics.body.as_str().unwrap();
    assert!(text.contains("tanda_http_requests_total"));
    // Latencies as histograms with fixed buckets, which add up across replicas; a summary's
    // quantiles do not.
    assert!(
        text.lines().any(
            |l| l.starts_with("tanda_http_request_duration_seconds_bucket{")
                && l.contains("le=\"0.005\"")
        ),
        "{text}"
    );
    assert!(!text.contains("quantile="), "{text}");
    app.shutdown().await;
}

/// Notify is down for a whole ride and a reservation; when it is back it learns of book's,
/// dispatch's, pay's, reservation's, payment's and ticket's events source by source. Each
/// person's list still reads in the order things happened.
pub async fn the_story_reads_in_order_after_a_notify_outage(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.register_driver("story-d", NEAR).await;
    api.online("story-d").await;
    api.flight("KE77", 5).await;
    api.post_empty("/admin/consumers/notify/pause")
        .await
        .expect(200);

    let (book_id, dispatch_id) = api.ride_to_in_trip("story-c", GOOD_CARD, "story-d").await;
    api.post(
        &format!("/dispatches/{dispatch_id}/end"),
        json!({"driverId": "story-d", "distanceMeters": 5_000}),
    )
    .await
    .expect(200);
    api.book_status(&book_id, "COMPLETED").await;
    api.deposit("story-u", 1000).await;
    let reservation = api.reserve("story-u", "KE77").await.expect(201);
    let reservation_id = reservation["reservationId"].as_str().unwrap().to_owned();
    api.reservation_status(&reservation_id, "CONFIRMED").await;

    api.post_empty("/admin/consumers/notify/resume")
        .await
        .expect(200);
    for (receiver, story) in [
        (
            "customer:story-c",
            [
                "book.requested",
                "taxi.dispatched",
                "trip.started",
                "trip.ended",
            ]
            .as_slice(),
        ),
        (
            "user:story-u",
            ["payment.succeeded", "ticket.issued"].as_slice(),
        ),
    ] {
        // Each stream is caught up on by itself (distributed, by partition): wait for all of it.
        for subject in story {
            wait_subject(api, receiver, subject).await;
        }
        let newest_first = api
            .get(&format!("/notifications?receiver={receiver}"))
            .await
            .expect(200);
        let list = newest_first.as_array().unwrap();
        let told: Vec<&str> = list
            .iter()
            .rev()
            .map(|n| n["subject"].as_str().unwrap())
            .collect();
        let at = |needle: &str| {
            told.iter()
                .position(|m| *m == needle)
                .unwrap_or_else(|| panic!("{receiver} was not told {needle:?}: {told:?}"))
        };
        for pair in story.windows(2) {
            assert!(at(pair[0]) < at(pair[1]), "{receiver}: {told:?}");
        }
        let times: Vec<&str> = list
            .iter()
            .map(|n| n["occurredAt"].as_str().unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] >= w[1]),
            "{receiver}: not newest first by occurrence: {newest_first}"
        );
    }
    app.shutdown().await;
}

/// The only free driver is 6 km north of City Hall, just beyond the 5 km pickup radius but close
/// enough that book's quick check (which allows for the area cell its projection may be off by)
/// takes the booking: dispatch never offers it to them. The booking waits for a nearby driver
/// and, none coming, gets the system's answer at the deadline; a driver who comes online within
/// the radius is offered the next one.
pub async fn a_driver_outside_the_pickup_radius_is_never_offered(t: Topology) {
    let app = TestApp::spawn_with(t, |c| {
        c.services.dispatch.search.deadline = Duration::from_millis(1500);
        c.services.dispatch.search.max_pickup_m = 5_000.0;
    })
    .await;
    let api = &app.api;
    api.register_driver("outer", JUST_OUTSIDE).await;
    api.online("outer").await;
    let first = api.book("cust-r", GOOD_CARD).await;
    api.book_status(first["bookId"].as_str().unwrap(), "CANCELLED_BY_SYSTEM")
        .await;
    wait_subject(api, "customer:cust-r", "dispatch.failed").await;
    api.driver_status("outer", "AVAILABLE").await;

    api.register_driver("seoul", MID).await;
    api.online("seoul").await;
    api.book("cust-r", GOOD_CARD).await;
    api.offer_for("seoul").await;
    assert_eq!(
        api.get("/drivers/outer/offers").await.expect(200),
        json!([])
    );
    // Notify words dispatch's events in order: once the driver within the radius has heard of
    // their offer, any offer made earlier would have reached the one outside it too.
    wait_subject(api, "driver:seoul", "ride.offered").await;
    assert_eq!(
        api.messages("driver:outer").await,
        Vec::<String>::new(),
        "a driver 6 km away was offered the ride"
    );
    app.shutdown().await;
}

// ---- after a declined card ----------------------------------------------------------------

/// Waits until `receiver` has a notification with this `subject`.
async fn wait_subject(api: &Api, receiver: &str, subject: &str) {
    let path = format!("/notifications?receiver={receiver}");
    api.eventually(&path, subject, |list| {
        list.as_array()
            .is_some_and(|l| l.iter().any(|n| n["subject"] == subject))
    })
    .await;
}

/// Ends the trip, again while the charge is declined: dispatch hears of a replaced card a moment
/// after book took it. Returns the ended dispatch.
async fn end_once_paid(api: &Api, dispatch_id: &str, body: serde_json::Value) -> serde_json::Value {
    let path = format!("/dispatches/{dispatch_id}/end");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = api.post(&path, body.clone()).await;
        if answer.status != 402 || std::time::Instant::now() > deadline {
            return answer.expect(200);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The card is declined at the end of the trip: the driver is answered 402 and the customer is
/// told at once; the customer replaces the card (only a valid one, and only their own booking's
/// while it is open), and the driver's next end charges the new card.
pub async fn a_declined_card_is_replaced_and_the_ride_is_paid(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.register_driver("rep", NEAR).await;
    api.online("rep").await;
    let (book_id, dispatch_id) = api.ride_to_in_trip("cust-rep", DECLINED_CARD, "rep").await;
    let ride = json!({"driverId": "rep", "distanceMeters": 10_000});
    api.post(&format!("/dispatches/{dispatch_id}/end"), ride.clone())
        .await
        .expect_problem(402, "card_declined");
    wait_subject(api, "customer:cust-rep", "payment.declined").await;

    let card = format!("/books/{book_id}/card");
    api.put(&card, json!({"card": "4242424242424241"}))
        .await
        .expect_problem(400, "invalid_card");
    api.put(&card, json!({}))
        .await
        .expect_problem(400, "missing_field");
    api.put("/books/no-such-book/card", json!({"card": GOOD_CARD}))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(
        api.get(&format!("/books/{book_id}")).await.expect(200)["cardLast4"],
        "0002",
        "a refused card changes nothing"
    );
    let replaced = api.put(&card, json!({"card": GOOD_CARD})).await.expect(200);
    assert_eq!(replaced["cardLast4"], "4242");
    assert_eq!(replaced["status"], "IN_TRIP");
    assert!(!replaced.to_string().contains(GOOD_CARD));

    let ended = end_once_paid(api, &dispatch_id, ride).await;
    assert_eq!(ended["status"], "ENDED");
    assert_eq!(ended["fare"], 11_200);
    let pays = pays_of(api, &book_id).await;
    assert_eq!(pays.as_array().unwrap().len(), 1, "{pays}");
    assert_eq!(pays[0]["payId"], ended["payId"]);
    assert_eq!(pays[0]["method"], "CARD");
    assert_eq!(pays[0]["cardLast4"], "4242");
    assert_eq!(pays[0]["amount"], 11_200);
    assert_eq!(api.book_status(&book_id, "COMPLETED").await["fare"], 11_200);
    api.driver_status("rep", "AVAILABLE").await;
    let history = api
        .eventually(&format!("/rideHistories/{book_id}"), "the paid ride", |h| {
            h["bookStatus"] == "COMPLETED" && h["paymentMethod"].is_string()
        })
        .await;
    assert_eq!(history["paymentMethod"], "CARD");
    assert_eq!(history["fare"], 11_200);
    api.put(&card, json!({"card": GOOD_CARD}))
        .await
        .expect_problem(409, "already_completed");
    app.shutdown().await;
}

/// The card is declined and the customer pays the driver in cash: the driver ends the trip with
/// `settlement: "CASH"`, pay records the fare dispatch computed as paid in cash (no card), and the
/// driver is free again — free to go off line.
pub async fn a_declined_card_is_settled_in_cash_and_the_driver_is_free(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.register_driver("cash", NEAR).await;
    api.online("cash").await;
    let (book_id, dispatch_id) = api
        .ride_to_in_trip("cust-cash", DECLINED_CARD, "cash")
        .await;
    let end = format!("/dispatches/{dispatch_id}/end");
    api.post(&end, json!({"driverId": "cash", "distanceMeters": 10_000}))
        .await
        .expect_problem(402, "card_declined");
    api.post_empty("/drivers/cash/offline")
        .await
        .expect_problem(409, "driver_busy");
    for settlement in [json!("CHEQUE"), json!(1), json!("cash")] {
        api.post(
            &end,
            json!({"driverId": "cash", "distanceMeters": 10_000, "settlement": settlement}),
        )
        .await
        .expect_problem(400, "invalid_settlement");
    }
    assert_eq!(
        api.get(&format!("/dispatches/{dispatch_id}"))
            .await
            .expect(200)["status"],
        "IN_TRIP"
    );

    let ended = api
        .post(
            &end,
            json!({"driverId": "cash", "distanceMeters": 10_000, "settlement": "CASH"}),
        )
        .await
        .expect(200);
    assert_eq!(ended["status"], "ENDED");
    assert_eq!(ended["fare"], 11_200);
    let pays = pays_of(api, &book_id).await;
    assert_eq!(pays.as_array().unwrap().len(), 1, "{pays}");
    assert_eq!(pays[0]["payId"], ended["payId"]);
    assert_eq!(pays[0]["method"], "CASH");
    assert_eq!(pays[0]["amount"], 11_200);
    assert!(pays[0].get("cardLast4").is_none(), "{pays}");
    assert_eq!(api.book_status(&book_id, "COMPLETED").await["fare"], 11_200);
    api.driver_status("cash", "AVAILABLE").await;
    assert_eq!(
        api.post_empty("/drivers/cash/offline").await.expect(200)["status"],
        "OFFLINE"
    );
    let history = api
        .eventually(&format!("/rideHistories/{book_id}"), "the paid ride", |h| {
            h["bookStatus"] == "COMPLETED" && h["paymentMethod"].is_string()
        })
        .await;
    assert_eq!(history["paymentMethod"], "CASH");
    app.shutdown().await;
}

// ---- book answers by the deadline ----------------------------------------------------------

/// Dispatch hears nothing while its consumer is paused, yet the customer is answered by the
/// deadline: book's own timer cancels the booking and tells them. Once dispatch catches up, the
/// booking is past its answer and nobody is offered it.
pub async fn with_dispatch_paused_the_customer_is_answered_by_the_deadline_and_nothing_is_offered_after(
    t: Topology,
) {
    let app = TestApp::spawn_with(t, |c| {
        c.services.dispatch.search.deadline = Duration::from_secs(2);
    })
    .await;
    let api = &app.api;
    api.register_driver("pz", NEAR).await;
    api.online("pz").await;
    api.post_empty("/admin/consumers/dispatch/pause")
        .await
        .expect(200);

    let book = api.book("cust-pz", GOOD_CARD).await;
    let book_id = book["bookId"].as_str().unwrap().to_owned();
    assert_eq!(
        millis(&book["answerBy"]) - millis(&book["createdAt"]),
        2_000,
        "{book}"
    );
    let cancelled = api.book_status(&book_id, "CANCELLED_BY_SYSTEM").await;
    let took = millis(&cancelled["updatedAt"]) - millis(&cancelled["createdAt"]);
    assert!(
        took >= 2_000,
        "answered {took} ms after it was accepted, before the 2 s deadline"
    );
    wait_subject(api, "customer:cust-pz", "dispatch.failed").await;

    api.post_empty("/admin/consumers/dispatch/resume")
        .await
        .expect(200);
    // Dispatch records that the booking came too late, and offers it to nobody.
    let path = format!("/dispatches?bookId={book_id}");
    let dispatches = api
        .eventually(&path, "dispatch to hear of the booking", |list| {
            list.as_array().is_some_and(|l| !l.is_empty())
        })
        .await;
    assert_eq!(dispatches[0]["status"], "FAILED", "{dispatches}");
    assert!(dispatches[0].get("offer").is_none(), "{dispatches}");
    assert_eq!(api.get("/drivers/pz/offers").await.expect(200), json!([]));
    assert_eq!(
        api.get("/drivers/pz").await.expect(200)["status"],
        "AVAILABLE"
    );
    assert_eq!(
        api.get(&format!("/books/{book_id}")).await.expect(200)["status"],
        "CANCELLED_BY_SYSTEM",
        "the answer the customer got stands"
    );
    app.shutdown().await;
}

/// The late-dispatch race: a driver accepts just before the deadline, but book has not heard of
/// it (its consumer is paused) when its timer answers the customer. Book's answer stands;
/// dispatch cancels the dispatch as expired and frees the driver.
pub async fn a_dispatch_that_lands_after_the_system_cancel_is_compensated(t: Topology) {
    let app = TestApp::spawn_with(t, |c| {
        c.services.dispatch.search.deadline = Duration::from_secs(4);
    })
    .await;
    let api = &app.api;
    api.register_driver("late", NEAR).await;
    api.online("late").await;
    let book_id = api.book("cust-late", GOOD_CARD).await["bookId"]
        .as_str()
        .unwrap()
        .to_owned();
    let dispatch_id = api.offer_for("late").await["dispatchId"]
        .as_str()
        .unwrap()
        .to_owned();
    api.post_empty("/admin/consumers/book/pause")
        .await
        .expect(200);
    let accepted = api
        .post(
            &format!("/dispatches/{dispatch_id}/accept"),
            json!({"driverId": "late"}),
        )
        .await
        .expect(200);
    assert_eq!(accepted["status"], "DISPATCHED");

    api.book_status(&book_id, "CANCELLED_BY_SYSTEM").await;
    let dispatch_path = format!("/dispatches/{dispatch_id}");
    api.eventually(&dispatch_path, "the dispatch cancelled", |d| {
        d["status"] == "CANCELLED"
    })
    .await;
    api.driver_status("late", "AVAILABLE").await;

    api.post_empty("/admin/consumers/book/resume")
        .await
        .expect(200);
    // Book hears of the taxi now, and of its cancel: the answer the customer got stands.
    let history = api
        .eventually(
            &format!("/rideHistories/{book_id}"),
            "the ride's story",
            |h| h["dispatchStatus"] == "CANCELLED",
        )
        .await;
    assert_eq!(history["bookStatus"], "CANCELLED_BY_SYSTEM");
    wait_subject(api, "customer:cust-late", "dispatch.failed").await;
    assert_eq!(
        api.get(&format!("/books/{book_id}")).await.expect(200)["status"],
        "CANCELLED_BY_SYSTEM"
    );
    assert_eq!(
        api.get(&dispatch_path).await.expect(200)["status"],
        "CANCELLED"
    );
    // The freed driver takes the next ride.
    let next = api.book("cust-late2", GOOD_CARD).await;
    assert_eq!(api.offer_for("late").await["bookId"], next["bookId"]);
    app.shutdown().await;
}

// ---- book's quick refusal looks near the pickup -------------------------------------------

/// Book refuses at once (503) when no free driver is anywhere near the pickup — a free driver
/// 30 km away does not count — and takes the booking once one has moved close.
pub async fn booking_far_from_every_free_driver_answers_503(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.register_driver("roam", NEAR).await;
    api.online("roam").await;
    // Book has heard that the driver is free: it takes a booking (which the customer cancels).
    let probe = api.book("cust-probe", GOOD_CARD).await;
    let probe_id = probe["bookId"].as_str().unwrap().to_owned();
    api.offer_for("roam").await;
    api.post_empty(&format!("/books/{probe_id}/cancel"))
        .await
        .expect(202);
    api.book_status(&probe_id, "CANCELLED_BY_CUSTOMER").await;
    api.driver_status("roam", "AVAILABLE").await;

    // The only free driver drives 30 km out of town.
    api.put(
        "/drivers/roam/location",
        json!({"lat": OUT_OF_TOWN.0, "lng": OUT_OF_TOWN.1}),
    )
    .await
    .expect(200);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let a = api
            .post("/books", Api::booking("cust-far", GOOD_CARD))
            .await;
        if a.status == 503 {
            break a;
        }
        // Book had not heard of the move yet: that booking is not part of the story.
        let stray = a.expect(201)["bookId"].as_str().unwrap().to_owned();
        api.post_empty(&format!("/books/{stray}/cancel"))
            .await
            .expect(202);
        assert!(
            std::time::Instant::now() < deadline,
            "book kept taking bookings with its only free driver 30 km away"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refused.headers.get("retry-after").unwrap(), "7");
    refused.expect_problem(503, "no_taxi_available");
    assert_eq!(api.get("/drivers/roam/offers").await.expect(200), json!([]));

    // Back in town: book takes the next booking and the driver is offered it.
    api.put(
        "/drivers/roam/location",
        json!({"lat": MID.0, "lng": MID.1}),
    )
    .await
    .expect(200);
    let book = api.book("cust-far", GOOD_CARD).await;
    assert_eq!(api.offer_for("roam").await["bookId"], book["bookId"]);
    app.shutdown().await;
}
