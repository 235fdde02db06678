//! The dispatch service on a real SQLite database: its routes driven with `oneshot`, its consumer
//! fed book's events, its timers fired by hand on a manual clock, and pay faked.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};
use tanda_catalog::Place;
use tanda_catalog::taxi::pay::{Pay, PayRequest};
use tanda_catalog::taxi::{BookCancelRequested, BookCardReplaced, BookExpired, BookRequested};
use tanda_core::auth::{Caller, Role};
use tanda_core::clock::{Clock, ManualClock};
use tanda_core::db::{Durability, Migration, Timer};
use tanda_core::geo::LatLng;
use tanda_core::service::ServiceParts;
use tanda_core::sql::{query, query_scalar};
use tanda_core::{Db, Envelope};
use tanda_dispatch::{Config, MIGRATIONS, NAME, PayCallError, PayTransport, PaymentPolicy, build};
use tempfile::TempDir;

const T0: i64 = 1_800_000_000_000;
const CITY_HALL: (f64, f64) = (37.5663, 126.9779);

/// Answers with the queued outcomes, then approves; counts calls.
#[derive(Default)]
struct FakePay {
    outcomes: Mutex<VecDeque<PayCallError>>,
    /// Approves with a payment of this amount, whatever was asked (a pay that answers with a
    /// payment it already had for the dispatch).
    answered_amount: Mutex<Option<i64>>,
    calls: AtomicU32,
    /// Every request, in order.
    requests: Mutex<Vec<PayRequest>>,
}

impl FakePay {
    fn fail_next(&self, e: PayCallError) {
        self.outcomes.lock().unwrap().push_back(e);
    }
    fn answer_with_amount(&self, amount: Option<i64>) {
        *self.answered_amount.lock().unwrap() = amount;
    }
    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
    fn last_request(&self) -> PayRequest {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("pay was called")
    }
}

#[async_trait]
impl PayTransport for FakePay {
    async fn pay(&self, request: &PayRequest) -> Result<Pay, PayCallError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.requests.lock().unwrap().push(request.clone());
        if let Some(e) = self.outcomes.lock().unwrap().pop_front() {
            return Err(e);
        }
        Ok(Pay {
            pay_id: format!("pay-{}", request.dispatch_id),
            book_id: request.book_id.clone(),
            dispatch_id: request.dispatch_id.clone(),
            amount: self
                .answered_amount
                .lock()
                .unwrap()
                .unwrap_or(request.amount),
            method: request.method.clone(),
            card_last4: (request.method == "CARD").then(|| "4242".into()),
            status: "PAID".into(),
            paid_at: "2027-01-15T08:00:00.000Z".into(),
        })
    }
}

struct Service {
    _dir: TempDir,
    clock: ManualClock,
    db: Db,
    parts: ServiceParts,
    pay: Arc<FakePay>,
}

struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    replayed: bool,
    body: Value,
}

impl Service {
    async fn start(payment: PaymentPolicy) -> Self {
        Self::start_migrated(payment, MIGRATIONS).await
    }

    /// A service on a database that has only had `migrations`, as one made by an older version.
    async fn start_migrated(payment: PaymentPolicy, migrations: &[Migration]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let db = Db::open_sqlite(
            dir.path(),
            NAME,
            Durability::Normal,
            Arc::new(clock.clone()),
        )
        .await
        .unwrap();
        db.migrate(migrations).await.unwrap();
        let pay = Arc::new(FakePay::default());
        let parts = build(db.clone(), config(payment), pay.clone())
            .await
            .unwrap();
        Self {
            _dir: dir,
            clock,
            db,
            parts,
            pay,
        }
    }

    /// The same database served by a freshly built service, as after a restart.
    async fn restart(&mut self) {
        self.parts = self.another_instance().await;
    }

    /// Another instance of the service on the same database.
    async fn another_instance(&self) -> ServiceParts {
        build(
            self.db.clone(),
            config(PaymentPolicy::default()),
            self.pay.clone(),
        )
        .await
        .unwrap()
    }

    /// The routes as the operator, who may do everything, calls them.
    fn router(&self) -> Router {
        self.router_as(tanda_testkit::caller("operator", Role::Operator))
    }

    fn router_as(&self, caller: Caller) -> Router {
        self.parts.router.clone().layer(axum::Extension(caller))
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        self.call_with(method, uri, body, None).await
    }

