//! The flight scenarios of seed 001, black-box over HTTP; run against each topology by the test
//! files that include this module (`tests/flight.rs`, `tests/distributed.rs`).

/// Every scenario of this file that runs on both topologies, listed once: `tests/flight.rs` runs
/// them all-in-one (`flight_scenarios!(AllInOne)`), `tests/distributed.rs` on the cluster.
#[macro_export]
macro_rules! flight_scenarios {
    ($topology:ident) => {
        tests_on!($topology, flight:
            a_funded_reservation_is_paid_ticketed_and_confirmed,
            an_underfunded_reservation_fails_debits_nothing_and_releases_the_seat,
            cancelling_refunds_once_voids_the_ticket_and_frees_the_seat,
            fifty_concurrent_reservations_for_ten_seats_sell_exactly_ten,
            reservations_are_taken_while_payment_is_down_and_complete_when_it_returns,
            bad_flight_input_gets_problems_and_changes_nothing,
            a_deposit_with_an_idempotency_key_counts_once,
            operators_see_every_service_ready_with_its_breakers_and_outbox,
            the_web_pages_are_served_by_the_gateway_over_the_public_api,
            a_departed_flight_is_neither_scheduled_nor_sold_nor_refunded,
            reservations_pause_while_payment_is_overloaded,
        );
    };
}

use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

pub async fn a_funded_reservation_is_paid_ticketed_and_confirmed(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    let flight = api.flight("KE1201", 10).await;
    assert_eq!(flight["price"], 100);
    assert_eq!(flight["seatsLeft"], 10);
    assert_eq!(api.balance("ew").await, 0);
    assert_eq!(api.deposit("ew", 150).await["balance"], 150);

    let r = api.reserve("ew", "KE1201").await.expect(201);
    assert_eq!(r["status"], "REQUESTED");
    assert_eq!(r["price"], 100);
    let id = r["reservationId"].as_str().unwrap().to_owned();
    assert_eq!(api.seats_left("KE1201").await, 9);

    let confirmed = api.reservation_status(&id, "CONFIRMED").await;
    let ticket_id = confirmed["ticketId"].as_str().unwrap().to_owned();
    assert_eq!(api.balance("ew").await, 50);
    let tickets = api.get("/tickets?userId=ew").await.expect(200);
    assert_eq!(tickets.as_array().unwrap().len(), 1);
    assert_eq!(tickets[0]["ticketId"], ticket_id.as_str());
    assert_eq!(tickets[0]["status"], "ISSUED");
    assert_eq!(tickets[0]["reservationId"], id.as_str());
    assert_eq!(tickets[0]["flightId"], "KE1201");

    // The front-end list (CQRS) and the alarms show it, in Korean: "ew" has no account, so no
    // language of their own, and Korean is the default.
    let view = api
        .eventually("/reservationViews?userId=ew", "a confirmed view", |v| {
            v[0]["status"] == "CONFIRMED" && v[0]["ticketId"].is_string()
        })
        .await;
    assert_eq!(view[0]["paymentStatus"], "PAID");
    assert_eq!(view[0]["from"], "GMP");
    assert_eq!(view[0]["to"], "CJU");
    assert_eq!(view[0]["price"], 100);
    api.wait_message("user:ew", "예약이 확정됐어요").await;
    api.wait_message("user:ew", "100원을 결제했어요").await;
    api.wait_message("user:ew", "탑승권이 발급됐어요").await;
    app.shutdown().await;
}

pub async fn an_underfunded_reservation_fails_debits_nothing_and_releases_the_seat(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.flight("OZ8901", 1).await;
    api.deposit("poor", 70).await;
    let id = api.reserve("poor", "OZ8901").await.expect(201)["reservationId"]
        .as_str()
        .unwrap()
        .to_owned();
    api.reservation_status(&id, "PAYMENT_FAILED").await;
    assert_eq!(api.balance("poor").await, 70);
    assert_eq!(api.seats_left("OZ8901").await, 1);
    assert_eq!(api.get("/tickets?userId=poor").await.expect(200), json!([]));
    api.wait_message("user:poor", "결제에 실패했어요").await;
    api.post_empty(&format!("/reservations/{id}/cancel"))
        .await
        .expect(409);
    app.shutdown().await;
}

