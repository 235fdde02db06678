//! The ticket service on a real temporary SQLite database, driven through its event handler and
//! its router: issuing in either order of request and payment, voiding and closing on cancel,
//! duplicates, and the read API — checked in the responses, the tables and the outbox.

use axum::http::{StatusCode, header};
use serde_json::Value;
use tanda_catalog::flight::{
    PaymentSucceeded, ReservationCancelRequested, ReservationRequested, TicketIssued, TicketVoided,
};
use tanda_core::auth::{Caller, Role};
use tanda_core::sql::{query, query_scalar};
use tanda_core::{Envelope, Event};
use tanda_testkit::{Answer, Harness, caller};

/// The ticket service, as its process builds it.
struct Service(Harness);

impl std::ops::Deref for Service {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

async fn service() -> Service {
    let harness = Harness::new(&tanda_ticket::SPEC, async |db| {
        tanda_ticket::build(db).await.unwrap()
    })
    .await;
    assert!(harness.timers.is_none());
    assert_eq!(harness.consumers.len(), 1);
    let consumer = harness.consumer("ticket");
    for t in [
        ReservationRequested::TYPE,
        PaymentSucceeded::TYPE,
        ReservationCancelRequested::TYPE,
    ] {
        assert!(consumer.types.contains(&t), "{t}");
    }
    Service(harness)
}

fn requested(reservation_id: &str, user_id: &str, flight_id: &str) -> ReservationRequested {
    ReservationRequested {
        reservation_id: reservation_id.to_owned(),
        user_id: user_id.to_owned(),
        flight_id: flight_id.to_owned(),
        price: 100,
        from: "GMP".to_owned(),
        to: "CJU".to_owned(),
        departs_at: "2026-12-01T09:00:00.000Z".to_owned(),
    }
}

fn paid(reservation_id: &str, user_id: &str) -> PaymentSucceeded {
    PaymentSucceeded {
        reservation_id: reservation_id.to_owned(),
        user_id: user_id.to_owned(),
        amount: 100,
        balance: 50,
    }
}

fn cancel(reservation_id: &str, user_id: &str) -> ReservationCancelRequested {
    ReservationCancelRequested {
        reservation_id: reservation_id.to_owned(),
        user_id: user_id.to_owned(),
        flight_id: "KE-123".to_owned(),
    }
}

impl Service {
    /// A read by the operator, who may read everything.
    async fn get(&self, uri: &str) -> Answer {
        self.get_as(Some(caller("operator", Role::Operator)), uri)
            .await
    }

    async fn get_as(&self, caller: Option<Caller>, uri: &str) -> Answer {
        self.0.call(caller.as_ref(), "GET", uri, None, &[]).await
    }

