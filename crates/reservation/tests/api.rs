//! The reservation service on a real temporary SQLite database, driven through its router, its
//! event handler and its timer handler: flights and their validation, seats held atomically
//! (also under 50 concurrent requests), the pending timer, payment's and ticket's answers, the
//! cancel saga, idempotency and problems — checked in the responses, the tables and the outbox,
//! with the seat invariant (seats held = active reservations) checked after every step.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use proptest::prelude::*;
use serde_json::{Value, json};
use tanda_catalog::flight::{
    PaymentFailed, PaymentRefunded, PaymentSucceeded, TicketIssued, TicketVoided,
};
use tanda_core::auth::{Caller, Role};
use tanda_core::clock::parse_rfc3339;
use tanda_core::db::Timer;
use tanda_core::sql::{AssertSqlSafe, query, query_scalar};
use tanda_core::{Envelope, Event};
use tanda_reservation::{Config, SPEC, build};
use tanda_testkit::{Answer, Harness, caller};
use tower::ServiceExt;

const PENDING_AFTER: Duration = Duration::from_millis(1_500);

/// Reservation, as its process builds it.
struct Service(Harness);

impl std::ops::Deref for Service {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

async fn service() -> Service {
    let config = Config {
        payment_pending_after: PENDING_AFTER,
        ..Config::default()
    };
    let harness = Harness::new(&SPEC, async |db| build(db, config).await.unwrap()).await;
    assert_eq!(harness.consumers.len(), 1);
    let mut types = harness.consumer("reservation").types.to_vec();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "flight.PaymentFailed",
            "flight.PaymentRefunded",
            "flight.PaymentSucceeded",
            "flight.TicketIssued",
            "flight.TicketVoided"
        ]
    );
    assert!(harness.timers.is_some(), "reservation has a timer handler");
    Service(harness)
}

/// A call by the operator, who may do everything.
async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> Answer {
    let operator = caller("operator", Role::Operator);
    call_as(router, Some(&operator), method, uri, body, key).await
}

