//! The reservation view on a real temp SQLite database: the read model converges on the same
//! reservation whatever the order and duplication of its events, and its endpoints answer with
//! problems when they must.

use axum::http::StatusCode;
use proptest::prelude::*;
use serde_json::{Value, json};
use tanda_catalog::flight::{
    PaymentFailed, PaymentRefunded, PaymentSucceeded, ReservationRequested,
    ReservationStatusChanged, TicketIssued, TicketVoided,
};
use tanda_core::auth::{Caller, Role};
use tanda_core::clock::{Timestamp, rfc3339};
use tanda_core::id::new_id;
use tanda_core::{Envelope, Event};
use tanda_reservation_view::{SPEC, build};
use tanda_testkit::{Harness, caller};

/// The reservation view, as its process builds it.
struct Service(Harness);

async fn service() -> Service {
    let harness = Harness::new(&SPEC, async |db| build(db).await.unwrap()).await;
    assert!(harness.timers.is_none());
    assert_eq!(harness.consumers.len(), 1);
    let consumer = harness.consumer("reservation-view");
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
const PRICE: i64 = 100;

fn at<E: Event>(event: E, ms: i64) -> Envelope {
    let reservation_id = event.aggregate_id().to_owned();
    Envelope::new(&event, &reservation_id, None, T0 + ms)
}

fn requested(id: &str, user_id: &str, ms: i64) -> Envelope {
    let event = ReservationRequested {
        reservation_id: id.into(),
        user_id: user_id.into(),
        flight_id: "KE701".into(),
        price: PRICE,
        from: "ICN".into(),
        to: "NRT".into(),
        departs_at: "2026-12-24T09:30:00.000Z".into(),
    };
    at(event, ms)
}

fn status(id: &str, status: &str, ms: i64) -> Envelope {
    let event = ReservationStatusChanged {
        reservation_id: id.into(),
        user_id: "u1".into(),
        flight_id: "KE701".into(),
        status: status.into(),
    };
    at(event, ms)
}

fn paid(id: &str, ms: i64) -> Envelope {
    let event = PaymentSucceeded {
        reservation_id: id.into(),
        user_id: "u1".into(),
        amount: PRICE,
        balance: 900,
    };
    at(event, ms)
}

fn failed(id: &str, ms: i64) -> Envelope {
    let event = PaymentFailed {
        reservation_id: id.into(),
        user_id: "u1".into(),
        amount: PRICE,
        balance: 40,
        reason: "insufficient_balance".into(),
    };
    at(event, ms)
}

fn refunded(id: &str, amount: i64, ms: i64) -> Envelope {
    let event = PaymentRefunded {
        reservation_id: id.into(),
        user_id: "u1".into(),
        amount,
        balance: 1_000,
    };
    at(event, ms)
}

fn issued(id: &str, ms: i64) -> Envelope {
    let event = TicketIssued {
        ticket_id: format!("{id}-t"),
        reservation_id: id.into(),
        user_id: "u1".into(),
        flight_id: "KE701".into(),
    };
    at(event, ms)
}

fn voided(id: &str, ticket_id: Option<String>, ms: i64) -> Envelope {
    let event = TicketVoided {
        ticket_id,
        reservation_id: id.into(),
        user_id: "u1".into(),
    };
    at(event, ms)
}

/// One saga's events by source (reservation, payment, ticket), and the view it ends in.
struct Saga {
    sources: [Vec<Envelope>; 3],
    expected: Value,
}

/// What the view shows for reservation `id` of user `u1`.
fn view(id: &str, status: &str, payment: &str, ticket: Option<Value>, updated_ms: i64) -> Value {
    let mut view = json!({
        "reservationId": id,
        "userId": "u1",
        "flightId": "KE701",
        "from": "ICN",
        "to": "NRT",
        "departsAt": "2026-12-24T09:30:00.000Z",
        "price": PRICE,
        "status": status,
        "paymentStatus": payment,
        "requestedAt": rfc3339(T0),
        "updatedAt": rfc3339(T0 + updated_ms),
    });
    if let Some(ticket) = ticket {
        view["ticketStatus"] = ticket["ticketStatus"].clone();
        if let Some(ticket_id) = ticket.get("ticketId") {
            view["ticketId"] = ticket_id.clone();
        }
    }
    view
}

/// Paid after a payment delay, ticketed, confirmed.
fn confirmed(id: &str) -> Saga {
    let reservation = vec![
        requested(id, "u1", 0),
        status(id, "REQUESTED", 0),
        status(id, "PENDING", 5_000),
        status(id, "PAID", 6_000),
        status(id, "CONFIRMED", 7_000),
    ];
    let ticket = json!({"ticketId": format!("{id}-t"), "ticketStatus": "ISSUED"});
    Saga {
        sources: [reservation, vec![paid(id, 5_500)], vec![issued(id, 6_500)]],
        expected: view(id, "CONFIRMED", "PAID", Some(ticket), 7_000),
    }
}

/// Confirmed, then cancelled: refunded and the ticket voided.
fn cancelled_after_confirmation(id: &str) -> Saga {
    let Saga {
        sources: [mut reservation, mut payment, mut ticket],
        ..
    } = confirmed(id);
    reservation.push(status(id, "CANCEL_REQUESTED", 9_000));
    reservation.push(status(id, "CANCELLED", 10_000));
    payment.push(refunded(id, PRICE, 9_500));
    ticket.push(voided(id, Some(format!("{id}-t")), 9_600));
    let void = json!({"ticketId": format!("{id}-t"), "ticketStatus": "VOID"});
    Saga {
        sources: [reservation, payment, ticket],
        expected: view(id, "CANCELLED", "REFUNDED", Some(void), 10_000),
    }
}

/// Cancelled before anything was paid or ticketed: ticket answers first that none will be issued,
/// payment debits and then refunds.
fn cancelled_before_payment(id: &str) -> Saga {
    let reservation = vec![
        requested(id, "u1", 0),
        status(id, "REQUESTED", 0),
        status(id, "CANCEL_REQUESTED", 500),
        status(id, "CANCELLED", 2_000),
    ];
    let payment = vec![paid(id, 1_000), refunded(id, PRICE, 1_200)];
    let ticket = vec![voided(id, None, 600)];
    Saga {
        sources: [reservation, payment, ticket],
        expected: view(
            id,
            "CANCELLED",
            "REFUNDED",
            Some(json!({"ticketStatus": "VOID"})),
            2_000,
        ),
    }
}

/// The balance was below the price.
fn payment_failed(id: &str) -> Saga {
    let reservation = vec![
        requested(id, "u1", 0),
        status(id, "REQUESTED", 0),
        status(id, "PAYMENT_FAILED", 1_500),
    ];
    Saga {
        sources: [reservation, vec![failed(id, 1_000)], vec![]],
        expected: view(id, "PAYMENT_FAILED", "FAILED", None, 1_500),
    }
}

const SAGAS: [fn(&str) -> Saga; 4] = [
    confirmed,
    cancelled_after_confirmation,
    cancelled_before_payment,
    payment_failed,
];

#[tokio::test]
async fn a_reservation_fed_in_order_shows_each_step_and_reads_back_whole() {
    let s = service().await;
    let Saga {
        sources: [reservation, payment, ticket],
        expected,
    } = confirmed("r1");
    let shown = async || {
        let (status, view) = s.get("/reservationViews/r1").await;
        assert_eq!(status, StatusCode::OK);
        let field = |name: &str| view.get(name).and_then(Value::as_str).map(str::to_owned);
        (
            field("status").unwrap(),
            field("paymentStatus").unwrap(),
            field("ticketStatus"),
        )
    };
    let step = |status: &str, payment: &str, ticket: Option<&str>| {
        (
            status.to_owned(),
            payment.to_owned(),
            ticket.map(str::to_owned),
        )
    };
    // The order the saga runs in.
    s.feed(&reservation[..2]).await;
    assert_eq!(shown().await, step("REQUESTED", "PENDING", None));
    s.feed(&reservation[2..3]).await;
    assert_eq!(shown().await, step("PENDING", "PENDING", None));
    s.feed(&payment).await;
    assert_eq!(shown().await, step("PENDING", "PAID", None));
    s.feed(&reservation[3..4]).await;
    assert_eq!(shown().await, step("PAID", "PAID", None));
    s.feed(&ticket).await;
    assert_eq!(shown().await, step("PAID", "PAID", Some("ISSUED")));
    s.feed(&reservation[4..]).await;

    let (status, view) = s.get("/reservationViews/r1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view, expected);
    let (status, list) = s.get("/reservationViews?userId=u1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([expected]));
}

#[tokio::test]
async fn sources_arriving_one_after_another_with_duplicates_converge() {
    let s = service().await;
    let Saga {
        sources: [reservation, payment, ticket],
        expected,
    } = cancelled_after_confirmation("r1");
    // Ticket's stream first, then payment's, then reservation's, each delivered twice.
    for source in [&ticket, &payment, &reservation] {
        s.feed(source).await;
        s.feed(source).await;
    }
    let (_, view) = s.get("/reservationViews/r1").await;
    assert_eq!(view, expected);
}

#[tokio::test]
async fn a_reservation_is_hidden_until_its_request_arrives() {
    let s = service().await;
    let Saga {
        sources: [reservation, payment, ticket],
        ..
    } = confirmed("r1");
    s.feed(&payment).await;
    s.feed(&ticket).await;
    let (status, problem) = s.get("/reservationViews/r1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["code"], "not_found");
    let (_, list) = s.get("/reservationViews?userId=u1").await;
    assert_eq!(list, json!([]));

    s.feed(&reservation[..1]).await;
    let (status, view) = s.get("/reservationViews/r1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["status"], "REQUESTED");
    // Payment's answer came first; the request's PENDING does not hide it.
    assert_eq!(view["paymentStatus"], "PAID");
    assert_eq!(view["ticketId"], "r1-t");
    assert_eq!(view["ticketStatus"], "ISSUED");
    assert_eq!(view["updatedAt"], rfc3339(T0 + 6_500));
}

#[tokio::test]
async fn a_refund_of_nothing_leaves_a_failed_payment_failed() {
    let s = service().await;
    let Saga {
        sources: [reservation, payment, _],
        expected,
    } = payment_failed("r1");
    s.feed(&reservation).await;
    s.feed(&payment).await;
    s.feed(&[refunded("r1", 0, 3_000)]).await;
    let (_, view) = s.get("/reservationViews/r1").await;
    assert_eq!(view, expected);
    assert_eq!(view["paymentStatus"], "FAILED");
    assert!(view.get("ticketId").is_none() && view.get("ticketStatus").is_none());
}

#[tokio::test]
async fn a_late_replay_never_moves_a_cancelled_reservation_back() {
    let s = service().await;
    let Saga {
        sources: [reservation, payment, ticket],
        expected,
    } = cancelled_after_confirmation("r1");
    for source in [&reservation, &payment, &ticket] {
        s.feed(source).await;
    }
    // Replays of older events from every source.
    s.feed(&[
        status("r1", "CONFIRMED", 7_000),
        paid("r1", 5_500),
        issued("r1", 6_500),
        requested("r1", "u1", 0),
        status("r1", "REQUESTED", 0),
    ])
    .await;
    let (_, view) = s.get("/reservationViews/r1").await;
    assert_eq!(view, expected);
}

#[tokio::test]
async fn a_users_reservations_are_listed_newest_first_and_only_theirs() {
    let s = service().await;
    s.feed(&[
        requested("older", "u1", 0),
        requested("newer", "u1", 60_000),
        requested("someone-elses", "u2", 30_000),
    ])
    .await;
    let (status, list) = s.get("/reservationViews?userId=u1").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reservationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["newer", "older"]);
    let (_, list) = s.get("/reservationViews?userId=nobody").await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn bad_queries_are_problems() {
    let s = service().await;
    for (uri, code) in [
        ("/reservationViews", "missing_field"),
        ("/reservationViews?userId=", "invalid_user_id"),
        ("/reservationViews?userId=not%20an%20id", "invalid_user_id"),
    ] {
        let (status, problem) = s.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(problem["code"], code, "{uri}");
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    }
    let (status, problem) = s.get("/reservationViews/unknown").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["code"], "not_found");
}

#[tokio::test]
async fn reservations_are_counted_by_status_for_everyone_or_one_user() {
    let s = service().await;
    let (code, stats) = s.get("/reservationViews/stats").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(stats, json!({"total": 0, "byStatus": {}}));
    s.feed(&[
        requested("r1", "u1", 0),
        requested("r2", "u1", 1_000),
        status("r2", "PAID", 2_000),
        status("r2", "CONFIRMED", 3_000),
        requested("r3", "u1", 4_000),
        status("r3", "CONFIRMED", 5_000),
        requested("r4", "u2", 6_000),
        status("r4", "PAYMENT_FAILED", 7_000),
        // Not listed yet (its request has not arrived), so not counted either.
        status("r5", "CONFIRMED", 8_000),
    ])
    .await;

    let (code, stats) = s.get("/reservationViews/stats").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        stats,
        json!({"total": 4, "byStatus": {
            "REQUESTED": 1, "CONFIRMED": 2, "PAYMENT_FAILED": 1,
        }})
    );
    let (_, stats) = s.get("/reservationViews/stats?userId=u1").await;
    assert_eq!(
        stats,
        json!({"total": 3, "byStatus": {"REQUESTED": 1, "CONFIRMED": 2}})
    );
    let (_, stats) = s.get("/reservationViews/stats?userId=nobody").await;
    assert_eq!(stats, json!({"total": 0, "byStatus": {}}));
    let (code, view) = s.get("/reservationViews/r1").await;
    assert_eq!(
        code,
        StatusCode::OK,
        "a reservation is still found by its id"
    );
    assert_eq!(view["reservationId"], "r1");

    for uri in [
        "/reservationViews/stats?userId=",
        "/reservationViews/stats?userId=not%20an%20id",
    ] {
        let (code, problem) = s.get(uri).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(problem["code"], "invalid_user_id", "{uri}");
    }
}

#[tokio::test]
async fn an_undecodable_event_is_an_error_and_changes_nothing() {
    let s = service().await;
    let mut broken = requested("r1", "u1", 0);
    broken.payload = json!({"reservationId": "r1"});
    let mut uow = s.0.db.begin().await.unwrap();
    let handler = &s.0.consumer("reservation-view").handler;
    assert!(handler.handle(&mut uow, &broken).await.is_err());
    drop(uow);
    let (status, _) = s.get("/reservationViews/r1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Any saga, its three sources interleaved in any order with any duplicates, ends in the same view.
#[test]
fn any_order_with_duplicates_converges_on_the_same_view() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s = runtime.block_on(service());
    let cases = (0..SAGAS.len()).prop_flat_map(|saga| {
        let n = SAGAS[saga]("x").sources.iter().map(Vec::len).sum::<usize>();
        let deliveries = (
            Just((0..n).collect::<Vec<_>>()),
            prop::collection::vec(0..n, 0..8),
        )
            .prop_flat_map(|(all, extra)| Just([all, extra].concat()).prop_shuffle());
        (Just(saga), deliveries)
    });
    let config = ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    };
    proptest!(config, |((saga, order) in cases)| {
        // A fresh reservation per case; the database is shared.
        let id = new_id();
        let Saga { sources, expected } = SAGAS[saga](&id);
        let events = sources.concat();
        let delivered: Vec<Envelope> = order.iter().map(|&i| events[i].clone()).collect();
        runtime.block_on(s.feed(&delivered));
        let (status, view) = runtime.block_on(s.get(&format!("/reservationViews/{id}")));
        prop_assert_eq!(status, StatusCode::OK);
        prop_assert_eq!(view, expected);
    });
}

/// A traveller reads their own reservations only; someone else's is as good as unknown.
#[tokio::test]
async fn travellers_read_only_their_own_reservations() {
    let s = service().await;
    s.feed(&[requested("r1", "u1", 0)]).await;
    let u1 = caller("u1", Role::Customer);
    let u2 = caller("u2", Role::Customer);
    let (_, own) = s.get_as(Some(u1.clone()), "/reservationViews").await;
    assert_eq!(own.as_array().unwrap().len(), 1, "{own}");
    assert_eq!(
        s.get_as(Some(u1), "/reservationViews/r1").await.0,
        StatusCode::OK
    );
    let (status, problem) = s.get_as(Some(u2.clone()), "/reservationViews/r1").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    assert_eq!(
        s.get_as(Some(u2), "/reservationViews?userId=u1").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.get_as(None, "/reservationViews?userId=u1").await.0,
        StatusCode::UNAUTHORIZED
    );
}
