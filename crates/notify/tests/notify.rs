//! notify as the binary wires it, on a temp SQLite database: events through its consumers'
//! handlers, the list over HTTP in each receiver's language, the live SSE stream over a real
//! socket, and webhook delivery.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tanda_catalog::Place;
use tanda_catalog::flight::{
    PaymentFailed, PaymentRefunded, PaymentSucceeded, ReservationCancelRequested,
    ReservationRequested, ReservationStatusChanged, TicketIssued, TicketVoided,
};
use tanda_catalog::identity::{AccountOpened, LocaleChanged};
use tanda_catalog::taxi::{
    BookCardReplaced, BookExpired, BookRequested, BookStatusChanged, CancelRejected,
    DispatchCancelled, DispatchFailed, OfferExpired, PaymentDeclined, RideOffered, TaxiDispatched,
    TripEnded, TripStarted,
};
use tanda_core::auth::{Caller, Role};
use tanda_core::db::Durability;
use tanda_core::lifecycle::Lifecycle;
use tanda_core::service::ServiceParts;
use tanda_core::sql::{query, query_scalar};
use tanda_core::{Db, Envelope, Event, SystemClock};
use tanda_notify::{Config, MIGRATIONS, NAME, SPEC, build};
use tanda_testkit::caller;
use tempfile::TempDir;
use tower::ServiceExt;

/// Long enough for anything this test waits on; never a claim about speed.
const PATIENCE: Duration = Duration::from_secs(30);

struct Service {
    _dir: TempDir,
    db: Db,
    parts: ServiceParts,
    lifecycle: Lifecycle,
}

async fn start(config: Config) -> Service {
    let (dir, db) = tanda_testkit::database(&SPEC).await;
    let lifecycle = Lifecycle::new();
    let parts = build(db.clone(), config, &lifecycle).await.unwrap();
    Service {
        _dir: dir,
        db,
        parts,
        lifecycle,
    }
}

impl Service {
    /// Runs `event` through the handler of notify's consumer of its type (any, for a type no
    /// consumer takes) in one committed unit of work.
    async fn deliver<E: Event>(&self, event: &E) {
        self.deliver_made_at(event, self.db.now()).await;
    }

    /// Runs `event` through the handler as if its producer made it at `occurred_at` (ms).
    async fn deliver_made_at<E: Event>(&self, event: &E, occurred_at: i64) {
        let envelope = Envelope::new(event, event.aggregate_id(), None, occurred_at);
        let consumers = &self.parts.consumers;
        let consumer = consumers
            .iter()
            .find(|c| c.types.contains(&E::TYPE))
            .unwrap_or(&consumers[0]);
        let mut uow = self.db.begin().await.unwrap();
        consumer.handler.handle(&mut uow, &envelope).await.unwrap();
        uow.commit().await.unwrap();
    }

    /// The routes as the operator, who may read everything, calls them.
    fn router(&self) -> Router {
        self.router_as(caller("operator", Role::Operator))
    }

    fn router_as(&self, caller: Caller) -> Router {
        self.parts.router.clone().layer(axum::Extension(caller))
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        Self::get_from(self.router(), uri).await
    }

    async fn get_from(router: Router, uri: &str) -> (StatusCode, Value) {
        let answer = tanda_testkit::call(&router, None, "GET", uri, None, &[]).await;
        assert_ne!(answer.body, Value::Null, "not JSON: {}", answer.raw);
        (answer.status, answer.body)
    }