    async fn call_with(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> Answer {
        Self::send(self.router(), method, uri, body, idempotency_key).await
    }

    async fn call_as(
        &self,
        who: &Caller,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Answer {
        Self::send(self.router_as(who.clone()), method, uri, body, None).await
    }

    async fn send(
        router: Router,
        method: Method,
        uri: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> Answer {
        let key = tanda_testkit::idempotency_key(idempotency_key);
        let body = body.map(|b| b.to_string());
        let answer =
            tanda_testkit::call(&router, None, method.as_str(), uri, body.as_deref(), &key).await;
        Answer {
            status: answer.status,
            retry_after: answer
                .headers
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap().to_owned()),
            replayed: answer.headers.contains_key("idempotent-replayed"),
            body: answer.body,
        }
    }

    async fn get(&self, uri: &str) -> Value {
        let answer = self.call(Method::GET, uri, None).await;
        assert_eq!(answer.status, StatusCode::OK, "GET {uri}: {}", answer.body);
        answer.body
    }

    /// Registers a driver north of City Hall and brings them online.
    async fn driver_online(&self, id: &str, metres_north: f64) {
        self.register(id, metres_north).await;
        let online = self
            .call(Method::POST, &format!("/drivers/{id}/online"), None)
            .await;
        assert_eq!(online.status, StatusCode::OK);
        assert_eq!(online.body["status"], "AVAILABLE");
    }

    /// Brings a driver online who is offered a waiting search right away.
    async fn driver_online_offered(&self, id: &str, metres_north: f64) {
        self.register(id, metres_north).await;
        let online = self
            .call(Method::POST, &format!("/drivers/{id}/online"), None)
            .await;
        assert_eq!(online.body["status"], "OFFERED", "{}", online.body);
    }

    async fn register(&self, id: &str, metres_north: f64) {
        let at = north(metres_north);
        let body = json!({
            "driverId": id, "name": format!("Driver {id}"), "carNumber": "서울12가3456",
            "phone": "010-1234-5678", "location": {"lat": at.lat, "lng": at.lng},
        });
        let created = self.call(Method::POST, "/drivers", Some(body)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        assert_eq!(created.body["status"], "OFFLINE");
    }

    /// Delivers an event to the `dispatch` consumer, in one unit of work as the runtime does.
    async fn deliver(&self, event: &Envelope) {
        let consumer = &self.parts.consumers[0];
        let mut uow = self.db.begin().await.unwrap();
        consumer.handler.handle(&mut uow, event).await.unwrap();
        uow.commit().await.unwrap();
    }

    async fn book(&self, book_id: &str) {
        let event = BookRequested {
            book_id: book_id.into(),
            customer_id: "cust-1".into(),
            customer_name: "Kim".into(),
            phone: "010-9999-0000".into(),
            card_token: "tok_4242".into(),
            card_last4: "4242".into(),
            pickup: place("City Hall", north(0.0)),
            dropoff: place("Gangnam", LatLng::parse(37.4979, 127.0276).unwrap()),
            answer_by: None,
        };
        self.deliver(&Envelope::new(&event, book_id, None, self.clock.now()))
            .await;
    }

    /// A booking whose answer book gives at `answer_by`.
    async fn book_answered_by(&self, book_id: &str, answer_by: i64) {
        let event = BookRequested {
            book_id: book_id.into(),
            customer_id: "cust-1".into(),
            customer_name: "Kim".into(),
            phone: "010-9999-0000".into(),
            card_token: "tok_4242".into(),
            card_last4: "4242".into(),
            pickup: place("City Hall", north(0.0)),
            dropoff: place("Gangnam", LatLng::parse(37.4979, 127.0276).unwrap()),
            answer_by: Some(tanda_core::clock::rfc3339(answer_by)),
        };
        self.deliver(&Envelope::new(&event, book_id, None, self.clock.now()))
            .await;
    }

    async fn expired(&self, book_id: &str) {
        let event = BookExpired {
            book_id: book_id.into(),
            customer_id: "cust-1".into(),
        };
        self.deliver(&Envelope::new(&event, book_id, None, self.clock.now()))
            .await;
    }

    async fn card_replaced(&self, book_id: &str, card_token: &str) {
        let event = BookCardReplaced {
            book_id: book_id.into(),
            customer_id: "cust-1".into(),
            driver_id: Some("a".into()),
            card_token: card_token.into(),
            card_last4: "4444".into(),
        };
        self.deliver(&Envelope::new(&event, book_id, None, self.clock.now()))
            .await;
    }

    async fn cancel(&self, book_id: &str) {
        let event = BookCancelRequested {
            book_id: book_id.into(),
            customer_id: "cust-1".into(),
        };
        self.deliver(&Envelope::new(&event, book_id, None, self.clock.now()))
            .await;
    }

    async fn dispatch_of(&self, book_id: &str) -> Value {
        let list = self.get(&format!("/dispatches?bookId={book_id}")).await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
        list[0].clone()
    }

    /// The driver's dispatches as listed by `GET /dispatches?driverId=`: (bookId, status).
    async fn dispatches_of_driver(&self, driver_id: &str) -> Vec<(String, String)> {
        let list = self.get(&format!("/dispatches?driverId={driver_id}")).await;
        let mut seen = Vec::new();
        for d in list.as_array().unwrap() {
            let id = str_of(&d["dispatchId"]);
            assert_eq!(
                *d,
                self.get(&format!("/dispatches/{id}")).await,
                "same view"
            );
            seen.push((str_of(&d["bookId"]), str_of(&d["status"])));
        }
        seen
    }

    async fn act(&self, dispatch_id: &str, action: &str, driver: &str) -> Answer {
        let uri = format!("/dispatches/{dispatch_id}/{action}");
        self.call(Method::POST, &uri, Some(json!({ "driverId": driver })))
            .await
    }

    /// Fires every due timer the way the timer loop does: claim the row, run the handler, commit.
    async fn fire_due_timers(&self) -> Vec<String> {
        let rows = query("SELECT id, kind, key, fire_at, payload FROM timers WHERE fire_at <= $1 ORDER BY fire_at")
            .bind(self.clock.now())
            .fetch_all(self.db.reader())
            .await
            .unwrap();
        let handler = self.parts.timers.clone().unwrap();
        let mut fired = Vec::new();
        for row in rows {
            let timer = Timer {
                id: row.get("id"),
                kind: row.get("kind"),
                key: row.get("key"),
                fire_at: row.get("fire_at"),
                payload: serde_json::from_str(&row.get::<String, _>("payload")).unwrap(),
            };
            let mut uow = self.db.begin().await.unwrap();
            let claimed = query("DELETE FROM timers WHERE id = $1")
                .bind(&timer.id)
                .execute(uow.conn())
                .await
                .unwrap();
            if claimed.rows_affected() == 1 {
                handler.fire(&mut uow, &timer).await.unwrap();
                fired.push(timer.kind.clone());
            }
            uow.commit().await.unwrap();
        }
        fired
    }

    async fn timers_of(&self, dispatch_id: &str) -> Vec<String> {
        query_scalar("SELECT kind FROM timers WHERE key = $1 ORDER BY kind")
            .bind(dispatch_id)
            .fetch_all(self.db.reader())
            .await
            .unwrap()
    }

    /// Payloads of the published events of one type, oldest first.
    async fn published(&self, kind: &str) -> Vec<Value> {
        let rows: Vec<String> =
            query_scalar("SELECT envelope FROM outbox WHERE type = $1 ORDER BY seq")
                .bind(kind)
                .fetch_all(self.db.reader())
                .await
                .unwrap();
        rows.iter()
            .map(|r| serde_json::from_str::<Envelope>(r).unwrap().payload)
            .collect()
    }
}

fn config(payment: PaymentPolicy) -> Config {
    Config {
        payment,
        ..Config::default()
    }
}

fn north(metres: f64) -> LatLng {
    let per_degree = tanda_core::geo::EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
    LatLng::parse(CITY_HALL.0 + metres / per_degree, CITY_HALL.1).unwrap()
}

fn place(name: &str, at: LatLng) -> Place {
    Place {
        name: name.into(),
        lat: at.lat,
        lng: at.lng,
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_ride_from_booking_to_paid_trip() {
    let s = Service::start(PaymentPolicy::default()).await;
    s.register("parked", 10.0).await; // nearest, but offline
    s.driver_online("near", 100.0).await;
    s.driver_online("mid", 500.0).await;
    s.driver_online("far", 1000.0).await;

    s.book("b1").await;
    let dispatch = s.dispatch_of("b1").await;
    let id = str_of(&dispatch["dispatchId"]);
    assert_eq!(dispatch["status"], "SEARCHING");
    assert_eq!(dispatch["offer"]["driverId"], "near", "{dispatch}");
    assert_eq!(s.get("/drivers/near").await["status"], "OFFERED");
    let offers = s.get("/drivers/near/offers").await;
    assert_eq!(offers.as_array().unwrap().len(), 1);
    assert_eq!(offers[0]["dispatchId"], id.as_str());
    assert_eq!(offers[0]["pickup"]["name"], "City Hall");
    assert_eq!(s.get("/drivers/mid/offers").await, json!([]));
    let offered = s.published("taxi.RideOffered").await;
    assert_eq!(offered.len(), 1);
    assert_eq!(offered[0]["driverId"], "near");
    assert_eq!(
        s.timers_of(&id).await,
        ["dispatch.deadline", "dispatch.offer"]
    );

    // Declined: the next nearest gets it; the decliner is free again.
    let declined = s.act(&id, "decline", "near").await;
    assert_eq!(declined.status, StatusCode::OK);
    assert_eq!(declined.body["offer"]["driverId"], "mid");
    assert_eq!(s.get("/drivers/near").await["status"], "AVAILABLE");
    let not_yours = s.act(&id, "accept", "far").await;
    assert_eq!(not_yours.status, StatusCode::CONFLICT);
    assert_eq!(not_yours.body["code"], "not_offered");

    // The offer timer fires: an expiry counts as a decline. At its expiry the offer is no longer
    // shown, even before the timer has fired.
    s.clock.advance(Duration::from_secs(15));
    assert_eq!(s.get("/drivers/mid/offers").await, json!([]));
    assert_eq!(
        s.act(&id, "accept", "mid").await.body["code"],
        "offer_expired"
    );
    assert_eq!(s.fire_due_timers().await, ["dispatch.offer"]);
    let dispatch = s.get(&format!("/dispatches/{id}")).await;
    assert_eq!(
        dispatch["offer"]["driverId"], "far",
        "neither near nor mid again"
    );
    assert_eq!(s.get("/drivers/mid").await["status"], "AVAILABLE");

    let accepted = s.act(&id, "accept", "far").await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(accepted.body["status"], "DISPATCHED");
    assert_eq!(accepted.body["driverId"], "far");
    let eta = (north(1000.0).distance_m(north(0.0)) / (25.0 / 3.6)).ceil();
    assert_eq!(accepted.body["etaSeconds"], eta as i64);
    assert!(accepted.body.get("offer").is_none());
    assert_eq!(s.get("/drivers/far").await["status"], "DISPATCHED");
    assert_eq!(s.get("/drivers/far").await["dispatchId"], id.as_str());
    assert!(
        s.timers_of(&id).await.is_empty(),
        "offer and deadline timers cancelled"
    );
    let dispatched = s.published("taxi.TaxiDispatched").await;
    assert_eq!(dispatched.len(), 1);
    assert_eq!(dispatched[0]["driverName"], "Driver far");
    assert_eq!(dispatched[0]["carNumber"], "서울12가3456");
    assert_eq!(dispatched[0]["etaSeconds"], eta as i64);

    let busy = s.call(Method::POST, "/drivers/far/offline", None).await;
    assert_eq!(busy.status, StatusCode::CONFLICT);
    assert_eq!(busy.body["code"], "driver_busy");
    assert_eq!(
        s.act(&id, "start", "near").await.body["code"],
        "not_assigned"
    );
    let started = s.act(&id, "start", "far").await;
    assert_eq!(started.body["status"], "IN_TRIP");

    // Too late to cancel.
    s.cancel("b1").await;
    let rejected = s.published("taxi.CancelRejected").await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["reason"], "trip already started");
    assert_eq!(s.dispatch_of("b1").await["status"], "IN_TRIP");

    // Declined card: 402, still in trip.
    s.pay
        .fail_next(PayCallError::Declined("card_declined".into()));
    let end = json!({"driverId": "far"});
    let declined = s
        .call(
            Method::POST,
            &format!("/dispatches/{id}/end"),
            Some(end.clone()),
        )
        .await;
    assert_eq!(declined.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(declined.body["code"], "card_declined");
    assert_eq!(s.dispatch_of("b1").await["status"], "IN_TRIP");

    // Pay down through every retry: 503 with Retry-After, still in trip.
    for _ in 0..3 {
        s.pay
            .fail_next(PayCallError::Unavailable("connection refused".into()));
    }
    let down = s
        .call(
            Method::POST,
            &format!("/dispatches/{id}/end"),
            Some(end.clone()),
        )
        .await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.body["code"], "payment_unavailable");
    assert_eq!(down.retry_after.as_deref(), Some("1"));
    assert_eq!(s.dispatch_of("b1").await["status"], "IN_TRIP");
    assert!(s.published("taxi.TripEnded").await.is_empty());

    let calls = s.pay.calls();
    let bad = json!({"driverId": "far", "distanceMeters": -5});
    let invalid = s
        .call(Method::POST, &format!("/dispatches/{id}/end"), Some(bad))
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(invalid.body["code"], "invalid_distance_meters");
    assert_eq!(s.pay.calls(), calls, "bad input never reaches pay");

    // The retry goes through.
    let ended = s
        .call(
            Method::POST,
            &format!("/dispatches/{id}/end"),
            Some(end.clone()),
        )
        .await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    let metres = north(0.0)
        .distance_m(LatLng::parse(37.4979, 127.0276).unwrap())
        .round() as i64;
    let fare = 4800 + 100 * ((metres - 1600) / 131);
    assert_eq!(ended.body["status"], "ENDED");
    assert_eq!(ended.body["fare"], fare);
    assert_eq!(ended.body["distanceMeters"], metres);
    assert_eq!(ended.body["payId"], format!("pay-{id}"));
    assert_eq!(s.get("/drivers/far").await["status"], "AVAILABLE");
    let trip = s.published("taxi.TripEnded").await;
    assert_eq!(trip.len(), 1);
    assert_eq!(trip[0]["fare"], fare);

    let calls = s.pay.calls();
    let twice = s
        .call(Method::POST, &format!("/dispatches/{id}/end"), Some(end))
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert_eq!(twice.body["code"], "already_ended");
    assert_eq!(s.pay.calls(), calls, "an ended trip is never charged again");
}

#[tokio::test]
async fn searches_wait_for_drivers_and_fail_at_the_deadline() {
    let s = Service::start(PaymentPolicy::default()).await;
    s.driver_online("only", 200.0).await;
    s.book("b1").await;
    let b1 = str_of(&s.dispatch_of("b1").await["dispatchId"]);
    s.act(&b1, "decline", "only").await;
    let waiting = s.dispatch_of("b1").await;
    assert_eq!(waiting["status"], "SEARCHING");
    assert!(
        waiting.get("offer").is_none(),
        "nobody left to ask: {waiting}"
    );

    // A second booking while the only driver is off: it waits, then goes to them when they return.
    s.call(Method::POST, "/drivers/only/offline", None).await;
    s.clock.advance(Duration::from_secs(1));
    s.book("b2").await;
    assert!(s.dispatch_of("b2").await.get("offer").is_none());
    let back = s.call(Method::POST, "/drivers/only/online", None).await;
    assert_eq!(
        back.body["status"], "OFFERED",
        "b2 waited; b1 was turned down"
    );
    let b2 = str_of(&s.dispatch_of("b2").await["dispatchId"]);
    assert_eq!(
        s.get("/drivers/only/offers").await[0]["dispatchId"],
        b2.as_str()
    );

    // Going offline with an offer in hand declines it.
    let off = s.call(Method::POST, "/drivers/only/offline", None).await;
    assert_eq!(off.body["status"], "OFFLINE");
    assert!(s.dispatch_of("b2").await.get("offer").is_none());

    // A driver who comes online takes the oldest waiting search they have not turned down.
    s.driver_online_offered("late", 50.0).await;
    assert_eq!(s.get("/drivers/late").await["dispatchId"], b1.as_str());
    s.act(&b1, "decline", "late").await;
    assert_eq!(s.get("/drivers/late").await["dispatchId"], b2.as_str());
    s.clock.advance(Duration::from_secs(1));
    s.book("b3").await;
    let b3 = str_of(&s.dispatch_of("b3").await["dispatchId"]);
    assert!(s.dispatch_of("b3").await.get("offer").is_none());
    s.act(&b2, "decline", "late").await;
    assert_eq!(s.get("/drivers/late").await["dispatchId"], b3.as_str());

    // The deadline: every search still open fails, and the offered driver is freed.
    s.clock.advance(Duration::from_secs(60));
    let fired = s.fire_due_timers().await;
    assert_eq!(
        fired[0], "dispatch.offer",
        "late's offer of b3 expired first"
    );
    assert!(
        fired.iter().filter(|k| *k == "dispatch.deadline").count() == 3,
        "{fired:?}"
    );
    for book in ["b1", "b2", "b3"] {
        assert_eq!(s.dispatch_of(book).await["status"], "FAILED");
    }
    assert_eq!(s.get("/drivers/late").await["status"], "AVAILABLE");
    let failed = s.published("taxi.DispatchFailed").await;
    assert_eq!(failed.len(), 3);
    assert_eq!(
        s.act(&b1, "accept", "late").await.body["code"],
        "dispatch_closed"
    );
}

#[tokio::test]
async fn the_nearest_driver_is_found_after_a_restart() {
    let mut s = Service::start(PaymentPolicy::default()).await;
    s.driver_online("a", 300.0).await;
    s.driver_online("b", 100.0).await;
    s.register("c", 50.0).await;
    s.restart().await;
    s.book("b1").await;
    assert_eq!(s.dispatch_of("b1").await["offer"]["driverId"], "b");
}

#[tokio::test]
async fn an_instance_finds_the_drivers_another_instance_brought_online() {
    let mut s = Service::start(PaymentPolicy::default()).await;
    // A second instance on the same database, started while nobody was online.
    let second = s.another_instance().await;
    s.driver_online("a", 300.0).await;
    s.driver_online("b", 100.0).await;
    s.parts = second; // the booking reaches the second instance
    s.book("b1").await;
    assert_eq!(s.dispatch_of("b1").await["offer"]["driverId"], "b");
}

/// Two instances on one database: whatever one of them changed — a driver coming online, a
/// driver moving closer — the other's next offer goes to the nearest driver.
#[tokio::test]
async fn the_nearest_driver_is_offered_whichever_instance_saw_them_arrive() {
    let mut s = Service::start(PaymentPolicy::default()).await;
    let mut other = s.another_instance().await;
    s.driver_online("far", 4_000.0).await;
    s.driver_online("farther", 4_500.0).await;
    std::mem::swap(&mut s.parts, &mut other);
    s.driver_online("near", 100.0).await; // through the other instance
    move_driver(&s, "farther", north(50.0)).await;
    std::mem::swap(&mut s.parts, &mut other);

    s.book("b1").await;
    assert_eq!(s.dispatch_of("b1").await["offer"]["driverId"], "farther");
    s.book("b2").await;
    assert_eq!(s.dispatch_of("b2").await["offer"]["driverId"], "near");
    s.book("b3").await;
    assert_eq!(s.dispatch_of("b3").await["offer"]["driverId"], "far");
}

/// The search looks across the antimeridian: 2 km east of a pickup at 179.99° E is at 179.99° W.
#[tokio::test]
async fn the_nearest_driver_across_the_antimeridian() {
    let s = Service::start(PaymentPolicy::default()).await;
    for (id, lng) in [("west", 179.96), ("east", -179.99)] {
        let body = json!({
            "driverId": id, "name": "Driver", "carNumber": "서울12가3456",
            "phone": "010-1234-5678", "location": {"lat": -17.0, "lng": lng},
        });
        let created = s.call(Method::POST, "/drivers", Some(body)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let online = s
            .call(Method::POST, &format!("/drivers/{id}/online"), None)
            .await;
        assert_eq!(online.status, StatusCode::OK);
    }
    let fiji = LatLng::parse(-17.0, 179.99).unwrap();
    let event = BookRequested {
        book_id: "b1".into(),
        customer_id: "cust-1".into(),
        customer_name: "Kim".into(),
        phone: "010-9999-0000".into(),
        card_token: "tok_4242".into(),
        card_last4: "4242".into(),
        pickup: place("Suva", fiji),
        dropoff: place("Nadi", LatLng::parse(-17.75, 177.44).unwrap()),
        answer_by: None,
    };
    s.deliver(&Envelope::new(&event, "b1", None, s.clock.now()))
        .await;
    assert_eq!(s.dispatch_of("b1").await["offer"]["driverId"], "east");
}

#[tokio::test]
async fn cancels_free_the_driver_and_may_arrive_before_the_booking() {
    let s = Service::start(PaymentPolicy::default()).await;
    s.driver_online("a", 100.0).await;
    s.book("b1").await;
    let id = str_of(&s.dispatch_of("b1").await["dispatchId"]);
    s.cancel("b1").await;
    assert_eq!(s.dispatch_of("b1").await["status"], "CANCELLED");
    assert_eq!(s.get("/drivers/a").await["status"], "AVAILABLE");
    assert!(s.timers_of(&id).await.is_empty());
    assert_eq!(
        s.act(&id, "accept", "a").await.body["code"],
        "dispatch_closed"
    );

    // Cancelled before its booking arrived: recorded, and the late booking is ignored.
    s.cancel("b2").await;
    s.book("b2").await;
    let b2 = s.dispatch_of("b2").await;
    assert_eq!(b2["status"], "CANCELLED");
    assert_eq!(
        s.get("/drivers/a").await["status"],
        "AVAILABLE",
        "nothing offered"
    );
    let cancelled = s.published("taxi.DispatchCancelled").await;
    assert_eq!(cancelled.len(), 2);
    assert_eq!(cancelled[0]["driverId"], "a");
    assert_eq!(cancelled[1]["bookId"], "b2");
}

/// The fare is dispatch's own: a payment of another amount that pay answers with (one made
/// earlier for this dispatch, by whoever) never becomes the trip's fare. The trip stays in
/// progress, nothing is announced, and it ends at its own fare once pay agrees.
#[tokio::test]
async fn the_trip_keeps_its_own_fare_whatever_amount_pay_answers_with() {
    let s = Service::start(PaymentPolicy::default()).await;
    s.driver_online("a", 100.0).await;
    s.book("b1").await;
    let id = str_of(&s.dispatch_of("b1").await["dispatchId"]);
    s.act(&id, "accept", "a").await;
    s.act(&id, "start", "a").await;
    let uri = format!("/dispatches/{id}/end");
    let end = || Some(json!({"driverId": "a", "distanceMeters": 10_000}));

    for amount in [1, 9_999_999] {
        s.pay.answer_with_amount(Some(amount));
        let refused = s.call(Method::POST, &uri, end()).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
        assert_eq!(refused.body["code"], "amount_mismatch");
        assert_eq!(s.dispatch_of("b1").await["status"], "IN_TRIP");
        assert!(s.published("taxi.TripEnded").await.is_empty());
    }

    // Pay refusing to charge another amount than the dispatch's earlier payment: the same.
    s.pay.answer_with_amount(None);
    s.pay.fail_next(PayCallError::AmountMismatch(
        "dispatch was already charged 1 won".into(),
    ));
    let refused = s.call(Method::POST, &uri, end()).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.body["code"], "amount_mismatch");
    assert_eq!(s.dispatch_of("b1").await["status"], "IN_TRIP");

    let ended = s.call(Method::POST, &uri, end()).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    assert_eq!(ended.body["fare"], 11_200);
    assert_eq!(s.published("taxi.TripEnded").await[0]["fare"], 11_200);
}

#[tokio::test]
async fn the_breaker_opens_after_repeated_pay_outages() {
    let policy = PaymentPolicy {
        timeout: Duration::from_secs(1),
        retries: 0,
        breaker_failures: 2,
        breaker_open_for: Duration::from_secs(30),
    };
    let s = Service::start(policy).await;
    s.driver_online("a", 100.0).await;
    s.book("b1").await;
    let id = str_of(&s.dispatch_of("b1").await["dispatchId"]);
    s.act(&id, "accept", "a").await;
    s.act(&id, "start", "a").await;

    let end = || Some(json!({"driverId": "a", "distanceMeters": 10_000}));
    let uri = format!("/dispatches/{id}/end");
    // Come back soon while the breaker is closed; once it opens, when it will let a call through.
    for expected_retry_after in ["1", "30"] {
        s.pay.fail_next(PayCallError::Unavailable("down".into()));
        let down = s.call(Method::POST, &uri, end()).await;
        assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.retry_after.as_deref(), Some(expected_retry_after));
    }
    assert_eq!(s.pay.calls(), 2);
    let open = s.call(Method::POST, &uri, end()).await;
    assert_eq!(open.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(open.body["code"], "payment_unavailable");
    assert_eq!(
        s.pay.calls(),
        2,
        "an open breaker fails fast without calling pay"
    );
    let retry_after: u64 = open.retry_after.unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(s.dispatch_of("b1").await["status"], "IN_TRIP");
}

#[tokio::test]
async fn drivers_are_registered_once_and_bad_input_is_refused() {
    let s = Service::start(PaymentPolicy::default()).await;
    let body = json!({
        "driverId": "kim-7", "name": "Kim", "carNumber": "12가3456", "phone": "010-1234-5678",
        "location": {"lat": 37.5, "lng": 127.0},
    });
    let first = s
        .call_with(Method::POST, "/drivers", Some(body.clone()), Some("k1"))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.body["driverId"], "kim-7");
    assert_eq!(first.body["location"], json!({"lat": 37.5, "lng": 127.0}));
    let replay = s
        .call_with(Method::POST, "/drivers", Some(body.clone()), Some("k1"))
        .await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert!(replay.replayed);
    assert_eq!(replay.body, first.body);
    let again = s.call(Method::POST, "/drivers", Some(body.clone())).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["code"], "driver_exists");
    assert_eq!(s.published("taxi.DriverStatusChanged").await.len(), 1);

    let bad = |field: &str, value: Value| {
        let mut b = body.clone();
        b["driverId"] = json!("other");
        b[field] = value;
        b
    };
    for (request, code) in [
        (bad("driverId", json!("no spaces")), "invalid_driver_id"),
        (
            bad("location", json!({"lat": 91.0, "lng": 0.0})),
            "invalid_lat",
        ),
        (
            bad("location", json!({"lat": 0.0, "lng": 181.0})),
            "invalid_lng",
        ),
        (bad("name", json!("  ")), "invalid_name"),
        (
            bad("carNumber", json!("x".repeat(21))),
            "invalid_car_number",
        ),
        (bad("phone", json!("call me")), "invalid_phone"),
        (bad("phone", json!("12")), "invalid_phone"),
        (bad("phone", json!("0".repeat(16))), "invalid_phone"),
        (bad("phone", json!("010-1234-567x")), "invalid_phone"),
        (
            bad("phone", json!("+82 (10) 1234 - 56789")),
            "invalid_phone",
        ),
        (bad("name", json!(7)), "invalid_body"),
    ] {
        let answer = s.call(Method::POST, "/drivers", Some(request)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{code}");
        assert_eq!(answer.body["code"], code);
    }
    assert_eq!(
        s.call(Method::GET, "/drivers/other", None).await.status,
        StatusCode::NOT_FOUND
    );
    // Each limit itself is allowed: a 100-character name, a 20-character car number, a phone of
    // 20 characters with 15 digits.
    let longest = json!({
        "driverId": "longest", "name": "가".repeat(100), "carNumber": "x".repeat(20),
        "phone": "+82 (10)1234-5678901", "location": {"lat": 37.5, "lng": 127.0},
    });
    assert_eq!("+82 (10)1234-5678901".len(), 20);
    let taken = s.call(Method::POST, "/drivers", Some(longest)).await;
    assert_eq!(taken.status, StatusCode::CREATED, "{}", taken.body);

    let moved = s
        .call(
            Method::PUT,
            "/drivers/kim-7/location",
            Some(json!({"lat": 37.6, "lng": 127.1})),
        )
        .await;
    assert_eq!(moved.body["location"], json!({"lat": 37.6, "lng": 127.1}));
    let nowhere = s
        .call(
            Method::PUT,
            "/drivers/kim-7/location",
            Some(json!({"lat": -100.0, "lng": 0.0})),
        )
        .await;
    assert_eq!(nowhere.body["code"], "invalid_lat");

    assert_eq!(
        s.call(Method::GET, "/dispatches/nope", None).await.status,
        StatusCode::NOT_FOUND
    );
    let missing = s.call(Method::GET, "/dispatches", None).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.body["code"], "missing_book_id");
    assert_eq!(s.get("/dispatches?bookId=unknown").await, json!([]));
    let unknown = s.act("nope", "accept", "kim-7").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

fn driver_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| str_of(&d["driverId"]))
        .collect()
}

#[tokio::test]
async fn drivers_are_listed_by_id_and_filtered_by_status() {
    let s = Service::start(PaymentPolicy::default()).await;
    assert_eq!(s.get("/drivers").await, json!([]));
    s.register("c-3", 300.0).await;
    s.driver_online("a-1", 100.0).await;
    s.driver_online("B-2", 200.0).await;

    let all = s.get("/drivers").await;
    assert_eq!(driver_ids(&all), ["B-2", "a-1", "c-3"], "byte order of ids");
    for driver in all.as_array().unwrap() {
        let id = str_of(&driver["driverId"]);
        assert_eq!(*driver, s.get(&format!("/drivers/{id}")).await);
    }
    let available = s.get("/drivers?status=AVAILABLE").await;
    assert_eq!(driver_ids(&available), ["B-2", "a-1"]);
    assert_eq!(driver_ids(&s.get("/drivers?status=OFFLINE").await), ["c-3"]);
    assert_eq!(s.get("/drivers?status=IN_TRIP").await, json!([]));

    s.book("b1").await;
    let offered = s.get("/drivers?status=OFFERED").await;
    assert_eq!(driver_ids(&offered), ["a-1"], "the nearest one");
    let dispatch_id = s.dispatch_of("b1").await["dispatchId"].clone();
    assert_eq!(offered[0]["dispatchId"], dispatch_id);
    assert_eq!(
        driver_ids(&s.get("/drivers?status=AVAILABLE").await),
        ["B-2"]
    );

    for uri in [
        "/drivers?status=available",
        "/drivers?status=BUSY",
        "/drivers?status=",
    ] {
        let refused = s.call(Method::GET, uri, None).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(refused.body["code"], "invalid_status", "{uri}");
    }
}

#[tokio::test]
async fn a_drivers_dispatches_are_listed_newest_first() {
    let s = Service::start(PaymentPolicy::default()).await;
    s.driver_online("a", 100.0).await;
    s.driver_online("b", 500.0).await;

    // b1: a drives it to the end.
    s.book("b1").await;
    let b1 = str_of(&s.dispatch_of("b1").await["dispatchId"]);
    assert_eq!(s.act(&b1, "accept", "a").await.status, StatusCode::OK);
    // b2: a is busy, so b takes it.
    s.clock.advance(Duration::from_secs(1));
    s.book("b2").await;
    let b2 = str_of(&s.dispatch_of("b2").await["dispatchId"]);
    assert_eq!(s.act(&b2, "accept", "b").await.status, StatusCode::OK);
    s.act(&b1, "start", "a").await;
    let end = json!({"driverId": "a", "distanceMeters": 10_000});
    let ended = s
        .call(Method::POST, &format!("/dispatches/{b1}/end"), Some(end))
        .await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    // b3: offered to a, who turns it down; it was never a's.
    s.clock.advance(Duration::from_secs(1));
    s.book("b3").await;
    let b3 = str_of(&s.dispatch_of("b3").await["dispatchId"]);
    assert_eq!(s.act(&b3, "decline", "a").await.status, StatusCode::OK);
    // b4: a accepts, then the customer cancels; it stays a's.
    s.clock.advance(Duration::from_secs(1));
    s.book("b4").await;
    let b4 = str_of(&s.dispatch_of("b4").await["dispatchId"]);
    assert_eq!(s.act(&b4, "accept", "a").await.status, StatusCode::OK);
    s.cancel("b4").await;

    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(b, st)| (b.to_string(), st.to_string()))
            .collect()
    };
    assert_eq!(
        s.dispatches_of_driver("a").await,
        pairs(&[("b4", "CANCELLED"), ("b1", "ENDED")])
    );
    assert_eq!(
        s.dispatches_of_driver("b").await,
        pairs(&[("b2", "DISPATCHED")])
    );
    assert_eq!(s.get("/dispatches?driverId=nobody").await, json!([]));
    assert_eq!(
        s.dispatch_of("b1").await["driverId"],
        "a",
        "bookId still works"
    );
}