pub async fn cancelling_refunds_once_voids_the_ticket_and_frees_the_seat(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.flight("KE1203", 2).await;
    api.deposit("ew", 150).await;
    let id = api.reserve("ew", "KE1203").await.expect(201)["reservationId"]
        .as_str()
        .unwrap()
        .to_owned();
    api.reservation_status(&id, "CONFIRMED").await;
    assert_eq!(api.balance("ew").await, 50);

    let cancelling = api
        .post_empty(&format!("/reservations/{id}/cancel"))
        .await
        .expect(202);
    assert_eq!(cancelling["status"], "CANCEL_REQUESTED");
    api.reservation_status(&id, "CANCELLED").await;
    assert_eq!(api.balance("ew").await, 150, "refunded +100 exactly once");
    assert_eq!(api.seats_left("KE1203").await, 2);
    let tickets = api.get("/tickets?userId=ew").await.expect(200);
    assert_eq!(tickets[0]["status"], "VOID");
    api.post_empty(&format!("/reservations/{id}/cancel"))
        .await
        .expect(409);
    api.settled().await;
    assert_eq!(
        api.balance("ew").await,
        150,
        "a second cancel refunds nothing"
    );
    api.eventually("/reservationViews?userId=ew", "a cancelled view", |v| {
        v[0]["status"] == "CANCELLED" && v[0]["paymentStatus"] == "REFUNDED"
    })
    .await;
    api.wait_message("user:ew", "100원을 환불했어요").await;
    api.wait_message("user:ew", "탑승권이 취소됐어요").await;
    app.shutdown().await;
}

pub async fn fifty_concurrent_reservations_for_ten_seats_sell_exactly_ten(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.flight("LJ301", 10).await;
    let users: Vec<String> = (0..50).map(|i| format!("u{i}")).collect();
    for u in &users {
        api.deposit(u, 100).await;
    }
    let answers = futures::future::join_all(users.iter().map(|u| api.reserve(u, "LJ301"))).await;
    let mut accepted = Vec::new();
    for (user, a) in users.iter().zip(answers) {
        match a.status.as_u16() {
            201 => accepted.push((
                user.clone(),
                a.body["reservationId"].as_str().unwrap().to_owned(),
            )),
            _ => {
                a.expect_problem(409, "sold_out");
            }
        }
    }
    assert_eq!(accepted.len(), 10);
    assert_eq!(api.seats_left("LJ301").await, 0);
    for (user, id) in &accepted {
        api.reservation_status(id, "CONFIRMED").await;
        assert_eq!(api.balance(user).await, 0);
    }
    let mut paid = 0;
    let mut tickets = 0;
    for u in &users {
        paid += 100 - api.balance(u).await;
        tickets += api
            .get(&format!("/tickets?userId={u}"))
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len();
    }
    assert_eq!(paid, 1000, "money and seats balance");
    assert_eq!(tickets, 10);
    app.shutdown().await;
}

pub async fn reservations_are_taken_while_payment_is_down_and_complete_when_it_returns(
    t: Topology,
) {
    let app = TestApp::spawn_with(t, |c| {
        c.services.reservation.payment_pending_after = Duration::from_millis(300);
    })
    .await;
    let api = &app.api;
    api.flight("KE1205", 5).await;
    for u in ["p1", "p2", "p3"] {
        api.deposit(u, 100).await;
    }
    api.post_empty("/admin/consumers/payment/pause")
        .await
        .expect(200);
    let mut ids = Vec::new();
    for u in ["p1", "p2", "p3"] {
        ids.push(
            api.reserve(u, "KE1205").await.expect(201)["reservationId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for id in &ids {
        api.reservation_status(id, "PENDING").await;
    }
    api.wait_message("user:p1", "대기 중").await;
    let consumers = api.get("/admin/consumers").await.expect(200);
    let payment = named(&consumers, "name", "payment");
    assert_eq!(payment["paused"], true);
    if t == Topology::AllInOne {
        // Exact where consumers tail the outboxes in-process; behind JetStream the figure is the
        // broker's as of the last delivery.
        assert!(payment["lag"].as_i64().unwrap() >= 3, "{payment}");
    }
    api.post_empty("/admin/consumers/payment/resume")
        .await
        .expect(200);
    for id in &ids {
        api.reservation_status(id, "CONFIRMED").await;
    }
    for u in ["p1", "p2", "p3"] {
        assert_eq!(api.balance(u).await, 0);
    }
    if t == Topology::AllInOne {
        api.eventually("/admin/consumers", "payment caught up", |list| {
            named(list, "name", "payment")["lag"] == 0
        })
        .await;
    }
    app.shutdown().await;
}

/// The element of the JSON array `list` whose `key` is `value`.
fn named<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|item| item[key] == value)
        .unwrap_or_else(|| panic!("no {key} = {value} in {list}"))
}

