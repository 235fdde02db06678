//! The book service on a real temporary SQLite database, driven through its router, its event
//! handler and its answer timer: the no-taxi breaker (near the pickup), card handling and
//! replacement, idempotency, input problems, cancellation, dispatch's answers and the answer
//! deadline, checked in the responses, the tables and the outbox.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tanda_book::{Config, SPEC, build};
use tanda_catalog::taxi::search::Search;
use tanda_catalog::taxi::{
    CancelRejected, DispatchCancelled, DispatchFailed, DriverStatusChanged, EXPIRED,
    TaxiDispatched, TripEnded, TripStarted,
};
use tanda_core::auth::{Caller, Role};
use tanda_core::db::Timer;
use tanda_core::geo::LatLng;
use tanda_core::sql::{AssertSqlSafe, query, query_scalar};
use tanda_core::{Envelope, Event};
use tanda_testkit::{Answer, Harness, caller};
use tower::ServiceExt;

const CARD: &str = "4242424242424242";

/// Book, as its process builds it.
struct Service(Harness);

impl std::ops::Deref for Service {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

/// The answer deadline of the test service.
const DEADLINE_MS: i64 = 60_000;

async fn service() -> Service {
    let config = Config {
        no_taxi_retry_after: Duration::from_secs(7),
        search: Search {
            deadline: Duration::from_millis(DEADLINE_MS as u64),
            max_pickup_m: 5_000.0,
        },
    };
    let harness = Harness::new(&SPEC, async |db| build(db, config).await.unwrap()).await;
    assert_eq!(harness.consumers.len(), 1);
    let consumer = harness.consumer("book");
    assert!(consumer.types.contains(&DriverStatusChanged::TYPE));
    assert!(consumer.types.contains(&TaxiDispatched::TYPE));
    assert!(harness.timers.is_some(), "book answers by its own timer");
    Service(harness)
}

impl Service {
    /// A call by the operator, who may do everything.
    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Answer {
        let operator = caller("operator", Role::Operator);
        self.call_as(Some(&operator), method, uri, body, key).await
    }

    async fn call_as(
        &self,
        caller: Option<&Caller>,
        method: &str,
        uri: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Answer {
        let key = tanda_testkit::idempotency_key(key);
        let body = body.map(|b| b.to_string());
        self.0
            .call(caller, method, uri, body.as_deref(), &key)
            .await
    }

    async fn post_book(&self, body: Value) -> Answer {
        self.call("POST", "/books", Some(body), None).await
    }

    /// Delivers an event as the consumer runtime would: through the handler, in one unit of work.
    async fn deliver(&self, event: &impl Event, book_id: &str) -> Envelope {
        let envelope = Envelope::new(event, book_id, None, self.db.now());
        self.redeliver(&envelope).await;
        envelope
    }

    async fn redeliver(&self, envelope: &Envelope) {
        self.0.deliver_envelope(envelope).await;
    }

    /// A driver's status, as dispatch announced it before it told where drivers are.
    async fn driver(&self, driver_id: &str, status: &str) {
        let changed = DriverStatusChanged {
            driver_id: driver_id.to_owned(),
            status: status.to_owned(),
            location: None,
        };
        self.deliver(&changed, driver_id).await;
    }

    async fn driver_at(&self, driver_id: &str, status: &str, lat: f64, lng: f64) {
        let changed = DriverStatusChanged {
            driver_id: driver_id.to_owned(),
            status: status.to_owned(),
            location: Some(LatLng::parse(lat, lng).unwrap()),
        };
        self.deliver(&changed, driver_id).await;
    }

    /// The answer timers set: `(key, fire_at)`.
    async fn answer_timers(&self) -> Vec<(String, i64)> {
        query("SELECT key, fire_at FROM timers WHERE kind = 'book.answer'")
            .fetch_all(self.db.reader())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("key"), r.get("fire_at")))
            .collect()
    }

    /// Fires a booking's answer timer, as the timer loop does when it is due.
    async fn answer_due(&self, book_id: &str) {
        let timer = Timer {
            id: "t".into(),
            kind: "book.answer".into(),
            key: book_id.into(),
            fire_at: self.db.now(),
            payload: json!({}),
        };
        let mut uow = self.db.begin().await.unwrap();
        let timers = self.timers.as_ref().expect("book's answer timer");
        timers.fire(&mut uow, &timer).await.unwrap();
        uow.commit().await.unwrap();
    }