#[tokio::test]
async fn dispatches_created_at_the_same_time_are_listed_by_id_descending() {
    let s = Service::start(PaymentPolicy::default()).await;
    s.book("x1").await;
    s.book("x2").await;
    s.driver_online_offered("c", 100.0).await;
    for _ in 0..2 {
        let id = str_of(&s.get("/drivers/c").await["dispatchId"]);
        s.act(&id, "accept", "c").await;
        s.act(&id, "start", "c").await;
        let end = json!({"driverId": "c", "distanceMeters": 10_000});
        let ended = s
            .call(Method::POST, &format!("/dispatches/{id}/end"), Some(end))
            .await;
        assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    }
    let list = s.get("/dispatches?driverId=c").await;
    let ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| str_of(&d["dispatchId"]))
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(list[0]["createdAt"], list[1]["createdAt"]);
    assert!(ids[0] > ids[1], "{ids:?}");
}

#[tokio::test]
async fn a_drivers_dispatch_list_stops_at_the_latest_100() {
    let s = Service::start(PaymentPolicy::default()).await;
    s.driver_online("a", 100.0).await;
    for n in 0..101 {
        s.clock.advance(Duration::from_secs(1));
        let book = format!("b{n}");
        s.book(&book).await;
        let id = str_of(&s.dispatch_of(&book).await["dispatchId"]);
        assert_eq!(s.act(&id, "accept", "a").await.status, StatusCode::OK);
        s.cancel(&book).await;
    }
    let list = s.get("/dispatches?driverId=a").await;
    let books: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| str_of(&d["bookId"]))
        .collect();
    let expected: Vec<String> = (1..101).rev().map(|n| format!("b{n}")).collect();
    assert_eq!(books, expected, "the oldest, b0, is left out");
}