pub async fn operators_see_every_service_ready_with_its_breakers_and_outbox(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.flight("KE9", 3).await;
    let services = api.get("/admin/services").await.expect(200);
    let names: Vec<&str> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    for name in [
        "book",
        "dispatch",
        "pay",
        "ride-history",
        "reservation",
        "payment",
        "ticket",
        "reservation-view",
        "notify",
        "identity",
    ] {
        let service = named(&services, "service", name);
        assert_eq!(service["ready"], true, "{service}");
        assert_eq!(
            service["outboxUnpublished"].is_i64(),
            t == Topology::Distributed,
            "only a relay has an outbox to publish: {service}"
        );
    }
    assert_eq!(names.len(), 10, "each service once: {names:?}");
    assert_eq!(
        named(&services, "service", "dispatch")["breakers"],
        json!([{"name": "pay", "state": "CLOSED"}])
    );
    if t == Topology::Distributed {
        api.eventually("/admin/services", "the flight's event relayed", |list| {
            named(list, "service", "reservation")["outboxUnpublished"] == 0
        })
        .await;
    }
    app.shutdown().await;
}

pub async fn bad_flight_input_gets_problems_and_changes_nothing(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    let later = departs_in(Duration::from_secs(86_400));
    api.flight("KE1", 3).await;
    api.post(
        "/flights",
        json!({"flightId": "KE1", "from": "GMP", "to": "CJU", "departsAt": later, "seats": 3}),
    )
    .await
    .expect_problem(409, "flight_exists");
    for bad in [
        json!({"flightId": "bad id", "from": "GMP", "to": "CJU", "departsAt": later, "seats": 3}),
        json!({"flightId": "KE2", "from": "GMP", "to": "CJU", "departsAt": "tomorrow", "seats": 3}),
        json!({"flightId": "KE2", "from": "GMP", "to": "CJU", "departsAt": later, "seats": 0}),
        json!({"flightId": "KE2", "from": "GMP", "to": "CJU", "departsAt": later, "seats": 3, "price": -5}),
        json!({"flightId": "KE2", "from": "GMP", "to": "CJU"}),
    ] {
        assert_eq!(
            api.post("/flights", bad.clone()).await.status.as_u16(),
            400,
            "{bad}"
        );
    }
    api.get("/flights/KE2")
        .await
        .expect_problem(404, "not_found");
    assert_eq!(
        api.get("/flights")
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );

    api.reserve("ew", "NOPE")
        .await
        .expect_problem(404, "not_found");
    api.post("/reservations", json!({"userId": "e w", "flightId": "KE1"}))
        .await
        .expect(400);
    api.post("/reservations", json!({"userId": "ew"}))
        .await
        .expect(400);
    api.post("/accounts/ew/deposit", json!({"amount": 0}))
        .await
        .expect(400);
    api.post("/accounts/ew/deposit", json!({"amount": "lots"}))
        .await
        .expect(400);
    api.get("/accounts/e%20w").await.expect(400);
    assert_eq!(api.balance("ew").await, 0);
    api.get("/reservations/nothing")
        .await
        .expect_problem(404, "not_found");
    api.post_empty("/reservations/nothing/cancel")
        .await
        .expect_problem(404, "not_found");
    api.get("/tickets").await.expect(400);
    api.get("/reservationViews").await.expect(400);
    assert_eq!(api.seats_left("KE1").await, 3);
    app.shutdown().await;
}

pub async fn a_deposit_with_an_idempotency_key_counts_once(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    let deposit = || {
        api.send(
            api.http
                .post(format!("{}/accounts/ew/deposit", api.base))
                .header("Idempotency-Key", "dep-1")
                .json(&json!({"amount": 100})),
        )
    };
    assert_eq!(deposit().await.expect(200)["balance"], 100);
    assert_eq!(deposit().await.expect(200)["balance"], 100);
    assert_eq!(api.balance("ew").await, 100);
    app.shutdown().await;
}