    async fn status(&self, book_id: &str) -> Value {
        self.call("GET", &format!("/books/{book_id}"), None, None)
            .await
            .body["status"]
            .clone()
    }

    /// The payloads of the outbox events of this type, in order.
    async fn published(&self, kind: &str) -> Vec<Value> {
        self.outbox()
            .await
            .into_iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, e)| e["payload"].clone())
            .collect()
    }

    async fn count(&self, table: &str) -> i64 {
        query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(self.db.reader())
            .await
            .unwrap()
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

    async fn statuses_published(&self, book_id: &str) -> Vec<String> {
        self.outbox()
            .await
            .into_iter()
            .filter(|(kind, e)| kind == "taxi.BookStatusChanged" && e["aggregateId"] == book_id)
            .map(|(_, e)| e["payload"]["status"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Every column of every stored book, as text.
    async fn books_dump(&self) -> String {
        let rows = query("SELECT * FROM books")
            .fetch_all(self.db.reader())
            .await
            .unwrap();
        let mut dump = String::new();
        for row in rows {
            for value in row.values() {
                if let tanda_core::sql::Value::Text(cell) = value {
                    dump.push_str(cell);
                }
                dump.push('|');
            }
        }
        dump
    }
}

fn request(customer: &str) -> Value {
    json!({
        "customerId": customer,
        "customerName": "유병전",
        "phone": "010-1234-5678",
        "card": CARD,
        "pickup": {"name": "분당 KT 본사", "lat": 37.3591, "lng": 127.1052},
        "dropoff": {"name": "강남역", "lat": 37.4979, "lng": 127.0276},
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

#[tokio::test]
async fn no_available_driver_means_503_and_nothing_stored_then_a_driver_opens_booking() {
    let s = service().await;

    let answer = s.post_book(request("c-1")).await;
    assert_problem(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "no_taxi_available",
    );
    assert_eq!(answer.headers[header::RETRY_AFTER], "7");
    assert_eq!(s.count("books").await, 0);
    assert_eq!(s.count("outbox").await, 0);

    s.driver("d-1", "AVAILABLE").await;
    let answer = s.post_book(request("c-1")).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.raw);
    let book = &answer.body;
    assert_eq!(book["status"], "REQUESTED");
    assert_eq!(book["customerId"], "c-1");
    assert_eq!(book["customerName"], "유병전");
    assert_eq!(book["phone"], "010-1234-5678");
    assert_eq!(book["cardLast4"], "4242");
    assert_eq!(
        book["pickup"],
        json!({"name": "분당 KT 본사", "lat": 37.3591, "lng": 127.1052})
    );
    assert_eq!(book["dropoff"]["name"], "강남역");
    assert!(book["createdAt"].as_str().unwrap().ends_with('Z'));
    for absent in ["dispatchId", "taxi", "fare", "payId", "card"] {
        assert!(book.get(absent).is_none(), "{absent} should be omitted");
    }
    assert!(!answer.raw.contains(CARD));

    // The card number is nowhere: not in the table, not in the outbox.
    let book_id = book["bookId"].as_str().unwrap();
    assert!(!s.books_dump().await.contains(CARD));
    let outbox = s.outbox().await;
    let kinds: Vec<&str> = outbox.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["taxi.BookRequested", "taxi.BookStatusChanged"]);
    for (_, envelope) in &outbox {
        assert!(!envelope.to_string().contains(CARD));
        assert_eq!(envelope["correlationId"], book_id);
    }
    let requested = &outbox[0].1["payload"];
    assert_eq!(requested["cardLast4"], "4242");
    assert!(
        requested["cardToken"]
            .as_str()
            .unwrap()
            .starts_with("tok_4242_")
    );
    assert_eq!(requested["phone"], "010-1234-5678");
    assert_eq!(requested["pickup"]["name"], "분당 KT 본사");
    assert_eq!(s.statuses_published(book_id).await, ["REQUESTED"]);

    let fetched = s
        .call("GET", &format!("/books/{book_id}"), None, None)
        .await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(&fetched.body, book);

    // Every driver busy or gone: the breaker closes again.
    s.driver("d-1", "OFFERED").await;
    let answer = s.post_book(request("c-1")).await;
    assert_problem(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "no_taxi_available",
    );
    assert_eq!(s.count("books").await, 1);
}

#[tokio::test]
async fn driver_availability_ignores_stale_and_duplicate_events() {
    let s = service().await;
    let available = DriverStatusChanged {
        driver_id: "d-1".into(),
        status: "AVAILABLE".into(),
        location: None,
    };
    let mut stale = Envelope::new(&available, "d-1", None, s.db.now() - 60_000);
    s.driver("d-1", "OFFLINE").await;
    // An AVAILABLE older than the OFFLINE already applied (a reordered delivery) changes nothing.
    s.redeliver(&stale).await;
    let answer = s.post_book(request("c-1")).await;
    assert_problem(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "no_taxi_available",
    );

    stale.occurred_at = tanda_core::clock::rfc3339(s.db.now() + 1);
    s.redeliver(&stale).await;
    s.redeliver(&stale).await;
    assert_eq!(
        s.post_book(request("c-1")).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn idempotency_key_replays_the_first_answer() {
    let s = service().await;
    s.driver("d-1", "AVAILABLE").await;

    let first = s
        .call("POST", "/books", Some(request("c-1")), Some("k-1"))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = s
        .call("POST", "/books", Some(request("c-1")), Some("k-1"))
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body);
    assert_eq!(s.count("books").await, 1);
    assert_eq!(s.count("outbox").await, 2);

    let mut other = request("c-1");
    other["dropoff"]["name"] = json!("서울역");
    let reused = s.call("POST", "/books", Some(other), Some("k-1")).await;
    assert_problem(
        &reused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    assert_eq!(s.count("books").await, 1);

    // Not even a hash of the full card number is kept for the key.
    let kept: String = query_scalar("SELECT body FROM idempotency")
        .fetch_one(s.db.reader())
        .await
        .unwrap();
    assert!(!kept.contains(CARD));

    // Another key is another booking.
    let second = s
        .call("POST", "/books", Some(request("c-1")), Some("k-2"))
        .await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_ne!(second.body["bookId"], first.body["bookId"]);
    assert_eq!(s.count("books").await, 2);
}

#[tokio::test]
async fn bad_input_is_a_specific_problem_and_changes_nothing() {
    let s = service().await;
    // Checked before the breaker: no driver is available yet.
    let with = |path: &[&str], value: Value| {
        let mut body = request("c-1");
        let (last, parents) = path.split_last().unwrap();
        let mut target = &mut body;
        for p in parents {
            target = &mut target[*p];
        }
        target[*last] = value;
        body
    };
    let without = |field: &str| {
        let mut body = request("c-1");
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases = [
        (
            with(&["card"], json!("4242424242424241")),
            "invalid_card",
            "card",
        ),
        (with(&["card"], json!("4242")), "invalid_card", "card"),
        (
            with(&["card"], json!(4242424242424242u64)),
            "invalid_card",
            "card",
        ),
        (
            with(&["pickup", "lat"], json!(91.0)),
            "invalid_location",
            "pickup.lat",
        ),
        (
            with(&["dropoff", "lng"], json!(-180.5)),
            "invalid_location",
            "dropoff.lng",
        ),
        (
            with(&["pickup", "name"], json!("  ")),
            "invalid_place_name",
            "pickup.name",
        ),
        (
            with(&["customerId"], json!("a b")),
            "invalid_customer_id",
            "customerId",
        ),
        (
            with(&["customerName"], json!("")),
            "invalid_customer_name",
            "customerName",
        ),
        (with(&["phone"], json!("12345")), "invalid_phone", "phone"),
        (without("card"), "missing_field", "card"),
        (without("dropoff"), "missing_field", "dropoff"),
        (
            with(&["pickup"], json!({"name": "x", "lat": 1.0})),
            "missing_field",
            "pickup.lng",
        ),
    ];
    for (body, code, field) in cases {
        let answer = s.post_book(body).await;
        assert_problem(&answer, StatusCode::BAD_REQUEST, code);
        assert!(
            answer.body["detail"].as_str().unwrap().contains(field),
            "{field}: {}",
            answer.raw
        );
        assert!(!answer.raw.contains(CARD), "{}", answer.raw);
    }

    // The first problem is the one reported.
    let mut two = with(&["phone"], json!("x"));
    two["card"] = json!("1");
    assert_problem(
        &s.post_book(two).await,
        StatusCode::BAD_REQUEST,
        "invalid_phone",
    );

    let malformed = Request::builder()
        .method("POST")
        .uri("/books")
        .header(header::CONTENT_TYPE, "application/json")
        .extension(caller("operator", Role::Operator))
        .body(Body::from("{\"customerId\":"))
        .unwrap();
    let response = s.router.clone().oneshot(malformed).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(s.count("books").await, 0);
    assert_eq!(s.count("outbox").await, 0);

    let missing = s.call("GET", "/books", None, None).await;
    assert_problem(&missing, StatusCode::BAD_REQUEST, "missing_field");
    let invalid = s.call("GET", "/books?customerId=a%20b", None, None).await;
    assert_problem(&invalid, StatusCode::BAD_REQUEST, "invalid_customer_id");
    let unknown = s.call("GET", "/books/nope", None, None).await;
    assert_problem(&unknown, StatusCode::NOT_FOUND, "not_found");
    let unknown = s.call("POST", "/books/nope/cancel", None, None).await;
    assert_problem(&unknown, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_customers_bookings_are_listed_newest_first() {
    let s = service().await;
    s.driver("d-1", "AVAILABLE").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(s.post_book(request("c-1")).await.body["bookId"].clone());
    }
    s.post_book(request("c-2")).await;
    let list = s.call("GET", "/books?customerId=c-1", None, None).await;
    assert_eq!(list.status, StatusCode::OK);
    let listed: Vec<Value> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["bookId"].clone())
        .collect();
    ids.reverse();
    assert_eq!(listed, ids);
    let none = s.call("GET", "/books?customerId=c-9", None, None).await;
    assert_eq!(none.body, json!([]));
}

fn dispatched(book_id: &str) -> TaxiDispatched {
    TaxiDispatched {
        dispatch_id: "x-1".into(),
        book_id: book_id.into(),
        customer_id: "c-1".into(),
        driver_id: "d-1".into(),
        driver_name: "Kim".into(),
        car_number: "12가3456".into(),
        phone: "010-9999-0000".into(),
        eta_seconds: 180,
    }
}

fn started(book_id: &str) -> TripStarted {
    TripStarted {
        dispatch_id: "x-1".into(),
        book_id: book_id.into(),
        customer_id: "c-1".into(),
        driver_id: "d-1".into(),
    }
}

async fn new_book(s: &Service) -> String {
    s.driver("d-1", "AVAILABLE").await;
    let answer = s.post_book(request("c-1")).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    answer.body["bookId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn cancel_is_requested_from_dispatch_and_confirmed() {
    let s = service().await;
    let id = new_book(&s).await;
    let cancel = format!("/books/{id}/cancel");

    let answer = s.call("POST", &cancel, None, None).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.raw);
    assert_eq!(answer.body["status"], "CANCEL_REQUESTED");
    let requests: Vec<Value> = s
        .outbox()
        .await
        .into_iter()
        .filter(|(kind, _)| kind == "taxi.BookCancelRequested")
        .map(|(_, e)| e)
        .collect();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0]["payload"],
        json!({"bookId": id, "customerId": "c-1"})
    );
    assert_eq!(requests[0]["correlationId"], id.as_str());

    let again = s.call("POST", &cancel, None, None).await;
    assert_problem(&again, StatusCode::CONFLICT, "cancel_pending");

    let confirmed = DispatchCancelled {
        dispatch_id: "x-1".into(),
        book_id: id.clone(),
        customer_id: "c-1".into(),
        driver_id: None,
        reason: None,
    };
    let envelope = s.deliver(&confirmed, &id).await;
    let book = s
        .call("GET", &format!("/books/{id}"), None, None)
        .await
        .body;
    assert_eq!(book["status"], "CANCELLED_BY_CUSTOMER");
    let last = s.outbox().await.pop().unwrap().1;
    assert_eq!(last["causationId"], envelope.id.as_str());

    let late = s.call("POST", &cancel, None, None).await;
    assert_problem(&late, StatusCode::CONFLICT, "already_cancelled");
    assert_eq!(
        s.statuses_published(&id).await,
        ["REQUESTED", "CANCEL_REQUESTED", "CANCELLED_BY_CUSTOMER"]
    );
}

#[tokio::test]
async fn a_ride_follows_dispatch_and_a_late_cancel_is_refused() {
    let s = service().await;
    let id = new_book(&s).await;
    let get = format!("/books/{id}");

    let envelope = s.deliver(&dispatched(&id), &id).await;
    // A redelivery that slipped past the inbox changes nothing and publishes nothing.
    let outbox_len = s.count("outbox").await;
    s.redeliver(&envelope).await;
    assert_eq!(s.count("outbox").await, outbox_len);
    let book = s.call("GET", &get, None, None).await.body;
    assert_eq!(book["status"], "DISPATCHED");
    assert_eq!(book["dispatchId"], "x-1");
    assert_eq!(
        book["taxi"],
        json!({"driverId": "d-1", "driverName": "Kim", "carNumber": "12가3456",
               "phone": "010-9999-0000", "etaSeconds": 180})
    );

    // The customer cancels while the driver is on the way, the customer boards meanwhile, and
    // dispatch refuses: the ride goes on.
    let answer = s
        .call("POST", &format!("/books/{id}/cancel"), None, None)
        .await;
    assert_eq!(answer.body["status"], "CANCEL_REQUESTED");
    s.deliver(&started(&id), &id).await;
    assert_eq!(
        s.call("GET", &get, None, None).await.body["status"],
        "CANCEL_REQUESTED"
    );
    let rejected = CancelRejected {
        dispatch_id: "x-1".into(),
        book_id: id.clone(),
        customer_id: "c-1".into(),
        reason: "trip_started".into(),
    };
    s.deliver(&rejected, &id).await;
    assert_eq!(
        s.call("GET", &get, None, None).await.body["status"],
        "IN_TRIP"
    );

    let refused = s
        .call("POST", &format!("/books/{id}/cancel"), None, None)
        .await;
    assert_problem(&refused, StatusCode::CONFLICT, "trip_started");

    let ended = TripEnded {
        dispatch_id: "x-1".into(),
        book_id: id.clone(),
        customer_id: "c-1".into(),
        driver_id: "d-1".into(),
        distance_meters: 8_600,
        fare: 10_100,
        pay_id: "p-1".into(),
        method: "CARD".into(),
    };
    s.deliver(&ended, &id).await;
    let book = s.call("GET", &get, None, None).await.body;
    assert_eq!(book["status"], "COMPLETED");
    assert_eq!(book["fare"], 10_100);
    assert_eq!(book["payId"], "p-1");

    let late = s
        .call("POST", &format!("/books/{id}/cancel"), None, None)
        .await;
    assert_problem(&late, StatusCode::CONFLICT, "already_completed");
    assert_eq!(
        s.statuses_published(&id).await,
        [
            "REQUESTED",
            "DISPATCHED",
            "CANCEL_REQUESTED",
            "IN_TRIP",
            "COMPLETED"
        ]
    );
    assert_eq!(s.count("dead_letters").await, 0);
}

#[tokio::test]
async fn events_for_unknown_bookings_are_ignored() {
    let s = service().await;
    s.deliver(&dispatched("nope"), "nope").await;
    assert_eq!(s.count("outbox").await, 0);
}

/// API.md "Identity and access": a customer books and sees only as themselves; someone else's
/// booking is as good as unknown; nobody without credentials gets anywhere.
#[tokio::test]
async fn customers_book_read_and_cancel_only_their_own() {
    let s = service().await;
    s.driver("d-1", "AVAILABLE").await;
    let hong = caller("hong", Role::Customer);
    let kim = caller("kim", Role::Customer);
    let driver = caller("hong", Role::Driver);

    let mut own = request("hong");
    own.as_object_mut().unwrap().remove("customerId");
    let booked = s
        .call_as(Some(&hong), "POST", "/books", Some(own.clone()), None)
        .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.raw);
    assert_eq!(booked.body["customerId"], "hong");
    let id = booked.body["bookId"].as_str().unwrap().to_owned();

    let as_other = s
        .call_as(Some(&hong), "POST", "/books", Some(request("kim")), None)
        .await;
    assert_problem(&as_other, StatusCode::FORBIDDEN, "forbidden");
    let as_driver = s
        .call_as(Some(&driver), "POST", "/books", Some(own.clone()), None)
        .await;
    assert_problem(&as_driver, StatusCode::FORBIDDEN, "forbidden");
    let anonymous = s.call_as(None, "POST", "/books", Some(own), None).await;
    assert_problem(&anonymous, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(s.count("books").await, 1);

    let path = format!("/books/{id}");
    assert_eq!(
        s.call_as(Some(&hong), "GET", &path, None, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_problem(
        &s.call_as(Some(&kim), "GET", &path, None, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_problem(
        &s.call_as(None, "GET", &path, None, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let list = s.call_as(Some(&hong), "GET", "/books", None, None).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1, "{}", list.raw);
    let others = s
        .call_as(Some(&kim), "GET", "/books?customerId=hong", None, None)
        .await;
    assert_problem(&others, StatusCode::FORBIDDEN, "forbidden");

    let cancel = format!("/books/{id}/cancel");
    let cancelled = s.call_as(Some(&kim), "POST", &cancel, None, None).await;
    assert_problem(&cancelled, StatusCode::NOT_FOUND, "not_found");
    let book = s.call("GET", &path, None, None).await;
    assert_eq!(
        book.body["status"], "REQUESTED",
        "a stranger's cancel changed nothing"
    );
    let cancelled = s.call_as(Some(&hong), "POST", &cancel, None, None).await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED, "{}", cancelled.raw);
}

/// The same Idempotency-Key from two customers names two requests.
#[tokio::test]
async fn idempotency_keys_belong_to_their_caller() {
    let s = service().await;
    s.driver("d-1", "AVAILABLE").await;
    let hong = caller("hong", Role::Customer);
    let kim = caller("kim", Role::Customer);
    let mut body = request("x");
    body.as_object_mut().unwrap().remove("customerId");
    let first = s
        .call_as(
            Some(&hong),
            "POST",
            "/books",
            Some(body.clone()),
            Some("k-1"),
        )
        .await;
    let second = s
        .call_as(Some(&kim), "POST", "/books", Some(body), Some("k-1"))
        .await;
    assert_eq!(
        (first.status, second.status),
        (StatusCode::CREATED, StatusCode::CREATED),
        "{}",
        second.raw
    );
    assert_eq!(second.body["customerId"], "kim");
    assert_eq!(s.count("books").await, 2);
}

// ---- the answer deadline ------------------------------------------------------------------

#[tokio::test]
async fn a_booking_is_answered_by_its_deadline_and_a_late_taxi_changes_nothing() {
    let s = service().await;
    let id = new_book(&s).await;
    let book = s
        .call("GET", &format!("/books/{id}"), None, None)
        .await
        .body;
    let answer_by = tanda_core::clock::parse_rfc3339(book["answerBy"].as_str().unwrap()).unwrap();
    let created_at = tanda_core::clock::parse_rfc3339(book["createdAt"].as_str().unwrap()).unwrap();
    assert_eq!(answer_by - created_at, DEADLINE_MS);
    // The timer is set with the booking, and dispatch is told the same deadline.
    assert_eq!(s.answer_timers().await, [(id.clone(), answer_by)]);
    let requested = s.published("taxi.BookRequested").await;
    assert_eq!(requested[0]["answerBy"], book["answerBy"]);

    s.answer_due(&id).await;
    assert_eq!(s.status(&id).await, "CANCELLED_BY_SYSTEM");
    assert_eq!(
        s.published("taxi.BookExpired").await,
        [json!({"bookId": id, "customerId": "c-1"})]
    );
    assert_eq!(
        s.statuses_published(&id).await,
        ["REQUESTED", "CANCELLED_BY_SYSTEM"]
    );

    // The taxi accepted just before, but book hears of it after: dispatch calls it back.
    let outbox = s.count("outbox").await;
    s.deliver(&dispatched(&id), &id).await;
    s.answer_due(&id).await;
    assert_eq!(s.status(&id).await, "CANCELLED_BY_SYSTEM");
    assert_eq!(s.count("outbox").await, outbox, "nothing more to say");
    let card = s
        .call(
            "PUT",
            &format!("/books/{id}/card"),
            Some(json!({"card": CARD})),
            None,
        )
        .await;
    assert_problem(&card, StatusCode::CONFLICT, "already_cancelled");
}

#[tokio::test]
async fn a_pending_cancel_still_waiting_is_answered_by_the_deadline() {
    let s = service().await;
    let id = new_book(&s).await;
    s.call("POST", &format!("/books/{id}/cancel"), None, None)
        .await;
    assert_eq!(s.answer_timers().await.len(), 1, "still waiting for a taxi");
    s.answer_due(&id).await;
    assert_eq!(s.status(&id).await, "CANCELLED_BY_SYSTEM");
    assert_eq!(s.published("taxi.BookExpired").await.len(), 1);
}

#[tokio::test]
async fn a_dispatched_booking_drops_its_answer_timer() {
    let s = service().await;
    let id = new_book(&s).await;
    s.deliver(&dispatched(&id), &id).await;
    assert_eq!(s.answer_timers().await, []);
    // Had it fired all the same (a timer claimed just before), it changes nothing.
    s.answer_due(&id).await;
    assert_eq!(s.status(&id).await, "DISPATCHED");
    assert_eq!(s.published("taxi.BookExpired").await, Vec::<Value>::new());
}

/// However the system's cancel comes — dispatch's failure heard first, or dispatch cancelling a
/// dispatch as expired — the customer is answered once, with `BookExpired`.
#[tokio::test]
async fn every_system_cancel_answers_the_customer_once() {
    let s = service().await;
    let failed_first = new_book(&s).await;
    let failed = DispatchFailed {
        dispatch_id: "x-1".into(),
        book_id: failed_first.clone(),
        customer_id: "c-1".into(),
        reason: "no driver accepted before the deadline".into(),
        driver_id: None,
    };
    s.deliver(&failed, &failed_first).await;
    s.answer_due(&failed_first).await;
    assert_eq!(s.status(&failed_first).await, "CANCELLED_BY_SYSTEM");

    let cancelling = new_book(&s).await;
    s.call("POST", &format!("/books/{cancelling}/cancel"), None, None)
        .await;
    s.deliver(&dispatched(&cancelling), &cancelling).await;
    let expired = DispatchCancelled {
        dispatch_id: "x-1".into(),
        book_id: cancelling.clone(),
        customer_id: "c-1".into(),
        driver_id: Some("d-1".into()),
        reason: Some(EXPIRED.into()),
    };
    s.deliver(&expired, &cancelling).await;
    assert_eq!(s.status(&cancelling).await, "CANCELLED_BY_SYSTEM");

    let told: Vec<Value> = s
        .published("taxi.BookExpired")
        .await
        .iter()
        .map(|e| e["bookId"].clone())
        .collect();
    assert_eq!(told, [json!(failed_first), json!(cancelling)]);
    assert_eq!(s.answer_timers().await, []);
}

// ---- the card -------------------------------------------------------------------------------

#[tokio::test]
async fn the_card_is_replaced_until_the_fare_is_paid_and_never_kept_in_full() {
    let s = service().await;
    let id = new_book(&s).await;
    let path = format!("/books/{id}/card");
    let outbox = s.count("outbox").await;
    for (body, code) in [
        (json!({"card": "4242424242424241"}), "invalid_card"),
        (json!({"card": 4242424242424242u64}), "invalid_card"),
        (json!({"card": "42"}), "invalid_card"),
        (json!({}), "missing_field"),
    ] {
        let answer = s.call("PUT", &path, Some(body), None).await;
        assert_problem(&answer, StatusCode::BAD_REQUEST, code);
        assert!(!answer.raw.contains("424242424242424"), "{}", answer.raw);
    }
    assert_eq!(
        s.count("outbox").await,
        outbox,
        "a refused card changes nothing"
    );

    s.deliver(&dispatched(&id), &id).await;
    s.deliver(&started(&id), &id).await;
    let new_card = "5555555555554444";
    let answer = s
        .call("PUT", &path, Some(json!({"card": new_card})), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.raw);
    assert_eq!(answer.body["cardLast4"], "4444");
    assert_eq!(answer.body["status"], "IN_TRIP");
    assert!(!answer.raw.contains(new_card));
    let replaced = s.published("taxi.BookCardReplaced").await;
    assert_eq!(replaced.len(), 1);
    assert_eq!(replaced[0]["bookId"], id.as_str());
    assert_eq!(replaced[0]["customerId"], "c-1");
    assert_eq!(replaced[0]["driverId"], "d-1");
    assert_eq!(replaced[0]["cardLast4"], "4444");
    assert!(
        replaced[0]["cardToken"]
            .as_str()
            .unwrap()
            .starts_with("tok_4444_")
    );
    assert!(!s.books_dump().await.contains(new_card));
    assert!(
        s.books_dump()
            .await
            .contains(replaced[0]["cardToken"].as_str().unwrap())
    );
    for (_, envelope) in s.outbox().await {
        assert!(!envelope.to_string().contains(new_card));
    }
    assert_eq!(
        s.statuses_published(&id).await,
        ["REQUESTED", "DISPATCHED", "IN_TRIP"],
        "the card is not a status"
    );

    let someone_else = caller("c-2", Role::Customer);
    let answer = s
        .call_as(
            Some(&someone_else),
            "PUT",
            &path,
            Some(json!({"card": CARD})),
            None,
        )
        .await;
    assert_problem(&answer, StatusCode::NOT_FOUND, "not_found");
    let owner = caller("c-1", Role::Customer);
    let answer = s
        .call_as(
            Some(&owner),
            "PUT",
            &path,
            Some(json!({"card": CARD})),
            None,
        )
        .await;
    assert_eq!(answer.body["cardLast4"], "4242");

    let ended = TripEnded {
        dispatch_id: "x-1".into(),
        book_id: id.clone(),
        customer_id: "c-1".into(),
        driver_id: "d-1".into(),
        distance_meters: 8_600,
        fare: 10_100,
        pay_id: "p-1".into(),
        method: "CARD".into(),
    };
    s.deliver(&ended, &id).await;
    let late = s
        .call("PUT", &path, Some(json!({"card": new_card})), None)
        .await;
    assert_problem(&late, StatusCode::CONFLICT, "already_completed");
    let missing = s
        .call("PUT", "/books/nope/card", Some(json!({"card": CARD})), None)
        .await;
    assert_problem(&missing, StatusCode::NOT_FOUND, "not_found");
}

// ---- the breaker looks near the pickup ------------------------------------------------------

#[tokio::test]
async fn only_a_driver_near_the_pickup_keeps_book_from_refusing() {
    let s = service().await;
    // The pickup of `request` is at 37.3591, 127.1052; a degree of latitude is 111.2 km.
    s.driver_at("far", "AVAILABLE", 37.3591 + 0.27, 127.1052)
        .await; // 30 km north
    let answer = s.post_book(request("c-1")).await;
    assert_problem(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "no_taxi_available",
    );
    // 6 km: beyond the 5 km radius, but within the area cell book allows for. Taken.
    s.driver_at("far", "AVAILABLE", 37.3591 + 0.054, 127.1052)
        .await;
    assert_eq!(
        s.post_book(request("c-1")).await.status,
        StatusCode::CREATED
    );
    // 8 km east: refused again.
    s.driver_at("far", "AVAILABLE", 37.3591, 127.1052 + 0.0903)
        .await;
    let answer = s.post_book(request("c-1")).await;
    assert_problem(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "no_taxi_available",
    );
    // A driver whose place book does not know counts anywhere: never a false refusal.
    s.driver("somewhere", "AVAILABLE").await;
    assert_eq!(
        s.post_book(request("c-1")).await.status,
        StatusCode::CREATED
    );
}
