//! Ride history on a real temp SQLite database: the read model converges on the same ride whatever
//! the order and duplication of its events, and its endpoints answer with problems when they must.

use axum::http::StatusCode;
use proptest::prelude::*;
use serde_json::{Value, json};
use tanda_catalog::Place;
use tanda_catalog::taxi::{
    BookRequested, BookStatusChanged, DispatchCancelled, PaymentApproved, RideOffered,
    TaxiDispatched, TripEnded, TripStarted,
};
use tanda_core::auth::{Caller, Role};
use tanda_core::clock::{Timestamp, rfc3339};
use tanda_core::id::new_id;
use tanda_core::{Envelope, Event};
use tanda_ride_history::{SPEC, build};
use tanda_testkit::{Harness, caller};

/// Ride history, as its process builds it.
struct Service(Harness);

async fn service() -> Service {
    let harness = Harness::new(&SPEC, async |db| build(db).await.unwrap()).await;
    assert_eq!(harness.consumers.len(), 1);
    harness.consumer("ride-history");
    Service(harness)
}

impl Service {
    /// Delivers each event in its own unit of work, as the consumer runtime does (minus its inbox
    /// dedup, so duplicates really reach the handler).
    async fn feed(&self, events: &[Envelope]) {
        for event in events {
            self.0.deliver_envelope(event).await;
        }
    }

    /// A read by the operator, who may read everything.
    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.get_as(Some(caller("operator", Role::Operator)), uri)
            .await
    }

    async fn get_as(&self, caller: Option<Caller>, uri: &str) -> (StatusCode, Value) {
        let answer = self.0.call(caller.as_ref(), "GET", uri, None, &[]).await;
        if !answer.status.is_success() {
            assert_eq!(answer.headers["content-type"], "application/problem+json");
        }
        (answer.status, answer.body)
    }
}

const T0: Timestamp = 1_795_000_000_000;

fn place(name: &str, lat: f64, lng: f64) -> Place {
    Place {
        name: name.into(),
        lat,
        lng,
    }
}

fn at<E: Event>(event: E, book_id: &str, ms: i64) -> Envelope {
    Envelope::new(&event, book_id, None, T0 + ms)
}

fn requested(book_id: &str, customer_id: &str, ms: i64) -> Envelope {
    let event = BookRequested {
        book_id: book_id.into(),
        customer_id: customer_id.into(),
        customer_name: "Kim Minji".into(),
        phone: "010-1234-5678".into(),
        card_token: "tok_4242_ok_0123456789abcdef".into(),
        card_last4: "4242".into(),
        pickup: place("Seoul City Hall", 37.5663, 126.9779),
        dropoff: place("Gangnam Station", 37.4979, 127.0276),
        answer_by: None,
    };
    at(event, book_id, ms)
}

fn book_status(book_id: &str, status: &str, ms: i64) -> Envelope {
    let event = BookStatusChanged {
        book_id: book_id.into(),
        customer_id: "c1".into(),
        status: status.into(),
    };
    at(event, book_id, ms)
}

fn offered(book_id: &str, driver_id: &str, ms: i64) -> Envelope {
    let event = RideOffered {
        dispatch_id: format!("{book_id}-d"),
        book_id: book_id.into(),
        customer_id: "c1".into(),
        driver_id: driver_id.into(),
        pickup: place("Seoul City Hall", 37.5663, 126.9779),
        dropoff: place("Gangnam Station", 37.4979, 127.0276),
        expires_at: rfc3339(T0 + ms + 15_000),
    };
    at(event, book_id, ms)
}