pub async fn the_web_pages_are_served_by_the_gateway_over_the_public_api(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    api.flight("KE11", 4).await;
    api.signed_up("web-u", "customer").await;
    let traveller = api.page_session("web-u", &password_of("web-u")).await;
    let (status, _) = api
        .page_form(&traveller, "/ui/traveller/deposit", &[("amount", "250")])
        .await;
    assert_eq!(status, 200);
    let page = |session: &PageSession, path: &'static str| {
        let cookie = session.cookie.clone();
        async move {
            let r = api
                .http
                .get(format!("{}{path}", api.base))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            assert_eq!(
                r.headers()["content-type"],
                "text/html; charset=utf-8",
                "{path}"
            );
            r.text().await.unwrap()
        }
    };
    let html = page(&traveller, "/traveller").await;
    assert!(
        html.contains(r#"data-flight="KE11""#),
        "the flight is listed"
    );
    assert!(html.contains(r#"data-balance="250""#), "the wallet is read");
    assert!(
        page(&traveller, "/customer")
            .await
            .contains(r#"id="book-form""#)
    );
    // Without a session a page sends its reader to sign in.
    let r = no_redirects()
        .get(format!("{}/customer", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/signin?next=%2Fcustomer");
    let operator = api.page_session("operator", OPERATOR_PASSWORD).await;
    let panel = page(&operator, "/ui/operator/panel").await;
    assert_eq!(
        panel.matches(r#"data-ready="true""#).count(),
        10,
        "every service, identity among them"
    );
    let js = api
        .http
        .get(format!("{}/assets/htmx-2.0.11.min.js", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(js.headers()["content-type"], "text/javascript");
    app.shutdown().await;
}

/// A flight that has left is not scheduled, not sold and not refunded; what was asked before
/// it left still completes.
pub async fn a_departed_flight_is_neither_scheduled_nor_sold_nor_refunded(t: Topology) {
    let app = TestApp::spawn(t).await;
    let api = &app.api;
    let past = departs_in(Duration::ZERO);
    api.post(
        "/flights",
        json!({"flightId": "KE0", "from": "GMP", "to": "CJU", "departsAt": past, "seats": 3}),
    )
    .await
    .expect_problem(400, "departed");
    api.get("/flights/KE0")
        .await
        .expect_problem(404, "not_found");

    // A flight leaving in a moment: two travellers book, one cancels before it leaves.
    let leaves = std::time::SystemTime::now() + Duration::from_secs(3);
    let departs_at = humantime::format_rfc3339_millis(leaves).to_string();
    api.post(
        "/flights",
        json!({"flightId": "KE9", "from": "GMP", "to": "CJU", "departsAt": departs_at, "seats": 3}),
    )
    .await
    .expect(201);
    for user in ["early", "late"] {
        api.deposit(user, 1000).await;
    }
    let early = api.reserve("early", "KE9").await.expect(201);
    let early_id = early["reservationId"].as_str().unwrap().to_owned();
    api.reservation_status(&early_id, "CONFIRMED").await;
    let leaving = api.reserve("late", "KE9").await.expect(201);
    let leaving_id = leaving["reservationId"].as_str().unwrap().to_owned();
    api.reservation_status(&leaving_id, "CONFIRMED").await;
    api.post_empty(&format!("/reservations/{leaving_id}/cancel"))
        .await
        .expect(202);

    // The server's clock, not the test's, says when it has left: wait past it.
    if let Ok(wait) = leaves.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(wait + Duration::from_millis(100)).await;
    }
    api.reserve("late", "KE9")
        .await
        .expect_problem(409, "flight_departed");
    api.post_empty(&format!("/reservations/{early_id}/cancel"))
        .await
        .expect_problem(409, "flight_departed");
    api.reservation_status(&leaving_id, "CANCELLED").await;
    api.reservation_status(&early_id, "CONFIRMED").await;
    assert_eq!(api.balance("early").await, 900, "no refund after departure");
    assert_eq!(
        api.balance("late").await,
        1000,
        "refunded: asked before it left"
    );
    app.shutdown().await;
}

/// Below its backlog limit a reservation is taken however far behind payment is; at it, new ones
/// are refused for a moment with `503 payment_overloaded` and `Retry-After`, and taken again once
/// payment catches up. A refused request holds no seat.
pub async fn reservations_pause_while_payment_is_overloaded(t: Topology) {
    let app = TestApp::spawn_with(t, |c| {
        c.services.reservation.payment_backlog_limit = 2;
        c.services.reservation.payment_pending_after = Duration::from_secs(2);
    })
    .await;
    let api = &app.api;
    api.flight("KE1301", 5).await;
    for u in ["o1", "o2", "o3"] {
        api.deposit(u, 100).await;
    }
    api.post_empty("/admin/consumers/payment/pause")
        .await
        .expect(200);
    let mut ids = Vec::new();
    for u in ["o1", "o2"] {
        let r = api.reserve(u, "KE1301").await.expect(201);
        ids.push(r["reservationId"].as_str().unwrap().to_owned());
    }
    let refused = api.reserve("o3", "KE1301").await;
    let retry_after = refused.headers["retry-after"].to_str().unwrap().to_owned();
    refused.expect_problem(503, "payment_overloaded");
    assert_eq!(retry_after, "2");
    assert_eq!(
        api.seats_left("KE1301").await,
        3,
        "the refused request holds no seat"
    );

    api.post_empty("/admin/consumers/payment/resume")
        .await
        .expect(200);
    for id in &ids {
        api.reservation_status(id, "CONFIRMED").await;
    }
    let taken = api.reserve("o3", "KE1301").await.expect(201);
    api.reservation_status(taken["reservationId"].as_str().unwrap(), "CONFIRMED")
        .await;
    app.shutdown().await;
}