#[tokio::test]
async fn listing_dispatches_takes_exactly_one_filter() {
    let s = Service::start(PaymentPolicy::default()).await;
    for (uri, code) in [
        ("/dispatches", "missing_book_id"),
        ("/dispatches?bookId=&driverId=", "missing_book_id"),
        ("/dispatches?bookId=b1&driverId=a", "ambiguous_filter"),
        ("/dispatches?driverId=not%20an%20id", "invalid_driver_id"),
    ] {
        let refused = s.call(Method::GET, uri, None).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(refused.body["code"], code, "{uri}");
    }
    let missing = s.call(Method::GET, "/dispatches", None).await;
    assert_eq!(missing.body["detail"], "give bookId or driverId");
}

/// The path of a trip as dispatch stored it (`trip_path_m`), in metres.
async fn trip_path(s: &Service, dispatch_id: &str) -> Option<f64> {
    query_scalar("SELECT trip_path_m FROM dispatches WHERE id = $1")
        .bind(dispatch_id)
        .fetch_one(s.db.reader())
        .await
        .unwrap()
}

async fn move_driver(s: &Service, driver: &str, to: LatLng) {
    let body = json!({"lat": to.lat, "lng": to.lng});
    let moved = s
        .call(
            Method::PUT,
            &format!("/drivers/{driver}/location"),
            Some(body),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
}

/// The locations a driver reports during a trip are summed into the trip's path, from the
/// pickup, in the dispatch's row: a restart forgets none of it.
#[tokio::test]
async fn a_trips_reported_path_is_stored_with_the_dispatch() {
    let mut s = Service::start(PaymentPolicy::default()).await;
    s.driver_online("a", 100.0).await;
    s.book("b1").await;
    let id = str_of(&s.dispatch_of("b1").await["dispatchId"]);
    s.act(&id, "accept", "a").await;
    move_driver(&s, "a", north(0.0)).await;
    s.act(&id, "start", "a").await;
    assert_eq!(trip_path(&s, &id).await, None);

    move_driver(&s, "a", north(-2000.0)).await;
    s.restart().await;
    move_driver(&s, "a", north(-5000.0)).await;
    let path = trip_path(&s, &id).await.unwrap();
    assert!((path - 5000.0).abs() < 0.5, "{path}");

    let end = json!({"driverId": "a", "distanceMeters": 10_000});
    let ended = s
        .call(Method::POST, &format!("/dispatches/{id}/end"), Some(end))
        .await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    move_driver(&s, "a", north(0.0)).await;
    assert_eq!(trip_path(&s, &id).await, Some(path), "the trip is over");
}

/// The fare is dispatch's: a `distanceMeters` far outside what the trip can have driven — from
/// its straight line, City Hall to Gangnam 8.8 km, and the path its driver reported — is refused
/// with 400 `implausible_distance`, reaches no payment and leaves the trip in progress. A long
/// one is taken once the reported locations show the detour.
#[tokio::test]
async fn an_implausible_distance_is_refused_and_changes_nothing() {
    let s = Service::start(PaymentPolicy::default()).await;
    s.driver_online("a", 100.0).await;
    s.book("b1").await;
    let id = str_of(&s.dispatch_of("b1").await["dispatchId"]);
    s.act(&id, "accept", "a").await;
    s.act(&id, "start", "a").await;
    let uri = format!("/dispatches/{id}/end");
    let end = |metres: i64| Some(json!({"driverId": "a", "distanceMeters": metres}));

    for metres in [1_000_000, 18_100, 3_800, 0] {
        let refused = s.call(Method::POST, &uri, end(metres)).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{metres}: {}",
            refused.body
        );
        assert_eq!(refused.body["code"], "implausible_distance");
        let detail = refused.body["detail"].as_str().unwrap();
        assert!(detail.contains(&metres.to_string()), "{detail}");
    }
    assert_eq!(
        s.pay.calls(),
        0,
        "an implausible distance never reaches pay"
    );
    assert_eq!(s.dispatch_of("b1").await["status"], "IN_TRIP");
    assert_eq!(s.get("/drivers/a").await["status"], "IN_TRIP");
    assert!(s.published("taxi.TripEnded").await.is_empty());

    // A detour 10 km north and back down to Gangnam, reported on the way: 28 km driven.
    move_driver(&s, "a", north(10_000.0)).await;
    move_driver(&s, "a", LatLng::parse(37.4979, 127.0276).unwrap()).await;
    let ended = s.call(Method::POST, &uri, end(28_000)).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    assert_eq!(ended.body["fare"], 4800 + 100 * ((28_000 - 1600) / 131));
    assert_eq!(ended.body["distanceMeters"], 28_000);
}