    async fn texts(&self, receiver: &str) -> Vec<(String, String)> {
        let (status, list) = self
            .get(&format!("/notifications?receiver={receiver}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        list.as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["subject"].as_str().unwrap().to_owned(),
                    n["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

fn place(name: &str) -> Place {
    Place {
        name: name.to_owned(),
        lat: 37.5,
        lng: 127.0,
    }
}

fn book_requested(book: &str, customer: &str) -> BookRequested {
    BookRequested {
        book_id: book.into(),
        customer_id: customer.into(),
        customer_name: "Lee".into(),
        phone: "010-0000-0000".into(),
        card_token: "tok".into(),
        card_last4: "4242".into(),
        pickup: place("Gangnam Station"),
        dropoff: place("Seoul Station"),
        answer_by: None,
    }
}

/// `user` signed up choosing `locale`.
fn opened(user: &str, locale: &str) -> AccountOpened {
    AccountOpened {
        user_id: user.into(),
        role: "customer".into(),
        locale: locale.into(),
    }
}

fn trip_started(book: &str, customer: &str) -> TripStarted {
    TripStarted {
        dispatch_id: format!("d-{book}"),
        book_id: book.into(),
        customer_id: customer.into(),
        driver_id: "kim".into(),
    }
}

#[tokio::test]
async fn every_event_is_told_to_the_right_people() {
    let s = start(Config::default()).await;
    let names: Vec<&str> = s.parts.consumers.iter().map(|c| c.name).collect();
    assert_eq!(names, ["notify", "notify-locales"]);
    let consumer = &s.parts.consumers[0];
    for kind in [
        BookRequested::TYPE,
        RideOffered::TYPE,
        TaxiDispatched::TYPE,
        TripStarted::TYPE,
        TripEnded::TYPE,
        DispatchFailed::TYPE,
        DispatchCancelled::TYPE,
        CancelRejected::TYPE,
        BookExpired::TYPE,
        PaymentDeclined::TYPE,
        BookCardReplaced::TYPE,
    ] {
        assert!(consumer.types.contains(&kind), "{kind}");
    }
    assert_eq!(
        s.parts.consumers[1].types,
        [AccountOpened::TYPE, LocaleChanged::TYPE]
    );
    assert!(s.parts.timers.is_none());
    // The customer reads English; the driver, of whom notify knows nothing, Korean.
    s.deliver(&opened("c1", "en")).await;
    s.deliver(&book_requested("b1", "c1")).await;
    s.deliver(&RideOffered {
        dispatch_id: "d1".into(),
        book_id: "b1".into(),
        customer_id: "c1".into(),
        driver_id: "kim".into(),
        pickup: place("Gangnam Station"),
        dropoff: place("Seoul Station"),
        expires_at: "2026-11-21T09:30:15.000Z".into(),
    })
    .await;
    s.deliver(&TaxiDispatched {
        dispatch_id: "d1".into(),
        book_id: "b1".into(),
        customer_id: "c1".into(),
        driver_id: "kim".into(),
        driver_name: "Kim".into(),
        car_number: "12가3456".into(),
        phone: "010-1234-5678".into(),
        eta_seconds: 150,
    })
    .await;
    s.deliver(&trip_started("b1", "c1")).await;
    s.deliver(&TripEnded {
        dispatch_id: "d1".into(),
        book_id: "b1".into(),
        customer_id: "c1".into(),
        driver_id: "kim".into(),
        distance_meters: 9_000,
        fare: 11_200,
        pay_id: "p1".into(),
        method: "CARD".into(),
    })
    .await;
    // Not something notify speaks about: stores nothing.
    s.deliver(&BookStatusChanged {
        book_id: "b1".into(),
        customer_id: "c1".into(),
        status: "COMPLETED".into(),
    })
    .await;

    let customer = s.texts("customer:c1").await;
    let expected_customer = [
        (
            "trip.ended",
            "You have arrived. ₩11,200 was charged (payment p1).",
        ),
        ("trip.started", "Your trip has started."),
        (
            "taxi.dispatched",
            "Taxi 12가3456 (Kim, 010-1234-5678) is on its way: about 3 min.",
        ),
        (
            "book.requested",
            "Looking for a taxi from Gangnam Station to Seoul Station.",
        ),
    ];
    assert_eq!(
        customer,
        expected_customer.map(|(a, b)| (a.into(), b.into()))
    );
    let driver = s.texts("driver:kim").await;
    let expected_driver = [
        ("trip.ended", "운행이 끝났어요. 요금은 11,200원이에요."),
        (
            "ride.accepted",
            "배차가 확정됐어요. 승차 위치로 이동해 주세요.",
        ),
        (
            "ride.offered",
            "새 호출이 왔어요: Gangnam Station → Seoul Station. 11월 21일 18:30까지 수락해 주세요.",
        ),
    ];
    assert_eq!(driver, expected_driver.map(|(a, b)| (a.into(), b.into())));

    // The full shape: correlation = booking id, RFC 3339 UTC time.
    let (_, list) = s.get("/notifications?receiver=customer:c1&limit=1").await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let n = &list[0];
    assert_eq!(n["receiver"], "customer:c1");
    assert_eq!(n["locale"], "en");
    assert_eq!(n["correlationId"], "b1");
    assert!(n["notificationId"].as_str().unwrap().len() == 36);
    assert!(n["createdAt"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn failures_and_cancels_are_told_too() {
    let s = start(Config::default()).await;
    s.deliver(&BookExpired {
        book_id: "b2".into(),
        customer_id: "c2".into(),
    })
    .await;
    s.deliver(&DispatchFailed {
        dispatch_id: "d2".into(),
        book_id: "b2".into(),
        customer_id: "c2".into(),
        reason: "no driver accepted".into(),
        driver_id: Some("yoon".into()),
    })
    .await;
    s.deliver(&OfferExpired {
        dispatch_id: "d2".into(),
        book_id: "b2".into(),
        driver_id: "han".into(),
    })
    .await;
    s.deliver(&DispatchCancelled {
        dispatch_id: "d3".into(),
        book_id: "b3".into(),
        customer_id: "c2".into(),
        driver_id: Some("park".into()),
        reason: None,
    })
    .await;
    s.deliver(&DispatchCancelled {
        dispatch_id: "d4".into(),
        book_id: "b4".into(),
        customer_id: "c2".into(),
        driver_id: None,
        reason: Some("customer".into()),
    })
    .await;
    // A booking that ran out closes the ride of a driver already on the way; its customer heard
    // of it from `BookExpired`.
    s.deliver(&DispatchCancelled {
        dispatch_id: "d6".into(),
        book_id: "b6".into(),
        customer_id: "c6".into(),
        driver_id: Some("seo".into()),
        reason: Some("expired".into()),
    })
    .await;
    s.deliver(&CancelRejected {
        dispatch_id: "d5".into(),
        book_id: "b5".into(),
        customer_id: "c2".into(),
        reason: "trip started".into(),
    })
    .await;

    let subjects: Vec<String> = s
        .texts("customer:c2")
        .await
        .into_iter()
        .map(|(subject, _)| subject)
        .collect();
    assert_eq!(
        subjects,
        [
            "cancel.rejected",
            "book.cancelled",
            "book.cancelled",
            "dispatch.failed"
        ]
    );
    assert_eq!(
        s.texts("customer:c2").await[0].1,
        "이미 운행이 시작되어 취소할 수 없어요."
    );
    assert_eq!(
        s.texts("driver:park").await,
        [(
            "ride.cancelled".to_owned(),
            "고객님이 호출을 취소했어요.".to_owned()
        )]
    );
    assert!(s.texts("customer:c6").await.is_empty());
    assert_eq!(
        s.texts("driver:seo").await,
        [(
            "ride.cancelled".to_owned(),
            "운행을 시작하기 전에 예약이 마감됐어요. 다음 호출을 받을 수 있어요.".to_owned()
        )]
    );
    assert!(s.texts("user:c2").await.is_empty());
    // A driver hears when an offer runs out, and when the booking it was for closes.
    assert_eq!(s.texts("driver:han").await[0].0, "offer.expired");
    assert_eq!(s.texts("driver:yoon").await[0].0, "offer.withdrawn");
}

fn reservation_status(reservation: &str, status: &str) -> ReservationStatusChanged {
    ReservationStatusChanged {
        reservation_id: reservation.into(),
        user_id: "u1".into(),
        flight_id: "KE701".into(),
        status: status.into(),
    }
}

#[tokio::test]
async fn every_step_of_a_reservation_is_told_to_its_user() {
    let s = start(Config::default()).await;
    let consumer = &s.parts.consumers[0];
    for kind in [
        ReservationRequested::TYPE,
        ReservationStatusChanged::TYPE,
        PaymentSucceeded::TYPE,
        PaymentFailed::TYPE,
        PaymentRefunded::TYPE,
        TicketIssued::TYPE,
        TicketVoided::TYPE,
    ] {
        assert!(consumer.types.contains(&kind), "{kind}");
    }
    // A reservation paid late, confirmed, then cancelled, as the saga publishes it.
    s.deliver(&ReservationRequested {
        reservation_id: "r1".into(),
        user_id: "u1".into(),
        flight_id: "KE701".into(),
        price: 100,
        from: "ICN".into(),
        to: "NRT".into(),
        departs_at: "2026-12-24T09:30:00.000Z".into(),
    })
    .await;
    s.deliver(&reservation_status("r1", "REQUESTED")).await;
    s.deliver(&reservation_status("r1", "PENDING")).await;
    s.deliver(&PaymentSucceeded {
        reservation_id: "r1".into(),
        user_id: "u1".into(),
        amount: 100,
        balance: 4_900,
    })
    .await;
    s.deliver(&reservation_status("r1", "PAID")).await;
    s.deliver(&TicketIssued {
        ticket_id: "t1".into(),
        reservation_id: "r1".into(),
        user_id: "u1".into(),
        flight_id: "KE701".into(),
    })
    .await;
    s.deliver(&reservation_status("r1", "CONFIRMED")).await;
    s.deliver(&ReservationCancelRequested {
        reservation_id: "r1".into(),
        user_id: "u1".into(),
        flight_id: "KE701".into(),
    })
    .await;
    s.deliver(&reservation_status("r1", "CANCEL_REQUESTED"))
        .await;
    s.deliver(&PaymentRefunded {
        reservation_id: "r1".into(),
        user_id: "u1".into(),
        amount: 100,
        balance: 5_000,
    })
    .await;
    s.deliver(&TicketVoided {
        ticket_id: Some("t1".into()),
        reservation_id: "r1".into(),
        user_id: "u1".into(),
    })
    .await;
    s.deliver(&reservation_status("r1", "CANCELLED")).await;
    // Another reservation: the balance was short, and a cancel answered with nothing to undo.
    s.deliver(&PaymentFailed {
        reservation_id: "r2".into(),
        user_id: "u1".into(),
        amount: 100,
        balance: 0,
        reason: "insufficient_balance".into(),
    })
    .await;
    s.deliver(&reservation_status("r2", "PAYMENT_FAILED")).await;
    s.deliver(&PaymentRefunded {
        reservation_id: "r2".into(),
        user_id: "u1".into(),
        amount: 0,
        balance: 0,
    })
    .await;
    s.deliver(&TicketVoided {
        ticket_id: None,
        reservation_id: "r2".into(),
        user_id: "u1".into(),
    })
    .await;

    // Korean: notify knows nothing of u1's language.
    let expected = [
        (
            "payment.failed",
            "결제에 실패했어요. 잔액 0원이 요금 100원보다 적어요.",
        ),
        ("reservation.cancelled", "예약이 취소됐어요."),
        ("ticket.voided", "탑승권이 취소됐어요. (탑승권 번호 t1)"),
        (
            "payment.refunded",
            "100원을 환불했어요. 남은 잔액은 5,000원이에요.",
        ),
        ("reservation.confirmed", "예약이 확정됐어요."),
        (
            "ticket.issued",
            "KE701 항공편 탑승권이 발급됐어요. (탑승권 번호 t1)",
        ),
        (
            "payment.succeeded",
            "100원을 결제했어요. 남은 잔액은 4,900원이에요.",
        ),
        (
            "reservation.pending",
            "결제가 늦어지고 있어요. 예약은 대기 중이며 결제가 끝나면 자동으로 완료돼요.",
        ),
        (
            "reservation.requested",
            "KE701 항공편(ICN → NRT, 12월 24일 18:30 출발) 예약을 접수했어요. 100원을 결제할게요.",
        ),
    ];
    assert_eq!(
        s.texts("user:u1").await,
        expected.map(|(a, b)| (a.into(), b.into()))
    );
    // Correlated with the reservation; nobody else was told anything.
    let (_, list) = s.get("/notifications?receiver=user:u1").await;
    let correlations: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["correlationId"].as_str().unwrap())
        .collect();
    assert_eq!(correlations[0], "r2");
    assert!(correlations[1..].iter().all(|c| *c == "r1"));
    assert!(s.texts("customer:u1").await.is_empty());
}

#[tokio::test]
async fn bad_queries_are_400_problems() {
    let s = start(Config::default()).await;
    for (uri, code) in [
        ("/notifications", "missing_field"),
        ("/notifications?receiver=", "invalid_receiver"),
        ("/notifications?receiver=c1", "invalid_receiver"),
        ("/notifications?receiver=rider:c1", "invalid_receiver"),
        ("/notifications?receiver=customer:a%20b", "invalid_receiver"),
        (
            "/notifications?receiver=customer:c1&limit=0",
            "invalid_limit",
        ),
        (
            "/notifications?receiver=customer:c1&limit=501",
            "invalid_limit",
        ),
        (
            "/notifications?receiver=customer:c1&limit=ten",
            "invalid_limit",
        ),
        ("/notifications/stream?receiver=driver:", "invalid_receiver"),
    ] {
        let (status, problem) = s.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(problem["code"], code, "{uri}");
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    }
    let request = Request::get("/notifications/stream?receiver=customer:c1")
        .header("last-event-id", "not-an-id")
        .body(Body::empty())
        .unwrap();
    let response = s.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// Customers read their own `customer:` and `user:` notifications, drivers their `driver:` ones;
/// anyone else's are refused, and nothing is read without credentials.
#[tokio::test]
async fn each_reads_only_their_own_notifications() {
    let s = start(Config::default()).await;
    let hong = s.router_as(caller("hong", Role::Customer));
    for uri in [
        "/notifications",
        "/notifications?receiver=customer:hong",
        "/notifications?receiver=user:hong",
    ] {
        assert_eq!(
            Service::get_from(hong.clone(), uri).await.0,
            StatusCode::OK,
            "{uri}"
        );
    }
    for uri in [
        "/notifications?receiver=customer:kim",
        "/notifications?receiver=driver:hong",
        "/notifications/stream?receiver=user:kim",
    ] {
        let (status, problem) = Service::get_from(hong.clone(), uri).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{uri}"
        );
    }
    let kim = s.router_as(caller("kim", Role::Driver));
    assert_eq!(
        Service::get_from(kim.clone(), "/notifications").await.0,
        StatusCode::OK
    );
    assert_eq!(
        Service::get_from(kim, "/notifications?receiver=customer:kim")
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, problem) = Service::get_from(
        s.parts.router.clone(),
        "/notifications?receiver=customer:hong",
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );
}

/// Serves `router` on a random local port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// Reads a Server-Sent Events body, one `notification` event at a time.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    /// The next event's `(id, data)`; `None` when the server ended the stream.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(str::to_owned)
                };
                if let (Some(kind), Some(id), Some(data)) =
                    (field("event: "), field("id: "), field("data: "))
                {
                    assert_eq!(kind, "notification");
                    return Some((id, serde_json::from_str(&data).unwrap()));
                }
                continue; // a keep-alive comment
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .expect("the stream went quiet")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

async fn open_stream(base: &str, receiver: &str, last_event_id: Option<&str>) -> SseReader {
    let mut request =
        reqwest::Client::new().get(format!("{base}/notifications/stream?receiver={receiver}"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    SseReader {
        response,
        buffer: String::new(),
    }
}

#[tokio::test]
async fn the_stream_shows_new_notifications_and_replays_after_last_event_id() {
    let s = start(Config::default()).await;
    let base = serve(s.router()).await;
    // Already there before connecting: not part of a fresh stream.
    s.deliver(&book_requested("b0", "c1")).await;

    let mut live = open_stream(&base, "customer:c1", None).await;
    s.deliver(&book_requested("b1", "c1")).await;
    s.deliver(&book_requested("other", "c9")).await; // someone else's
    s.deliver(&trip_started("b1", "c1")).await;
    let (first_id, first) = live.next().await.unwrap();
    assert_eq!(first["notificationId"], first_id.as_str());
    assert_eq!(first["correlationId"], "b1");
    assert_eq!(first["subject"], "book.requested");
    let (second_id, second) = live.next().await.unwrap();
    assert_eq!(second["subject"], "trip.started");

    // A reconnecting client gets what came after the last id it saw, in order.
    let mut replay = open_stream(&base, "customer:c1", Some(&first_id)).await;
    let (id, n) = replay.next().await.unwrap();
    assert_eq!(
        (id.as_str(), &n["subject"]),
        (second_id.as_str(), &Value::from("trip.started"))
    );
    s.deliver(&trip_started("b2", "c1")).await;
    let (replayed_id, n) = replay.next().await.unwrap();
    assert_eq!(n["correlationId"], "b2");
    let (live_id, _) = live.next().await.unwrap();
    assert_eq!(
        live_id, replayed_id,
        "both streams see the same notification"
    );

    // Shutdown ends open streams instead of waiting for clients to leave.
    s.lifecycle.stop_background().await;
    assert!(live.next().await.is_none());
    assert!(replay.next().await.is_none());
}

#[tokio::test]
async fn open_streams_end_as_soon_as_shutdown_begins() {
    let s = start(Config::default()).await;
    let base = serve(s.router()).await;
    let mut stream = open_stream(&base, "driver:kim", None).await;
    // A graceful shutdown first turns readiness off, then waits for open connections: a stream
    // must end there rather than hold the shutdown up.
    s.lifecycle.begin_shutdown();
    assert!(stream.next().await.is_none());
}

#[derive(Clone, Default)]
struct Inbox {
    calls: Arc<Mutex<Vec<(String, Value)>>>,
}

/// Fails the first call with a 500, then accepts everything, recording what arrived.
async fn flaky_webhook(
    axum::extract::State(inbox): axum::extract::State<Inbox>,
    headers: axum::http::HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> StatusCode {
    let key = headers["idempotency-key"].to_str().unwrap().to_owned();
    let mut calls = inbox.calls.lock().unwrap();
    calls.push((key, body));
    if calls.len() == 1 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

#[tokio::test]
async fn the_webhook_gets_every_notification_in_order_despite_failures() {
    let inbox = Inbox::default();
    let hook = serve(
        Router::new()
            .route("/hook", post(flaky_webhook))
            .with_state(inbox.clone()),
    )
    .await;
    let s = start(Config {
        webhook: Some(format!("{hook}/hook")),
    })
    .await;
    s.deliver(&opened("c1", "en")).await;
    s.deliver(&book_requested("b1", "c1")).await;
    s.deliver(&TripEnded {
        dispatch_id: "d1".into(),
        book_id: "b1".into(),
        customer_id: "c1".into(),
        driver_id: "kim".into(),
        distance_meters: 3_000,
        fare: 5_800,
        pay_id: "p1".into(),
        method: "CASH".into(),
    })
    .await;
    s.deliver(&trip_started("b2", "c2")).await;
    let stored: Vec<String> =
        query_scalar("SELECT notification_id FROM notifications ORDER BY notification_id")
            .fetch_all(s.db.reader())
            .await
            .unwrap();
    assert_eq!(stored.len(), 4);

    let undelivered = || async {
        let n: i64 = query_scalar("SELECT COUNT(*) FROM notifications WHERE delivered_at IS NULL")
            .fetch_one(s.db.reader())
            .await
            .unwrap();
        n
    };
    tokio::time::timeout(PATIENCE, async {
        while undelivered().await > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("every notification is delivered");

    let calls = inbox.calls.lock().unwrap().clone();
    // The first call failed and was retried: at least once, in order, nothing skipped.
    let mut keys: Vec<String> = calls.iter().map(|(key, _)| key.clone()).collect();
    assert_eq!(keys[0], keys[1], "the failed notification is retried first");
    keys.dedup();
    assert_eq!(keys, stored);
    for (key, body) in &calls {
        assert_eq!(body["notificationId"], key.as_str());
    }
    // Each in its receiver's language: c1 chose English, kim and c2 read the default.
    let said: Vec<(&str, &str)> = calls[1..]
        .iter()
        .map(|(_, n)| {
            (
                n["receiver"].as_str().unwrap(),
                n["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        said,
        [
            (
                "customer:c1",
                "Looking for a taxi from Gangnam Station to Seoul Station."
            ),
            (
                "customer:c1",
                "You have arrived. The ₩5,800 fare was paid in cash."
            ),
            (
                "driver:kim",
                "운행이 끝났어요. 요금 5,800원은 현금 결제예요."
            ),
            (
                "customer:c2",
                "운행이 시작됐어요. 목적지까지 안전하게 모실게요."
            ),
        ]
    );

    // The delivery task stops with the service.
    tokio::time::timeout(PATIENCE, s.lifecycle.stop_background())
        .await
        .expect("the webhook task stops on shutdown");
}

#[tokio::test]
async fn a_webhook_that_is_not_an_http_url_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_sqlite(dir.path(), NAME, Durability::Normal, Arc::new(SystemClock))
        .await
        .unwrap();
    for bad in ["not a url", "/relative", "ftp://example.com/x"] {
        let config = Config {
            webhook: Some(bad.into()),
        };
        assert!(
            build(db.clone(), config, &Lifecycle::new()).await.is_err(),
            "{bad}"
        );
    }
}

/// After an outage notify learns of a ride's events out of order (each producer's outbox is
/// tailed on its own): the list still tells the story in the order it happened.
#[tokio::test]
async fn notifications_are_listed_in_the_order_things_happened() {
    let s = start(Config::default()).await;
    let t0 = s.db.now() - 60_000;
    // The trip's start (dispatch) arrives before the booking (book) it follows.
    s.deliver_made_at(&trip_started("b7", "c7"), t0 + 2_000)
        .await;
    s.deliver_made_at(&book_requested("b7", "c7"), t0).await;
    let (status, list) = s.get("/notifications?receiver=customer:c7").await;
    assert_eq!(status, StatusCode::OK);
    let order: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["subject"].as_str().unwrap(),
                n["occurredAt"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(order.len(), 2, "{list}");
    assert_eq!(
        order[0].0, "trip.started",
        "newest first by occurrence: {list}"
    );
    assert_eq!(order[1].0, "book.requested", "{list}");
    assert!(order[0].1 > order[1].1, "{list}");
    assert_ne!(
        list[0]["occurredAt"], list[0]["createdAt"],
        "the producer's time, not notify's"
    );
}

/// A receiver reads every notification in the language they have now: one told before notify
/// heard of their account, and one told before they changed it, included.
#[tokio::test]
async fn each_reads_in_the_language_they_have_now() {
    let s = start(Config::default()).await;
    let t0 = s.db.now() - 60_000;
    // Told before notify learned anything of the account: Korean, the default...
    s.deliver_made_at(&book_requested("b1", "amy"), t0).await;
    let korean = "택시를 찾고 있어요: Gangnam Station → Seoul Station";
    assert_eq!(s.texts("customer:amy").await[0].1, korean);
    // ...and English as soon as notify learns that amy chose English.
    s.deliver_made_at(&opened("amy", "en"), t0 + 1_000).await;
    let english = "Looking for a taxi from Gangnam Station to Seoul Station.";
    assert_eq!(s.texts("customer:amy").await[0].1, english);
    // Her flight notifications too: one person, whatever the receiver.
    s.deliver_made_at(&reservation_status_of("amy", "CONFIRMED"), t0 + 2_000)
        .await;
    assert_eq!(
        s.texts("user:amy").await[0].1,
        "Your reservation is confirmed."
    );

    // She changes her mind: everything reads Korean again, what came before included.
    s.deliver_made_at(
        &LocaleChanged {
            user_id: "amy".into(),
            locale: "ko".into(),
        },
        t0 + 3_000,
    )
    .await;
    assert_eq!(s.texts("customer:amy").await[0].1, korean);
    assert_eq!(s.texts("user:amy").await[0].1, "예약이 확정됐어요.");
    let (_, list) = s.get("/notifications?receiver=customer:amy").await;
    assert_eq!(list[0]["locale"], "ko");

    // A change identity made earlier, arriving late, does not undo a later one.
    s.deliver_made_at(
        &LocaleChanged {
            user_id: "amy".into(),
            locale: "en".into(),
        },
        t0 + 2_500,
    )
    .await;
    assert_eq!(s.texts("customer:amy").await[0].1, korean);
    // Nor does a language this version does not speak confuse anyone: the default.
    s.deliver_made_at(
        &LocaleChanged {
            user_id: "amy".into(),
            locale: "ja".into(),
        },
        t0 + 4_000,
    )
    .await;
    assert_eq!(s.texts("customer:amy").await[0].1, korean);

    // The live stream words each notification the same way.
    s.deliver_made_at(&opened("ben", "en"), t0).await;
    let base = serve(s.router()).await;
    let mut live = open_stream(&base, "customer:ben", None).await;
    s.deliver(&book_requested("b2", "ben")).await;
    let (_, n) = live.next().await.unwrap();
    assert_eq!(
        (n["message"].as_str(), n["locale"].as_str()),
        (Some(english), Some("en"))
    );
    s.lifecycle.stop_background().await;
}

fn reservation_status_of(user: &str, status: &str) -> ReservationStatusChanged {
    ReservationStatusChanged {
        user_id: user.into(),
        ..reservation_status("r1", status)
    }
}

/// Notifications stored before messages were worded when read keep their English text.
#[tokio::test]
async fn notifications_stored_as_text_are_still_listed() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_sqlite(dir.path(), NAME, Durability::Normal, Arc::new(SystemClock))
        .await
        .unwrap();
    // A notify of before: its tables, and a row it wrote in words.
    db.migrate(&MIGRATIONS[..2]).await.unwrap();
    let mut uow = db.begin().await.unwrap();
    query(
        "INSERT INTO notifications (notification_id, receiver, subject, message, correlation_id,
                                    created_at, occurred_at, event_id)
         VALUES ('0190a4c0-0000-7000-8000-000000000001', 'customer:old', 'trip.started',
                 'Your trip has started.', 'b-old', 1000, 1000, 'e-old')",
    )
    .execute(uow.conn())
    .await
    .unwrap();
    uow.commit().await.unwrap();
    db.migrate(MIGRATIONS).await.unwrap();
    let lifecycle = Lifecycle::new();
    let s = Service {
        parts: build(db.clone(), Config::default(), &lifecycle)
            .await
            .unwrap(),
        _dir: dir,
        db,
        lifecycle,
    };
    s.deliver(&opened("old", "ko")).await;
    s.deliver(&trip_started("b-new", "old")).await;
    let (_, list) = s.get("/notifications?receiver=customer:old").await;
    let read: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["message"].as_str().unwrap(),
                n["locale"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        read,
        [
            ("운행이 시작됐어요. 목적지까지 안전하게 모실게요.", "ko"),
            ("Your trip has started.", "en"),
        ]
    );
}

/// A declined card and its replacement are told to those who can act on them.
#[tokio::test]
async fn a_declined_card_and_its_replacement_are_told() {
    let s = start(Config::default()).await;
    s.deliver(&opened("c1", "en")).await;
    s.deliver(&PaymentDeclined {
        dispatch_id: "d1".into(),
        book_id: "b1".into(),
        customer_id: "c1".into(),
        driver_id: "kim".into(),
        fare: 11_200,
        reason: "the card was declined (card_declined)".into(),
    })
    .await;
    s.deliver(&BookCardReplaced {
        book_id: "b1".into(),
        customer_id: "c1".into(),
        driver_id: Some("kim".into()),
        card_token: "tok".into(),
        card_last4: "1881".into(),
    })
    .await;
    assert_eq!(
        s.texts("customer:c1").await,
        [(
            "payment.declined".to_owned(),
            "Your card was declined for the ₩11,200 fare: replace the card in the app, or pay \
             the driver in cash."
                .to_owned()
        )]
    );
    let driver: Vec<String> = s
        .texts("driver:kim")
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(driver, ["card.replaced", "payment.declined"]);
}