/// Book's, dispatch's and pay's events of one finished ride, each source in its own order.
fn finished_ride(book_id: &str) -> [Vec<Envelope>; 3] {
    let dispatch_id = format!("{book_id}-d");
    let book = vec![
        requested(book_id, "c1", 0),
        book_status(book_id, "REQUESTED", 0),
        book_status(book_id, "DISPATCHED", 3_500),
        book_status(book_id, "IN_TRIP", 4_500),
        book_status(book_id, "COMPLETED", 6_500),
    ];
    let dispatch = vec![
        offered(book_id, "drv-a", 2_000),
        offered(book_id, "drv-b", 2_500),
        at(
            TaxiDispatched {
                dispatch_id: dispatch_id.clone(),
                book_id: book_id.into(),
                customer_id: "c1".into(),
                driver_id: "drv-b".into(),
                driver_name: "Park Jisoo".into(),
                car_number: "12가3456".into(),
                phone: "010-9876-5432".into(),
                eta_seconds: 240,
            },
            book_id,
            3_000,
        ),
        at(
            TripStarted {
                dispatch_id: dispatch_id.clone(),
                book_id: book_id.into(),
                customer_id: "c1".into(),
                driver_id: "drv-b".into(),
            },
            book_id,
            4_000,
        ),
        at(
            TripEnded {
                dispatch_id: dispatch_id.clone(),
                book_id: book_id.into(),
                customer_id: "c1".into(),
                driver_id: "drv-b".into(),
                distance_meters: 9_100,
                fare: 10_500,
                pay_id: format!("{book_id}-p"),
                method: "CARD".into(),
            },
            book_id,
            6_000,
        ),
    ];
    let pay = vec![at(
        PaymentApproved {
            pay_id: format!("{book_id}-p"),
            book_id: book_id.into(),
            dispatch_id: dispatch_id.clone(),
            amount: 10_500,
            card_last4: "4242".into(),
            paid_at: rfc3339(T0 + 5_500),
            method: "CARD".into(),
        },
        book_id,
        5_500,
    )];
    [book, dispatch, pay]
}

fn expected_finished_ride(book_id: &str) -> Value {
    json!({
        "bookId": book_id,
        "dispatchId": format!("{book_id}-d"),
        "customerId": "c1",
        "customerName": "Kim Minji",
        "pickup": {"name": "Seoul City Hall", "lat": 37.5663, "lng": 126.9779},
        "dropoff": {"name": "Gangnam Station", "lat": 37.4979, "lng": 127.0276},
        "taxi": {
            "driverId": "drv-b",
            "driverName": "Park Jisoo",
            "carNumber": "12가3456",
            "phone": "010-9876-5432",
            "etaSeconds": 240
        },
        "bookStatus": "COMPLETED",
        "dispatchStatus": "ENDED",
        "fare": 10_500,
        "payId": format!("{book_id}-p"),
        "paymentMethod": "CARD",
        "distanceMeters": 9_100,
        "requestedAt": rfc3339(T0),
        "updatedAt": rfc3339(T0 + 6_500),
    })
}