/// A database written by an older version: its rows, as that version wrote them, read and move
/// on once migrated — the driver index is there, and a trip in progress, with no path yet,
/// starts its path at the pickup.
#[tokio::test]
async fn a_database_of_an_older_version_is_migrated() {
    let mut s = Service::start_migrated(PaymentPolicy::default(), &MIGRATIONS[..1]).await;
    let (pickup, dropoff) = (north(0.0), LatLng::parse(37.4979, 127.0276).unwrap());
    let mut uow = s.db.begin().await.unwrap();
    query(
        "INSERT INTO drivers (id, name, car_number, phone, lat, lng, status, dispatch_id,
                              created_at, updated_at, version)
         VALUES ('a', 'Driver a', '서울12가3456', '010-1234-5678', $1, $2, 'IN_TRIP', 'x1',
                 $3, $3, 3)",
    )
    .bind(pickup.lat)
    .bind(pickup.lng)
    .bind(T0)
    .execute(uow.conn())
    .await
    .unwrap();
    query(
        "INSERT INTO dispatches (id, book_id, customer_id, card_token, pickup_name, pickup_lat,
                                 pickup_lng, dropoff_name, dropoff_lat, dropoff_lng, status,
                                 driver_id, eta_seconds, deadline_at, created_at, updated_at,
                                 version)
         VALUES ('x1', 'b1', 'cust-1', 'tok_4242', 'City Hall', $1, $2, 'Gangnam', $3, $4,
                 'IN_TRIP', 'a', 15, $5, $5, $5, 3)",
    )
    .bind(pickup.lat)
    .bind(pickup.lng)
    .bind(dropoff.lat)
    .bind(dropoff.lng)
    .bind(T0)
    .execute(uow.conn())
    .await
    .unwrap();
    uow.commit().await.unwrap();

    s.db.migrate(MIGRATIONS).await.unwrap();
    s.restart().await;
    let index: Vec<String> = query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'dispatches_driver'",
    )
    .fetch_all(s.db.reader())
    .await
    .unwrap();
    assert_eq!(index, ["dispatches_driver"]);
    assert_eq!(
        s.dispatches_of_driver("a").await,
        [("b1".to_owned(), "IN_TRIP".to_owned())]
    );
    assert_eq!(trip_path(&s, "x1").await, None);

    move_driver(&s, "a", north(-1000.0)).await;
    let path = trip_path(&s, "x1").await.unwrap();
    assert!((path - 1000.0).abs() < 0.5, "{path}");
    let end = json!({"driverId": "a", "distanceMeters": 10_000});
    let ended = s.call(Method::POST, "/dispatches/x1/end", Some(end)).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    assert_eq!(ended.body["fare"], 11_200);
}