    async fn tickets(&self, user: &str) -> Vec<Value> {
        let answer = self.get(&format!("/tickets?userId={user}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.raw);
        answer.body.as_array().unwrap().clone()
    }

    /// Every outbox envelope, in order.
    async fn outbox(&self) -> Vec<Value> {
        query("SELECT envelope FROM outbox ORDER BY seq")
            .fetch_all(self.db.reader())
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_str(&r.get::<String, _>("envelope")).unwrap())
            .collect()
    }

    /// Payloads of the outbox events of type `E`.
    async fn published<E: Event>(&self) -> Vec<E> {
        self.outbox()
            .await
            .into_iter()
            .filter(|e| e["type"] == E::TYPE)
            .map(|e| serde_json::from_value(e["payload"].clone()).unwrap())
            .collect()
    }
}

fn assert_problem(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.raw);
    assert_eq!(
        answer.headers[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(answer.body["code"], code, "{}", answer.raw);
    assert!(
        answer.body["detail"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
}

#[tokio::test]
async fn a_paid_reservation_gets_one_ticket() {
    let s = service().await;
    s.deliver(&requested("r-1", "ew", "KE-123"), "r-1").await;
    assert!(s.outbox().await.is_empty(), "not paid yet");
    let payment = s.deliver(&paid("r-1", "ew"), "r-1").await;

    let issued = s.published::<TicketIssued>().await;
    assert_eq!(issued.len(), 1);
    let ticket_id = issued[0].ticket_id.clone();
    assert_eq!(
        issued[0],
        TicketIssued {
            ticket_id: ticket_id.clone(),
            reservation_id: "r-1".into(),
            user_id: "ew".into(),
            flight_id: "KE-123".into(),
        }
    );
    let envelope = &s.outbox().await[0];
    assert_eq!(envelope["aggregateId"], "r-1");
    assert_eq!(envelope["correlationId"], "r-1");
    assert_eq!(envelope["causationId"], payment.id);

    let tickets = s.tickets("ew").await;
    assert_eq!(tickets.len(), 1);
    let t = &tickets[0];
    assert_eq!(t["ticketId"], ticket_id.as_str());
    assert_eq!(t["reservationId"], "r-1");
    assert_eq!(t["flightId"], "KE-123");
    assert_eq!(t["userId"], "ew");
    assert_eq!(t["status"], "ISSUED");
    assert!(t["issuedAt"].as_str().unwrap().ends_with('Z'));
    assert!(t.get("voidedAt").is_none());

    let one = s.get(&format!("/tickets/{ticket_id}")).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(&one.body, t);

    // Redelivered or re-published events issue nothing more.
    s.deliver(&paid("r-1", "ew"), "r-1").await;
    s.deliver(&requested("r-1", "ew", "KE-123"), "r-1").await;
    assert_eq!(s.outbox().await.len(), 1);
    assert_eq!(s.tickets("ew").await.len(), 1);
}

#[tokio::test]
async fn a_payment_arriving_before_its_request_still_ends_in_a_ticket() {
    let s = service().await;
    s.deliver(&paid("r-1", "ew"), "r-1").await;
    s.deliver(&paid("r-1", "ew"), "r-1").await;
    assert!(s.outbox().await.is_empty(), "the flight is not known yet");
    assert!(s.tickets("ew").await.is_empty());

    let request = s.deliver(&requested("r-1", "ew", "KE-123"), "r-1").await;
    let issued = s.published::<TicketIssued>().await;
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].flight_id, "KE-123");
    assert_eq!(s.outbox().await[0]["causationId"], request.id);
    assert_eq!(s.tickets("ew").await[0]["status"], "ISSUED");
}

#[tokio::test]
async fn a_cancel_voids_the_ticket_and_is_answered_once() {
    let s = service().await;
    s.deliver(&requested("r-1", "ew", "KE-123"), "r-1").await;
    s.deliver(&paid("r-1", "ew"), "r-1").await;
    let ticket_id = s.published::<TicketIssued>().await[0].ticket_id.clone();
    let cancelled = s.deliver(&cancel("r-1", "ew"), "r-1").await;
    s.deliver(&cancel("r-1", "ew"), "r-1").await;
    s.deliver(&paid("r-1", "ew"), "r-1").await;

    assert_eq!(
        s.published::<TicketVoided>().await,
        [TicketVoided {
            ticket_id: Some(ticket_id.clone()),
            reservation_id: "r-1".into(),
            user_id: "ew".into(),
        }]
    );
    let outbox = s.outbox().await;
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[1]["causationId"], cancelled.id);
    let t = s.get(&format!("/tickets/{ticket_id}")).await.body;
    assert_eq!(t["status"], "VOID");
    assert!(t["voidedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(s.tickets("ew").await.len(), 1);
}

#[tokio::test]
async fn a_cancel_before_any_ticket_means_none_is_ever_issued() {
    let s = service().await;
    s.deliver(&requested("r-1", "ew", "KE-123"), "r-1").await;
    s.deliver(&cancel("r-1", "ew"), "r-1").await;
    // Payment's success arrives late: the reservation is closed to tickets.
    s.deliver(&paid("r-1", "ew"), "r-1").await;
    s.deliver(&cancel("r-1", "ew"), "r-1").await;

    let voided = s.published::<TicketVoided>().await;
    assert_eq!(
        voided,
        [TicketVoided {
            ticket_id: None,
            reservation_id: "r-1".into(),
            user_id: "ew".into(),
        }]
    );
    assert!(s.published::<TicketIssued>().await.is_empty());
    assert!(s.tickets("ew").await.is_empty());
    let envelope = &s.outbox().await[0];
    assert!(envelope["payload"].get("ticketId").is_none());
}

#[tokio::test]
async fn a_users_tickets_are_listed_newest_first() {
    let s = service().await;
    for (r, user, flight) in [
        ("r-1", "ew", "KE-1"),
        ("r-2", "kim", "KE-2"),
        ("r-3", "ew", "KE-3"),
    ] {
        s.deliver(&requested(r, user, flight), r).await;
        s.deliver(&paid(r, user), r).await;
    }
    let flights: Vec<Value> = s
        .tickets("ew")
        .await
        .iter()
        .map(|t| t["flightId"].clone())
        .collect();
    assert_eq!(flights, ["KE-3", "KE-1"]);
    assert_eq!(s.tickets("kim").await.len(), 1);
    assert!(s.tickets("nobody").await.is_empty());
}

#[tokio::test]
async fn bad_requests_are_problems() {
    let s = service().await;
    assert_problem(
        &s.get("/tickets").await,
        StatusCode::BAD_REQUEST,
        "missing_field",
    );
    assert_problem(
        &s.get("/tickets?userId=a%20b").await,
        StatusCode::BAD_REQUEST,
        "invalid_user_id",
    );
    assert_problem(
        &s.get("/tickets?userId=").await,
        StatusCode::BAD_REQUEST,
        "invalid_user_id",
    );
    assert_problem(
        &s.get("/tickets/no-such-ticket").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn an_event_breaking_the_contract_fails_and_changes_nothing() {
    let s = service().await;
    for envelope in [
        Envelope::new(&requested("r-1", "not a user", "KE-1"), "r-1", None, 0),
        Envelope::new(&requested("r-1", "ew", "KE 1"), "r-1", None, 0),
    ] {
        let mut uow = s.db.begin().await.unwrap();
        assert!(
            s.consumer("ticket")
                .handler
                .handle(&mut uow, &envelope)
                .await
                .is_err()
        );
    }
    let reservations: i64 = query_scalar("SELECT COUNT(*) FROM reservations")
        .fetch_one(s.db.reader())
        .await
        .unwrap();
    assert_eq!(reservations, 0);
}

/// A traveller sees their own tickets only; someone else's ticket is as good as unknown.
#[tokio::test]
async fn travellers_see_only_their_own_tickets() {
    let s = service().await;
    s.deliver(&requested("r-1", "ew", "KE-123"), "r-1").await;
    s.deliver(&paid("r-1", "ew"), "r-1").await;
    let ticket_id = s.tickets("ew").await[0]["ticketId"]
        .as_str()
        .unwrap()
        .to_owned();
    let ew = caller("ew", Role::Customer);
    let kim = caller("kim", Role::Customer);
    let own = s.get_as(Some(ew.clone()), "/tickets").await;
    assert_eq!(own.body.as_array().unwrap().len(), 1, "{}", own.raw);
    let path = format!("/tickets/{ticket_id}");
    assert_eq!(s.get_as(Some(ew), &path).await.status, StatusCode::OK);
    assert_problem(
        &s.get_as(Some(kim.clone()), &path).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_problem(
        &s.get_as(Some(kim), "/tickets?userId=ew").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_problem(
        &s.get_as(None, "/tickets").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}