#[tokio::test]
async fn a_ride_fed_in_order_reads_back_whole() {
    let s = service().await;
    let [book, dispatch, pay] = finished_ride("b1");
    // The order one process would publish them in.
    let mut events = vec![book[0].clone(), book[1].clone()];
    events.extend([
        dispatch[0].clone(),
        dispatch[1].clone(),
        dispatch[2].clone(),
    ]);
    events.push(book[2].clone());
    events.push(dispatch[3].clone());
    events.push(book[3].clone());
    events.push(pay[0].clone());
    events.push(dispatch[4].clone());
    events.push(book[4].clone());
    s.feed(&events).await;

    let (status, ride) = s.get("/rideHistories/b1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ride, expected_finished_ride("b1"));
    let (status, list) = s.get("/rideHistories?customerId=c1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([expected_finished_ride("b1")]));
}

#[tokio::test]
async fn sources_arriving_one_after_another_with_duplicates_converge() {
    let s = service().await;
    let [book, dispatch, pay] = finished_ride("b1");
    // Pay's stream first, then dispatch's, then book's, each delivered twice.
    for source in [&pay, &dispatch, &book] {
        s.feed(source).await;
        s.feed(source).await;
    }
    let (_, ride) = s.get("/rideHistories/b1").await;
    assert_eq!(ride, expected_finished_ride("b1"));
}

#[tokio::test]
async fn a_ride_is_hidden_until_its_booking_request_arrives() {
    let s = service().await;
    let [book, dispatch, _] = finished_ride("b1");
    s.feed(&dispatch[..3]).await;
    let (status, problem) = s.get("/rideHistories/b1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["code"], "not_found");
    let (_, list) = s.get("/rideHistories?customerId=c1").await;
    assert_eq!(list, json!([]));

    s.feed(&book[..1]).await;
    let (status, ride) = s.get("/rideHistories/b1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ride["bookStatus"], "REQUESTED");
    assert_eq!(ride["dispatchStatus"], "DISPATCHED");
    assert_eq!(ride["taxi"]["driverId"], "drv-b");
    assert_eq!(ride["fare"], Value::Null);
    assert_eq!(ride["updatedAt"], rfc3339(T0 + 3_000));
}

#[tokio::test]
async fn a_late_replay_never_moves_a_cancelled_ride_back() {
    let s = service().await;
    let offer = offered("b1", "drv-a", 1_000);
    let cancelled = at(
        DispatchCancelled {
            dispatch_id: "b1-d".into(),
            book_id: "b1".into(),
            customer_id: "c1".into(),
            driver_id: Some("drv-a".into()),
            reason: None,
        },
        "b1",
        3_000,
    );
    s.feed(&[
        requested("b1", "c1", 0),
        offer.clone(),
        book_status("b1", "CANCEL_REQUESTED", 2_000),
        cancelled,
        book_status("b1", "CANCELLED_BY_CUSTOMER", 3_500),
        // Replays of older events from both sources.
        offer,
        book_status("b1", "CANCEL_REQUESTED", 2_000),
        requested("b1", "c1", 0),
    ])
    .await;
    let (_, ride) = s.get("/rideHistories/b1").await;
    assert_eq!(ride["bookStatus"], "CANCELLED_BY_CUSTOMER");
    assert_eq!(ride["dispatchStatus"], "CANCELLED");
    assert_eq!(ride["dispatchId"], "b1-d");
    assert_eq!(ride["taxi"], Value::Null);
    assert_eq!(ride["updatedAt"], rfc3339(T0 + 3_500));
}

#[tokio::test]
async fn a_customers_rides_are_listed_newest_first_and_only_theirs() {
    let s = service().await;
    s.feed(&[
        requested("older", "c1", 0),
        requested("newer", "c1", 60_000),
        requested("someone-elses", "c2", 30_000),
    ])
    .await;
    let (status, list) = s.get("/rideHistories?customerId=c1").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bookId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["newer", "older"]);
    let (_, list) = s.get("/rideHistories?customerId=nobody").await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn bad_queries_are_problems() {
    let s = service().await;
    // An operator names the customer whose rides it lists.
    let (status, problem) = s.get("/rideHistories").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["code"], "missing_field");
    let (status, problem) = s.get("/rideHistories?customerId=not%20an%20id").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["code"], "invalid_customer_id");
    let (status, problem) = s.get("/rideHistories/unknown").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["code"], "not_found");
}

#[tokio::test]
async fn rides_are_counted_by_book_status_for_everyone_or_one_customer() {
    let s = service().await;
    let (status, stats) = s.get("/rideHistories/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats, json!({"total": 0, "byStatus": {}}));
    s.feed(&[
        requested("r1", "c1", 0),
        requested("r2", "c1", 1_000),
        book_status("r2", "COMPLETED", 2_000),
        requested("r3", "c1", 3_000),
        book_status("r3", "IN_TRIP", 4_000),
        book_status("r3", "COMPLETED", 5_000),
        requested("r4", "c2", 6_000),
        book_status("r4", "CANCELLED_BY_CUSTOMER", 7_000),
        // Not listed yet (its request has not arrived), so not counted either.
        book_status("r5", "COMPLETED", 8_000),
    ])
    .await;

    let (status, stats) = s.get("/rideHistories/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stats,
        json!({"total": 4, "byStatus": {
            "REQUESTED": 1, "COMPLETED": 2, "CANCELLED_BY_CUSTOMER": 1,
        }})
    );
    let (_, stats) = s.get("/rideHistories/stats?customerId=c1").await;
    assert_eq!(
        stats,
        json!({"total": 3, "byStatus": {"REQUESTED": 1, "COMPLETED": 2}})
    );
    let (_, stats) = s.get("/rideHistories/stats?customerId=nobody").await;
    assert_eq!(stats, json!({"total": 0, "byStatus": {}}));
    let (status, ride) = s.get("/rideHistories/r1").await;
    assert_eq!(status, StatusCode::OK, "a ride is still found by its id");
    assert_eq!(ride["bookId"], "r1");

    for uri in [
        "/rideHistories/stats?customerId=",
        "/rideHistories/stats?customerId=not%20an%20id",
    ] {
        let (status, problem) = s.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(problem["code"], "invalid_customer_id", "{uri}");
    }
}

#[tokio::test]
async fn an_undecodable_event_is_an_error_and_changes_nothing() {
    let s = service().await;
    let mut broken = requested("b1", "c1", 0);
    broken.payload = json!({"bookId": "b1"});
    let mut uow = s.0.db.begin().await.unwrap();
    let handler = &s.0.consumer("ride-history").handler;
    assert!(handler.handle(&mut uow, &broken).await.is_err());
    drop(uow);
    let (status, _) = s.get("/rideHistories/b1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Any interleaving of the three sources, with any duplicates, ends in the same ride.
#[test]
fn any_order_with_duplicates_converges_on_the_same_ride() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s = runtime.block_on(service());
    let n = finished_ride("x").iter().map(Vec::len).sum::<usize>();
    let deliveries = (
        Just((0..n).collect::<Vec<_>>()),
        prop::collection::vec(0..n, 0..8),
    )
        .prop_flat_map(|(all, extra)| Just([all, extra].concat()).prop_shuffle());
    let config = ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    };
    proptest!(config, |(order in deliveries)| {
        // A fresh ride per case; the database is shared.
        let book_id = new_id();
        let events = finished_ride(&book_id).concat();
        let delivered: Vec<Envelope> = order.iter().map(|&i| events[i].clone()).collect();
        runtime.block_on(s.feed(&delivered));
        let (status, ride) = runtime.block_on(s.get(&format!("/rideHistories/{book_id}")));
        prop_assert_eq!(status, StatusCode::OK);
        prop_assert_eq!(ride, expected_finished_ride(&book_id));
    });
}

/// A customer reads their own rides only; someone else's ride is as good as unknown.
#[tokio::test]
async fn customers_read_only_their_own_rides() {
    let s = service().await;
    s.feed(&[requested("b1", "c1", 0)]).await;
    let c1 = caller("c1", Role::Customer);
    let c2 = caller("c2", Role::Customer);
    assert_eq!(
        s.get_as(Some(c1.clone()), "/rideHistories/b1").await.0,
        StatusCode::OK
    );
    let (_, own) = s.get_as(Some(c1.clone()), "/rideHistories").await;
    assert_eq!(own.as_array().unwrap().len(), 1, "{own}");
    let (status, problem) = s.get_as(Some(c2.clone()), "/rideHistories/b1").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _) = s
        .get_as(Some(c2.clone()), "/rideHistories?customerId=c1")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s.get_as(Some(c2), "/rideHistories/stats").await;
    assert_eq!(status, StatusCode::OK, "their own counts");
    let (status, problem) = s.get_as(None, "/rideHistories?customerId=c1").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );
}