use tanda_testkit::caller as who;

/// API.md "Identity and access": a driver registers, moves, goes online and takes offers only as
/// themselves; a dispatch is seen by its customer and by the driver it is offered or assigned
/// to; the fleet's list is the operator's.
#[tokio::test]
async fn drivers_and_customers_reach_only_their_own_drivers_and_dispatches() {
    let s = Service::start(PaymentPolicy::default()).await;
    let kim = who("kim", Role::Driver);
    let lee = who("lee", Role::Driver);
    let at = north(10.0);
    let mine = json!({"name": "Kim Minsu", "carNumber": "12가3456", "phone": "010-1111-2222",
                      "location": {"lat": at.lat, "lng": at.lng}});
    let registered = s
        .call_as(&kim, Method::POST, "/drivers", Some(mine.clone()))
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    assert_eq!(registered.body["driverId"], "kim");
    let mut as_other = mine.clone();
    as_other["driverId"] = json!("lee");
    let refused = s
        .call_as(&kim, Method::POST, "/drivers", Some(as_other))
        .await;
    assert_eq!(
        (refused.status, refused.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let customer = who("cust-1", Role::Customer);
    assert_eq!(
        s.call_as(&customer, Method::POST, "/drivers", Some(mine))
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    let online = s
        .call_as(&lee, Method::POST, "/drivers/kim/online", None)
        .await;
    assert_eq!(online.status, StatusCode::FORBIDDEN, "{}", online.body);
    assert_eq!(
        s.call_as(&lee, Method::GET, "/drivers/kim", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.call_as(&lee, Method::GET, "/drivers/kim/offers", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.call_as(&kim, Method::GET, "/drivers", None).await.status,
        StatusCode::FORBIDDEN
    );
    let moved = s
        .call_as(
            &lee,
            Method::PUT,
            "/drivers/kim/location",
            Some(json!({"lat": 37.0, "lng": 127.0})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.get("/drivers/kim").await["status"],
        "OFFLINE",
        "nothing changed"
    );
    assert_eq!(
        s.call_as(&kim, Method::POST, "/drivers/kim/online", None)
            .await
            .status,
        StatusCode::OK
    );

    s.book("b-own").await;
    let dispatch = s.dispatch_of("b-own").await;
    let id = str_of(&dispatch["dispatchId"]);
    let path = format!("/dispatches/{id}");
    assert_eq!(
        s.call_as(&kim, Method::GET, &path, None).await.status,
        StatusCode::OK,
        "offered to kim"
    );
    assert_eq!(
        s.call_as(&customer, Method::GET, &path, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        s.call_as(&lee, Method::GET, &path, None).await.status,
        StatusCode::NOT_FOUND
    );
    let stranger = who("cust-2", Role::Customer);
    assert_eq!(
        s.call_as(&stranger, Method::GET, &path, None).await.status,
        StatusCode::NOT_FOUND
    );
    let listed = s
        .call_as(&stranger, Method::GET, "/dispatches?bookId=b-own", None)
        .await;
    assert_eq!(
        listed.body,
        json!([]),
        "a stranger sees no dispatch of the booking"
    );

    let as_kim = s
        .call_as(
            &lee,
            Method::POST,
            &format!("{path}/accept"),
            Some(json!({"driverId": "kim"})),
        )
        .await;
    assert_eq!(as_kim.status, StatusCode::FORBIDDEN, "{}", as_kim.body);
    let not_offered = s
        .call_as(
            &lee,
            Method::POST,
            &format!("{path}/accept"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        not_offered.status,
        StatusCode::CONFLICT,
        "{}",
        not_offered.body
    );
    let accepted = s
        .call_as(
            &kim,
            Method::POST,
            &format!("{path}/accept"),
            Some(json!({})),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(accepted.body["driverId"], "kim");
}

/// A dispatch shows where its taxi is while it drives to the pickup and during the trip, from
/// the locations its driver reports; neither before a driver accepts nor after the trip.
#[tokio::test]
async fn a_dispatch_shows_where_its_taxi_is_while_on_the_way_and_on_the_trip() {
    let s = Service::start(PaymentPolicy::default()).await;
    s.driver_online("a", 300.0).await;
    s.book("b1").await;
    let id = str_of(&s.dispatch_of("b1").await["dispatchId"]);
    let path = format!("/dispatches/{id}");
    assert_eq!(s.get(&path).await["taxiLocation"], Value::Null, "searching");

    let at = |v: &Value| (v["lat"].as_f64().unwrap(), v["lng"].as_f64().unwrap());
    let accepted = s.act(&id, "accept", "a").await;
    let start = north(300.0);
    assert_eq!(at(&accepted.body["taxiLocation"]), (start.lat, start.lng));
    move_driver(&s, "a", north(100.0)).await;
    let near = north(100.0);
    assert_eq!(
        at(&s.get(&path).await["taxiLocation"]),
        (near.lat, near.lng)
    );
    assert_eq!(s.dispatches_of_driver("a").await.len(), 1, "listed alike");

    move_driver(&s, "a", north(0.0)).await;
    let started = s.act(&id, "start", "a").await;
    assert_eq!(
        at(&started.body["taxiLocation"]),
        (CITY_HALL.0, CITY_HALL.1)
    );
    let end = json!({"driverId": "a", "distanceMeters": 9_000});
    let ended = s
        .call(Method::POST, &format!("{path}/end"), Some(end))
        .await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    assert_eq!(ended.body["taxiLocation"], Value::Null);
    assert_eq!(s.get(&path).await["taxiLocation"], Value::Null, "ended");
}

// ---- the booking's answer, a declined card, cash, and where drivers are -----------------------

/// `a` at the pickup, booking `b1` offered to them, accepted and started; the dispatch id.
async fn trip_in_progress(s: &Service) -> String {
    s.driver_online("a", 0.0).await;
    s.book("b1").await;
    let id = str_of(&s.dispatch_of("b1").await["dispatchId"]);
    assert_eq!(s.act(&id, "accept", "a").await.status, StatusCode::OK);
    assert_eq!(s.act(&id, "start", "a").await.status, StatusCode::OK);
    id
}

#[tokio::test]
async fn the_search_ends_when_the_bookings_answer_is_due() {
    let s = Service::start(PaymentPolicy::default()).await;
    s.book_answered_by("b1", T0 + 5_000).await;
    let dispatch = s.dispatch_of("b1").await;
    assert_eq!(
        dispatch["deadlineAt"],
        tanda_core::clock::rfc3339(T0 + 5_000)
    );
    let id = str_of(&dispatch["dispatchId"]);
    s.clock.advance(Duration::from_secs(5));
    assert_eq!(s.fire_due_timers().await, ["dispatch.deadline"]);
    assert_eq!(
        s.get(&format!("/dispatches/{id}")).await["status"],
        "FAILED"
    );
    assert_eq!(
        s.published("taxi.DispatchFailed").await[0]["reason"],
        "no driver accepted before the deadline"
    );
}

#[tokio::test]
async fn a_booking_heard_of_after_its_answer_is_offered_to_nobody() {
    let s = Service::start(PaymentPolicy::default()).await;
    s.driver_online("a", 100.0).await;
    s.clock.advance(Duration::from_secs(61));
    s.book_answered_by("b1", T0 + 60_000).await;
    let dispatch = s.dispatch_of("b1").await;
    assert_eq!(dispatch["status"], "FAILED");
    assert!(dispatch.get("offer").is_none(), "{dispatch}");
    assert_eq!(s.get("/drivers/a").await["status"], "AVAILABLE");
    assert_eq!(s.get("/drivers/a/offers").await, json!([]));
    assert_eq!(s.published("taxi.RideOffered").await, Vec::<Value>::new());
    let failed = s.published("taxi.DispatchFailed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0]["reason"],
        "the booking was answered before dispatch heard of it"
    );
    assert!(failed[0].get("driverId").is_none());
    assert_eq!(
        s.timers_of(&str_of(&dispatch["dispatchId"])).await,
        Vec::<String>::new()
    );
    // Then book's answer arrives: nothing is left to close.
    s.expired("b1").await;
    assert_eq!(
        s.published("taxi.DispatchCancelled").await,
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn an_expired_booking_withdraws_the_offer_or_calls_back_the_taxi() {
    let s = Service::start(PaymentPolicy::default()).await;
    s.driver_online("a", 100.0).await;
    s.book("b1").await;
    let id = str_of(&s.dispatch_of("b1").await["dispatchId"]);
    assert_eq!(s.get("/drivers/a").await["status"], "OFFERED");
    s.expired("b1").await;
    assert_eq!(
        s.get(&format!("/dispatches/{id}")).await["status"],
        "CANCELLED"
    );
    assert_eq!(s.get("/drivers/a").await["status"], "AVAILABLE");
    assert_eq!(s.timers_of(&id).await, Vec::<String>::new());

    // The late-dispatch race: accepted, but book answered "no taxi" first.
    s.book("b2").await;
    let id = str_of(&s.dispatch_of("b2").await["dispatchId"]);
    assert_eq!(s.act(&id, "accept", "a").await.status, StatusCode::OK);
    s.expired("b2").await;
    assert_eq!(
        s.get(&format!("/dispatches/{id}")).await["status"],
        "CANCELLED"
    );
    assert_eq!(s.get("/drivers/a").await["status"], "AVAILABLE");
    let cancelled = s.published("taxi.DispatchCancelled").await;
    assert_eq!(cancelled.len(), 2);
    for (c, book) in cancelled.iter().zip(["b1", "b2"]) {
        assert_eq!(c["bookId"], book);
        assert_eq!(c["driverId"], "a");
        assert_eq!(c["reason"], "expired");
    }
    assert_eq!(
        s.act(&id, "start", "a").await.body["code"],
        "dispatch_closed"
    );

    // A customer's cancel says so.
    s.book("b3").await;
    s.cancel("b3").await;
    assert_eq!(
        s.published("taxi.DispatchCancelled").await[2]["reason"],
        "customer"
    );
}

#[tokio::test]
async fn an_expired_booking_leaves_a_trip_under_way_alone() {
    let s = Service::start(PaymentPolicy::default()).await;
    let id = trip_in_progress(&s).await;
    s.expired("b1").await;
    assert_eq!(
        s.get(&format!("/dispatches/{id}")).await["status"],
        "IN_TRIP"
    );
    assert_eq!(s.get("/drivers/a").await["status"], "IN_TRIP");
}

#[tokio::test]
async fn a_declined_card_is_told_once_and_the_replaced_card_is_charged() {
    let s = Service::start(PaymentPolicy::default()).await;
    let id = trip_in_progress(&s).await;
    let end = format!("/dispatches/{id}/end");
    let body = json!({"driverId": "a", "distanceMeters": 10_000});
    for _ in 0..2 {
        s.pay.fail_next(PayCallError::Declined(
            "the card was declined (card_declined)".into(),
        ));
        let declined = s.call(Method::POST, &end, Some(body.clone())).await;
        assert_eq!(
            declined.status,
            StatusCode::PAYMENT_REQUIRED,
            "{}",
            declined.body
        );
        assert_eq!(declined.body["code"], "card_declined");
    }
    let told = s.published("taxi.PaymentDeclined").await;
    assert_eq!(
        told.len(),
        1,
        "two retries in a moment are told once: {told:?}"
    );
    assert_eq!(
        told[0],
        json!({"dispatchId": id, "bookId": "b1", "customerId": "cust-1", "driverId": "a",
               "fare": 11_200, "reason": "the card was declined (card_declined)"})
    );
    assert_eq!(
        s.get(&format!("/dispatches/{id}")).await["status"],
        "IN_TRIP"
    );
    let offline = s.call(Method::POST, "/drivers/a/offline", None).await;
    assert_eq!(offline.body["code"], "driver_busy");

    s.card_replaced("b1", "tok_4444_ok_new").await;
    let ended = s.call(Method::POST, &end, Some(body)).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    assert_eq!(ended.body["paymentMethod"], "CARD");
    let asked = s.pay.last_request();
    assert_eq!(
        (asked.card_token.as_str(), asked.method.as_str()),
        ("tok_4444_ok_new", "CARD")
    );
    assert_eq!(asked.amount, 11_200);
    assert_eq!(s.published("taxi.TripEnded").await[0]["method"], "CARD");
    assert_eq!(s.get("/drivers/a").await["status"], "AVAILABLE");
    // A card replaced after the fare was paid changes nothing.
    s.card_replaced("b1", "tok_5555_ok_later").await;
    assert_eq!(s.published("taxi.PaymentDeclined").await.len(), 1);
}

#[tokio::test]
async fn a_trip_settled_in_cash_is_paid_through_pay_with_no_card() {
    let s = Service::start(PaymentPolicy::default()).await;
    let id = trip_in_progress(&s).await;
    let end = format!("/dispatches/{id}/end");
    for settlement in [
        json!("CHEQUE"),
        json!("cash"),
        json!(7),
        json!({"method": "CASH"}),
    ] {
        let body = json!({"driverId": "a", "settlement": settlement});
        let refused = s.call(Method::POST, &end, Some(body)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
        assert_eq!(refused.body["code"], "invalid_settlement");
    }
    assert_eq!(s.pay.calls(), 0, "a bad request reaches no payment");

    let body = json!({"driverId": "a", "distanceMeters": 10_000, "settlement": "CASH"});
    let ended = s.call(Method::POST, &end, Some(body)).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    assert_eq!(ended.body["status"], "ENDED");
    assert_eq!(ended.body["fare"], 11_200);
    assert_eq!(ended.body["paymentMethod"], "CASH");
    let asked = s.pay.last_request();
    assert_eq!(
        (asked.method.as_str(), asked.card_token.as_str()),
        ("CASH", "")
    );
    assert_eq!(asked.amount, 11_200, "the fare computed as for a card");
    let ended_event = &s.published("taxi.TripEnded").await[0];
    assert_eq!(ended_event["method"], "CASH");
    assert_eq!(ended_event["fare"], 11_200);
    assert_eq!(s.get("/drivers/a").await["status"], "AVAILABLE");
    let offline = s.call(Method::POST, "/drivers/a/offline", None).await;
    assert_eq!(offline.body["status"], "OFFLINE");
}

#[tokio::test]
async fn drivers_are_announced_with_where_they_are_and_when_they_change_area() {
    let s = Service::start(PaymentPolicy::default()).await;
    s.driver_online("a", 0.0).await;
    let announced = |list: Vec<Value>| -> Vec<(String, f64)> {
        list.iter()
            .map(|e| (str_of(&e["status"]), e["location"]["lat"].as_f64().unwrap()))
            .collect()
    };
    let start = north(0.0);
    assert_eq!(
        announced(s.published("taxi.DriverStatusChanged").await),
        [
            ("OFFLINE".to_owned(), start.lat),
            ("AVAILABLE".to_owned(), start.lat)
        ]
    );
    // City Hall is at 37.5663: 37.5699 is the same cell, 37.5702 the next one north.
    move_driver(&s, "a", LatLng::parse(37.5699, 126.9779).unwrap()).await;
    assert_eq!(s.published("taxi.DriverStatusChanged").await.len(), 2);
    move_driver(&s, "a", LatLng::parse(37.5702, 126.9779).unwrap()).await;
    let all = announced(s.published("taxi.DriverStatusChanged").await);
    assert_eq!(all.len(), 3);
    assert_eq!(all[2], ("AVAILABLE".to_owned(), 37.5702));
    // Off line, moves are nobody's business.
    s.call(Method::POST, "/drivers/a/offline", None).await;
    move_driver(&s, "a", north(5_000.0)).await;
    let all = announced(s.published("taxi.DriverStatusChanged").await);
    assert_eq!(all.len(), 4);
    assert_eq!(all[3], ("OFFLINE".to_owned(), 37.5702));
}