async fn call_as(
    router: &Router,
    caller: Option<&Caller>,
    method: &str,
    uri: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> Answer {
    let key = tanda_testkit::idempotency_key(key);
    let body = body.map(|b| b.to_string());
    tanda_testkit::call(router, caller, method, uri, body.as_deref(), &key).await
}

impl Service {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Answer {
        call(&self.router, method, uri, body, key).await
    }

    async fn get(&self, uri: &str) -> Answer {
        self.call("GET", uri, None, None).await
    }

    async fn add_flight(&self, flight_id: &str, seats: i64) {
        let answer = self
            .call("POST", "/flights", Some(flight(flight_id, seats)), None)
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.raw);
    }

    async fn reserve(&self, user: &str, flight_id: &str) -> Answer {
        let body = json!({"userId": user, "flightId": flight_id});
        self.call("POST", "/reservations", Some(body), None).await
    }

    /// A new reservation's id; the request must succeed.
    async fn reserved(&self, user: &str, flight_id: &str) -> String {
        let answer = self.reserve(user, flight_id).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.raw);
        answer.body["reservationId"].as_str().unwrap().to_owned()
    }

    async fn cancel(&self, id: &str) -> Answer {
        self.call("POST", &format!("/reservations/{id}/cancel"), None, None)
            .await
    }

    async fn status(&self, id: &str) -> Value {
        self.get(&format!("/reservations/{id}")).await.body["status"].clone()
    }

    /// Delivers an event as the consumer runtime would: through the handler, in one unit of work.
    async fn deliver(&self, event: &impl Event, reservation_id: &str) -> Envelope {
        let envelope = Envelope::new(event, reservation_id, None, self.db.now());
        self.redeliver(&envelope).await;
        envelope
    }

    async fn redeliver(&self, envelope: &Envelope) {
        self.0.deliver_envelope(envelope).await;
    }

    /// The reservation's stored timers.
    async fn timers_of(&self, reservation_id: &str) -> Vec<Timer> {
        query("SELECT id, kind, key, fire_at, payload FROM timers WHERE key = $1")
            .bind(reservation_id)
            .fetch_all(self.db.reader())
            .await
            .unwrap()
            .iter()
            .map(|r| Timer {
                id: r.get("id"),
                kind: r.get("kind"),
                key: r.get("key"),
                fire_at: r.get("fire_at"),
                payload: serde_json::from_str(&r.get::<String, _>("payload")).unwrap(),
            })
            .collect()
    }

    /// Fires a timer as the timer runtime would: claimed and handled in one unit of work.
    async fn fire(&self, timer: &Timer) {
        let mut uow = self.db.begin().await.unwrap();
        query("DELETE FROM timers WHERE id = $1")
            .bind(&timer.id)
            .execute(uow.conn())
            .await
            .unwrap();
        let timers = self.timers.as_ref().expect("reservation's timers");
        timers.fire(&mut uow, timer).await.unwrap();
        uow.commit().await.unwrap();
    }

    async fn count(&self, table: &str) -> i64 {
        query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(self.db.reader())
            .await
            .unwrap()
    }

    async fn seats_left(&self, flight_id: &str) -> i64 {
        self.get(&format!("/flights/{flight_id}")).await.body["seatsLeft"]
            .as_i64()
            .unwrap()
    }

    /// Seats held on every flight equal its active reservations, and none is oversold.
    async fn assert_seats_match_reservations(&self) {
        let rows = query(
            "SELECT f.flight_id, f.seats, f.seats_left,
                    (SELECT COUNT(*) FROM reservations r WHERE r.flight_id = f.flight_id
                       AND r.status IN ('REQUESTED', 'PENDING', 'PAID', 'CONFIRMED', 'CANCEL_REQUESTED')) AS active
             FROM flights f",
        )
        .fetch_all(self.db.reader())
        .await
        .unwrap();
        for row in rows {
            let flight: String = row.get("flight_id");
            let seats: i64 = row.get("seats");
            let left: i64 = row.get("seats_left");
            let active: i64 = row.get("active");
            assert!(left >= 0, "{flight}: seats left below zero");
            assert_eq!(
                seats - left,
                active,
                "{flight}: seats held != active reservations"
            );
        }
    }

    /// `(type, envelope)` of every outbox row, in order.
    async fn outbox(&self) -> Vec<(String, Value)> {
        query("SELECT type, envelope FROM outbox ORDER BY seq")
            .fetch_all(self.db.reader())
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let envelope: String = r.get("envelope");
                (r.get("type"), serde_json::from_str(&envelope).unwrap())
            })
            .collect()
    }

    async fn published(&self, kind: &str, reservation_id: &str) -> Vec<Value> {
        self.outbox()
            .await
            .into_iter()
            .filter(|(k, e)| k == kind && e["aggregateId"] == reservation_id)
            .map(|(_, e)| e)
            .collect()
    }

    async fn statuses_published(&self, reservation_id: &str) -> Vec<String> {
        self.published("flight.ReservationStatusChanged", reservation_id)
            .await
            .iter()
            .map(|e| e["payload"]["status"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn flight(flight_id: &str, seats: i64) -> Value {
    json!({
        "flightId": flight_id,
        "from": "Seoul (ICN)",
        "to": "Jeju (CJU)",
        "departsAt": "2099-03-01T09:30:00Z",
        "seats": seats,
    })
}

fn assert_problem(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.raw);
    assert_eq!(
        answer.headers[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(answer.body["code"], code, "{}", answer.raw);
    assert_eq!(answer.body["status"], status.as_u16());
    assert!(
        answer.body["detail"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
}

fn paid(id: &str) -> PaymentSucceeded {
    PaymentSucceeded {
        reservation_id: id.into(),
        user_id: "u-1".into(),
        amount: 100,
        balance: 900,
    }
}

fn issued(id: &str) -> TicketIssued {
    TicketIssued {
        ticket_id: "t-1".into(),
        reservation_id: id.into(),
        user_id: "u-1".into(),
        flight_id: "KE123".into(),
    }
}

fn refunded(id: &str, amount: i64) -> PaymentRefunded {
    PaymentRefunded {
        reservation_id: id.into(),
        user_id: "u-1".into(),
        amount,
        balance: 1_000,
    }
}

fn voided(id: &str, ticket_id: Option<&str>) -> TicketVoided {
    TicketVoided {
        ticket_id: ticket_id.map(str::to_owned),
        reservation_id: id.into(),
        user_id: "u-1".into(),
    }
}

fn failed(id: &str) -> PaymentFailed {
    PaymentFailed {
        reservation_id: id.into(),
        user_id: "u-1".into(),
        amount: 100,
        balance: 50,
        reason: "insufficient_balance".into(),
    }
}

#[tokio::test]
async fn flights_are_created_listed_and_fetched() {
    let s = service().await;
    let mut body = flight("KE123", 3);
    body["price"] = json!(250);
    let answer = s.call("POST", "/flights", Some(body), None).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.raw);
    assert_eq!(
        answer.body,
        json!({"flightId": "KE123", "from": "Seoul (ICN)", "to": "Jeju (CJU)",
               "departsAt": "2099-03-01T09:30:00.000Z", "seats": 3, "seatsLeft": 3, "price": 250})
    );

    // Without a price, the seed's 100 won; listed by departure.
    let mut early = flight("OZ8901", 5);
    early["departsAt"] = json!("2099-02-01T07:00:00.5Z");
    let answer = s.call("POST", "/flights", Some(early), None).await;
    assert_eq!(answer.body["price"], 100);
    assert_eq!(answer.body["departsAt"], "2099-02-01T07:00:00.500Z");
    let list = s.get("/flights").await;
    assert_eq!(list.status, StatusCode::OK);
    let ids: Vec<&str> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["flightId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["OZ8901", "KE123"]);

    let fetched = s.get("/flights/KE123").await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body["price"], 250);
    assert_problem(
        &s.get("/flights/NOPE").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // The same id again is a conflict, and the first flight is untouched.
    let again = s
        .call("POST", "/flights", Some(flight("KE123", 9)), None)
        .await;
    assert_problem(&again, StatusCode::CONFLICT, "flight_exists");
    assert_eq!(s.get("/flights/KE123").await.body["seats"], 3);
    assert_eq!(s.count("flights").await, 2);
    assert_eq!(s.count("outbox").await, 0);
}

#[tokio::test]
async fn a_flights_idempotency_key_replays_the_first_answer() {
    let s = service().await;
    let first = s
        .call("POST", "/flights", Some(flight("KE1", 2)), Some("f-1"))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    s.reserved("u-1", "KE1").await;
    let again = s
        .call("POST", "/flights", Some(flight("KE1", 2)), Some("f-1"))
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body);
    let reused = s
        .call("POST", "/flights", Some(flight("KE2", 2)), Some("f-1"))
        .await;
    assert_problem(
        &reused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    let other_key = s
        .call("POST", "/flights", Some(flight("KE1", 2)), Some("f-2"))
        .await;
    assert_problem(&other_key, StatusCode::CONFLICT, "flight_exists");
    assert_eq!(s.count("flights").await, 1);
    assert_eq!(s.seats_left("KE1").await, 1);
}

#[tokio::test]
async fn bad_flights_are_specific_problems_and_change_nothing() {
    let s = service().await;
    let with = |field: &str, value: Value| {
        let mut body = flight("KE123", 10);
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = flight("KE123", 10);
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases = [
        (without("flightId"), "missing_field", "flightId"),
        (
            with("flightId", json!("KE 123")),
            "invalid_flight_id",
            "flightId",
        ),
        (
            with("flightId", json!("K".repeat(65))),
            "invalid_flight_id",
            "flightId",
        ),
        (without("from"), "missing_field", "from"),
        (with("from", json!("  ")), "invalid_from", "from"),
        (with("to", json!("가".repeat(101))), "invalid_to", "to"),
        (with("to", json!(" seoul (icn)")), "same_from_and_to", "to"),
        (without("departsAt"), "missing_field", "departsAt"),
        (
            with("departsAt", json!("tomorrow")),
            "invalid_departs_at",
            "departsAt",
        ),
        (
            with("departsAt", json!("2027-13-01T00:00:00Z")),
            "invalid_departs_at",
            "departsAt",
        ),
        (without("seats"), "missing_field", "seats"),
        (with("seats", json!(0)), "invalid_seats", "seats"),
        (with("seats", json!(1001)), "invalid_seats", "seats"),
        (with("price", json!(0)), "invalid_price", "price"),
        (with("price", json!(10_000_001)), "invalid_price", "price"),
    ];
    for (body, code, field) in cases {
        let answer = s.call("POST", "/flights", Some(body), None).await;
        assert_problem(&answer, StatusCode::BAD_REQUEST, code);
        assert!(
            answer.body["detail"].as_str().unwrap().contains(field),
            "{field}: {}",
            answer.raw
        );
    }
    // Mistyped fields are named too.
    let mistyped = [
        (with("flightId", json!(123)), "invalid_flight_id"),
        (with("from", json!(["ICN"])), "invalid_from"),
        (
            with("departsAt", json!(1_800_000_000)),
            "invalid_departs_at",
        ),
        (with("seats", json!("10")), "invalid_seats"),
        (with("seats", json!(2.5)), "invalid_seats"),
        (with("price", json!("100")), "invalid_price"),
    ];
    for (body, code) in mistyped {
        let answer = s.call("POST", "/flights", Some(body), None).await;
        assert_problem(&answer, StatusCode::BAD_REQUEST, code);
    }
    assert_eq!(s.count("flights").await, 0);
    assert_eq!(s.get("/flights").await.body, json!([]));
}

#[tokio::test]
async fn a_reservation_holds_a_seat_and_announces_itself() {
    let s = service().await;
    s.add_flight("KE123", 2).await;

    let answer = s.reserve("u-1", "KE123").await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.raw);
    let r = &answer.body;
    let id = r["reservationId"].as_str().unwrap();
    assert_eq!(r["userId"], "u-1");
    assert_eq!(r["flightId"], "KE123");
    assert_eq!(r["from"], "Seoul (ICN)");
    assert_eq!(r["to"], "Jeju (CJU)");
    assert_eq!(r["departsAt"], "2099-03-01T09:30:00.000Z");
    assert_eq!(r["price"], 100);
    assert_eq!(r["status"], "REQUESTED");
    assert!(r.get("ticketId").is_none());
    assert!(r["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(s.seats_left("KE123").await, 1);
    s.assert_seats_match_reservations().await;

    let outbox = s.outbox().await;
    let kinds: Vec<&str> = outbox.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "flight.ReservationRequested",
            "flight.ReservationStatusChanged"
        ]
    );
    for (_, envelope) in &outbox {
        assert_eq!(envelope["correlationId"], id);
        assert_eq!(envelope["aggregateId"], id);
    }
    assert_eq!(
        outbox[0].1["payload"],
        json!({"reservationId": id, "userId": "u-1", "flightId": "KE123", "price": 100,
               "from": "Seoul (ICN)", "to": "Jeju (CJU)", "departsAt": "2099-03-01T09:30:00.000Z"})
    );
    assert_eq!(s.statuses_published(id).await, ["REQUESTED"]);

    // The pending timer is set for when payment is late.
    let timers = s.timers_of(id).await;
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0].kind, "reservation.pending");
    let created = parse_rfc3339(r["createdAt"].as_str().unwrap()).unwrap();
    assert_eq!(
        timers[0].fire_at,
        created + PENDING_AFTER.as_millis() as i64
    );

    let fetched = s.get(&format!("/reservations/{id}")).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(&fetched.body, r);
}

#[tokio::test]
async fn reservations_are_listed_newest_first_per_user() {
    let s = service().await;
    s.add_flight("KE123", 10).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(s.reserved("u-1", "KE123").await);
    }
    s.reserved("u-2", "KE123").await;
    let list = s.get("/reservations?userId=u-1").await;
    assert_eq!(list.status, StatusCode::OK);
    let listed: Vec<&str> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reservationId"].as_str().unwrap())
        .collect();
    ids.reverse();
    assert_eq!(listed, ids);
    assert_eq!(s.get("/reservations?userId=u-9").await.body, json!([]));
}

#[tokio::test]
async fn a_reservations_idempotency_key_replays_without_taking_another_seat() {
    let s = service().await;
    s.add_flight("KE123", 5).await;
    let body = json!({"userId": "u-1", "flightId": "KE123"});
    let first = s
        .call("POST", "/reservations", Some(body.clone()), Some("r-1"))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = s
        .call("POST", "/reservations", Some(body.clone()), Some("r-1"))
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body);
    assert_eq!(s.count("reservations").await, 1);
    assert_eq!(s.count("outbox").await, 2);
    assert_eq!(s.seats_left("KE123").await, 4);

    let other = json!({"userId": "u-2", "flightId": "KE123"});
    let reused = s
        .call("POST", "/reservations", Some(other), Some("r-1"))
        .await;
    assert_problem(
        &reused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    let second = s
        .call("POST", "/reservations", Some(body), Some("r-2"))
        .await;
    assert_ne!(second.body["reservationId"], first.body["reservationId"]);
    assert_eq!(s.seats_left("KE123").await, 3);
    s.assert_seats_match_reservations().await;
}

#[tokio::test]
async fn bad_reservation_requests_are_problems_and_change_nothing() {
    let s = service().await;
    s.add_flight("KE123", 1).await;
    let cases = [
        (
            json!({"flightId": "KE123"}),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            json!({"userId": "u 1", "flightId": "KE123"}),
            StatusCode::BAD_REQUEST,
            "invalid_user_id",
        ),
        (
            json!({"userId": 7, "flightId": "KE123"}),
            StatusCode::BAD_REQUEST,
            "invalid_user_id",
        ),
        (
            json!({"userId": "u-1"}),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            json!({"userId": "u-1", "flightId": "KE/123"}),
            StatusCode::BAD_REQUEST,
            "invalid_flight_id",
        ),
        (
            json!({"userId": "u-1", "flightId": "NOPE"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (body, status, code) in cases {
        let answer = s.call("POST", "/reservations", Some(body), None).await;
        assert_problem(&answer, status, code);
    }
    let malformed = Request::builder()
        .method("POST")
        .uri("/reservations")
        .header(header::CONTENT_TYPE, "application/json")
        .extension(caller("operator", Role::Operator))
        .body(Body::from("{\"userId\":"))
        .unwrap();
    let response = s.router.clone().oneshot(malformed).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(s.count("reservations").await, 0);
    assert_eq!(s.count("outbox").await, 0);
    assert_eq!(s.count("timers").await, 0);
    assert_eq!(s.seats_left("KE123").await, 1);

    assert_problem(
        &s.get("/reservations").await,
        StatusCode::BAD_REQUEST,
        "missing_field",
    );
    assert_problem(
        &s.get("/reservations?userId=a%20b").await,
        StatusCode::BAD_REQUEST,
        "invalid_user_id",
    );
    assert_problem(
        &s.get("/reservations/nope").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_problem(&s.cancel("nope").await, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_for_ten_seats_sell_exactly_ten() {
    let s = service().await;
    s.add_flight("KE123", 10).await;
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..50 {
        let router = s.router.clone();
        requests.spawn(async move {
            let body = json!({"userId": format!("u-{i}"), "flightId": "KE123"});
            call(&router, "POST", "/reservations", Some(body), None).await
        });
    }
    let (mut created, mut sold_out) = (0, 0);
    while let Some(answer) = requests.join_next().await {
        let answer = answer.unwrap();
        match answer.status {
            StatusCode::CREATED => created += 1,
            _ => {
                assert_problem(&answer, StatusCode::CONFLICT, "sold_out");
                sold_out += 1;
            }
        }
    }
    assert_eq!((created, sold_out), (10, 40));
    assert_eq!(s.seats_left("KE123").await, 0);
    assert_eq!(s.count("reservations").await, 10);
    assert_eq!(s.count("outbox").await, 20);
    assert_eq!(s.count("timers").await, 10);
    s.assert_seats_match_reservations().await;
}

#[tokio::test]
async fn slow_payment_shows_pending_then_payment_and_ticket_confirm() {
    let s = service().await;
    s.add_flight("KE123", 3).await;
    let id = s.reserved("u-1", "KE123").await;

    let timer = s.timers_of(&id).await.remove(0);
    s.fire(&timer).await;
    assert_eq!(s.status(&id).await, "PENDING");

    let payment = s.deliver(&paid(&id), &id).await;
    assert_eq!(s.status(&id).await, "PAID");
    let last = s.outbox().await.pop().unwrap().1;
    assert_eq!(last["causationId"], payment.id.as_str());
    assert_eq!(last["correlationId"], id.as_str());

    let ticket = s.deliver(&issued(&id), &id).await;
    // A redelivery that slipped past the inbox changes nothing and publishes nothing.
    let outbox_len = s.count("outbox").await;
    s.redeliver(&ticket).await;
    s.redeliver(&payment).await;
    assert_eq!(s.count("outbox").await, outbox_len);

    let r = s.get(&format!("/reservations/{id}")).await.body;
    assert_eq!(r["status"], "CONFIRMED");
    assert_eq!(r["ticketId"], "t-1");
    assert_eq!(
        s.statuses_published(&id).await,
        ["REQUESTED", "PENDING", "PAID", "CONFIRMED"]
    );
    assert_eq!(s.seats_left("KE123").await, 2);
    s.assert_seats_match_reservations().await;
}

#[tokio::test]
async fn a_prompt_payment_cancels_the_pending_timer() {
    let s = service().await;
    s.add_flight("KE123", 3).await;
    let id = s.reserved("u-1", "KE123").await;
    let timer = s.timers_of(&id).await.remove(0);

    // The ticket overtook the payment event: confirmed all the same, and the timer is gone.
    s.deliver(&issued(&id), &id).await;
    assert_eq!(s.status(&id).await, "CONFIRMED");
    assert!(s.timers_of(&id).await.is_empty());
    s.deliver(&paid(&id), &id).await;
    // A timer that fired anyway (claimed just before the cancel) changes nothing.
    s.fire(&timer).await;
    assert_eq!(s.status(&id).await, "CONFIRMED");
    assert_eq!(s.statuses_published(&id).await, ["REQUESTED", "CONFIRMED"]);
}

#[tokio::test]
async fn a_failed_payment_releases_the_seat_once() {
    let s = service().await;
    s.add_flight("KE123", 1).await;
    let id = s.reserved("u-1", "KE123").await;
    assert_problem(
        &s.reserve("u-2", "KE123").await,
        StatusCode::CONFLICT,
        "sold_out",
    );
    assert_eq!(s.count("reservations").await, 1);

    let failure = s.deliver(&failed(&id), &id).await;
    assert_eq!(s.status(&id).await, "PAYMENT_FAILED");
    assert_eq!(s.seats_left("KE123").await, 1);
    assert!(s.timers_of(&id).await.is_empty());
    s.redeliver(&failure).await;
    assert_eq!(s.seats_left("KE123").await, 1);
    s.assert_seats_match_reservations().await;

    assert_problem(&s.cancel(&id).await, StatusCode::CONFLICT, "payment_failed");
    assert_eq!(
        s.statuses_published(&id).await,
        ["REQUESTED", "PAYMENT_FAILED"]
    );
    // The released seat can be sold again.
    s.reserved("u-2", "KE123").await;
    assert_eq!(s.seats_left("KE123").await, 0);
    s.assert_seats_match_reservations().await;
}

#[tokio::test]
async fn cancel_waits_for_refund_and_void_then_gives_the_seat_back() {
    let s = service().await;
    s.add_flight("KE123", 2).await;
    let id = s.reserved("u-1", "KE123").await;
    s.deliver(&paid(&id), &id).await;
    s.deliver(&issued(&id), &id).await;

    let answer = s.cancel(&id).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.raw);
    assert_eq!(answer.body["status"], "CANCEL_REQUESTED");
    assert_eq!(answer.body["ticketId"], "t-1");
    let requests = s.published("flight.ReservationCancelRequested", &id).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0]["payload"],
        json!({"reservationId": id, "userId": "u-1", "flightId": "KE123"})
    );
    assert_eq!(requests[0]["correlationId"], id.as_str());
    assert_problem(&s.cancel(&id).await, StatusCode::CONFLICT, "cancel_pending");

    // The seat stays held until both answers are in.
    let refund = s.deliver(&refunded(&id, 100), &id).await;
    assert_eq!(s.status(&id).await, "CANCEL_REQUESTED");
    assert_eq!(s.seats_left("KE123").await, 1);
    s.assert_seats_match_reservations().await;

    let void = s.deliver(&voided(&id, Some("t-1")), &id).await;
    assert_eq!(s.status(&id).await, "CANCELLED");
    assert_eq!(s.seats_left("KE123").await, 2);
    let last = s.outbox().await.pop().unwrap().1;
    assert_eq!(last["causationId"], void.id.as_str());

    // Duplicates release nothing more.
    s.redeliver(&void).await;
    s.redeliver(&refund).await;
    assert_eq!(s.seats_left("KE123").await, 2);
    s.assert_seats_match_reservations().await;

    assert_problem(
        &s.cancel(&id).await,
        StatusCode::CONFLICT,
        "already_cancelled",
    );
    assert_eq!(
        s.statuses_published(&id).await,
        [
            "REQUESTED",
            "PAID",
            "CONFIRMED",
            "CANCEL_REQUESTED",
            "CANCELLED"
        ]
    );
    assert_eq!(
        s.published("flight.ReservationCancelRequested", &id)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_cancel_before_payment_ends_cancelled_whatever_payment_answers() {
    let s = service().await;
    s.add_flight("KE123", 1).await;
    let id = s.reserved("u-1", "KE123").await;
    assert_eq!(s.cancel(&id).await.body["status"], "CANCEL_REQUESTED");
    assert!(s.timers_of(&id).await.is_empty());

    // Ticket recorded the cancel first; payment's late failure changes nothing; both answers end it.
    s.deliver(&voided(&id, None), &id).await;
    s.deliver(&failed(&id), &id).await;
    assert_eq!(s.status(&id).await, "CANCEL_REQUESTED");
    assert_eq!(s.seats_left("KE123").await, 0);
    s.deliver(&refunded(&id, 0), &id).await;
    let r = s.get(&format!("/reservations/{id}")).await.body;
    assert_eq!(r["status"], "CANCELLED");
    assert!(r.get("ticketId").is_none());
    assert_eq!(s.seats_left("KE123").await, 1);
    s.assert_seats_match_reservations().await;
}

#[tokio::test]
async fn events_for_unknown_reservations_are_ignored() {
    let s = service().await;
    s.deliver(&paid("nope"), "nope").await;
    s.deliver(&voided("nope", None), "nope").await;
    assert_eq!(s.count("outbox").await, 0);
}

// ---- randomized, through the real SQL -----------------------------------------------------

/// One input to the service: a user's request or an answer for the reservation picked by index.
#[derive(Debug, Clone)]
enum Op {
    Reserve,
    Cancel(usize),
    Timer(usize),
    Paid(usize),
    Failed(usize),
    Issued(usize),
    Refunded(usize),
    Voided(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let pick = any::<usize>();
    prop_oneof![
        3 => Just(Op::Reserve),
        1 => pick.prop_map(Op::Cancel),
        1 => pick.prop_map(Op::Timer),
        1 => pick.prop_map(Op::Paid),
        1 => pick.prop_map(Op::Failed),
        1 => pick.prop_map(Op::Issued),
        1 => pick.prop_map(Op::Refunded),
        1 => pick.prop_map(Op::Voided),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Requests, cancels, timers and every kind of answer, in any order and repeated, on a
    /// three-seat flight: after every step the seats held equal the active reservations, never
    /// more than the flight has.
    #[test]
    fn seats_held_always_equal_active_reservations(ops in prop::collection::vec(op(), 1..30)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let s = service().await;
            s.add_flight("KE123", 3).await;
            let mut ids: Vec<String> = Vec::new();
            for op in ops {
                let pick = |i: usize| ids.get(i % ids.len().max(1)).cloned();
                match op {
                    Op::Reserve => {
                        let answer = s.reserve("u-1", "KE123").await;
                        match answer.status {
                            StatusCode::CREATED => ids.push(answer.body["reservationId"].as_str().unwrap().to_owned()),
                            _ => assert_problem(&answer, StatusCode::CONFLICT, "sold_out"),
                        }
                    }
                    Op::Cancel(i) => if let Some(id) = pick(i) {
                        let status = s.cancel(&id).await.status;
                        prop_assert!(status == StatusCode::ACCEPTED || status == StatusCode::CONFLICT);
                    },
                    Op::Timer(i) => if let Some(id) = pick(i) {
                        let timer = Timer { id: "any".into(), kind: "reservation.pending".into(), key: id, fire_at: 0, payload: json!({}) };
                        s.fire(&timer).await;
                    },
                    Op::Paid(i) => if let Some(id) = pick(i) { s.deliver(&paid(&id), &id).await; },
                    Op::Failed(i) => if let Some(id) = pick(i) { s.deliver(&failed(&id), &id).await; },
                    Op::Issued(i) => if let Some(id) = pick(i) { s.deliver(&issued(&id), &id).await; },
                    Op::Refunded(i) => if let Some(id) = pick(i) { s.deliver(&refunded(&id, 100), &id).await; },
                    Op::Voided(i) => if let Some(id) = pick(i) { s.deliver(&voided(&id, None), &id).await; },
                }
                s.assert_seats_match_reservations().await;
            }
            Ok(())
        })?;
    }
}

/// API.md "Identity and access": flights are the operator's to create and anyone's to read; a
/// traveller reserves, reads and cancels only as themselves.
#[tokio::test]
async fn travellers_reserve_read_and_cancel_only_their_own() {
    let s = service().await;
    let hong = caller("hong", Role::Customer);
    let kim = caller("kim", Role::Customer);
    let flight = json!({"flightId": "KE1", "from": "ICN", "to": "CJU",
                        "departsAt": "2099-01-01T09:00:00Z", "seats": 3});
    let refused = call_as(
        &s.router,
        Some(&hong),
        "POST",
        "/flights",
        Some(flight),
        None,
    )
    .await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(s.count("flights").await, 0);
    s.add_flight("KE1", 3).await;

    let reserved = call_as(
        &s.router,
        Some(&hong),
        "POST",
        "/reservations",
        Some(json!({"flightId": "KE1"})),
        None,
    )
    .await;
    assert_eq!(reserved.status, StatusCode::CREATED, "{}", reserved.raw);
    assert_eq!(reserved.body["userId"], "hong");
    let id = reserved.body["reservationId"].as_str().unwrap().to_owned();
    let for_other = call_as(
        &s.router,
        Some(&hong),
        "POST",
        "/reservations",
        Some(json!({"flightId": "KE1", "userId": "kim"})),
        None,
    )
    .await;
    assert_problem(&for_other, StatusCode::FORBIDDEN, "forbidden");
    let anonymous = call_as(
        &s.router,
        None,
        "POST",
        "/reservations",
        Some(json!({"flightId": "KE1"})),
        None,
    )
    .await;
    assert_problem(&anonymous, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(s.count("reservations").await, 1);

    let path = format!("/reservations/{id}");
    assert_eq!(
        call_as(&s.router, Some(&hong), "GET", &path, None, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_problem(
        &call_as(&s.router, Some(&kim), "GET", &path, None, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_problem(
        &call_as(
            &s.router,
            Some(&kim),
            "GET",
            "/reservations?userId=hong",
            None,
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let cancel = format!("/reservations/{id}/cancel");
    assert_problem(
        &call_as(&s.router, Some(&kim), "POST", &cancel, None, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(
        s.get(&path).await.body["status"],
        "REQUESTED",
        "a stranger's cancel changed nothing"
    );
    // Flights stay public.
    assert_eq!(
        call_as(&s.router, None, "GET", "/flights/KE1", None, None)
            .await
            .status,
        StatusCode::OK
    );
}
