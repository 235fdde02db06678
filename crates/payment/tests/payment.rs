//! The payment service on a real temporary SQLite database, driven through its router and its
//! event handler: deposits and idempotency, debits, declines, refunds once, concurrent debits on
//! one wallet, the database's own guards and input problems — checked in the responses, the
//! tables and the outbox.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use serde_json::{Value, json};
use tanda_catalog::flight::{
    Deposited, PaymentFailed, PaymentRefunded, PaymentSucceeded, ReservationCancelRequested,
    ReservationRequested,
};
use tanda_core::auth::{Caller, Role};
use tanda_core::sql::{query, query_scalar};
use tanda_core::{Envelope, Event};
use tanda_testkit::{Answer, Harness, caller};

/// The payment service, as its process builds it.
struct Service(Harness);

impl std::ops::Deref for Service {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

async fn service() -> Service {
    let harness = Harness::new(&tanda_payment::SPEC, async |db| {
        tanda_payment::build(db).await.unwrap()
    })
    .await;
    assert!(harness.timers.is_none());
    assert_eq!(harness.consumers.len(), 1);
    assert_eq!(
        harness.consumer("payment").types,
        [ReservationRequested::TYPE, ReservationCancelRequested::TYPE]
    );
    Service(harness)
}

fn requested(reservation_id: &str, user_id: &str, price: i64) -> ReservationRequested {
    ReservationRequested {
        reservation_id: reservation_id.to_owned(),
        user_id: user_id.to_owned(),
        flight_id: "KE-123".to_owned(),
        price,
        from: "GMP".to_owned(),
        to: "CJU".to_owned(),
        departs_at: "2026-12-01T09:00:00.000Z".to_owned(),
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
    /// A call by the operator, who may do everything.
    async fn call(&self, method: &str, uri: &str, body: Option<&str>, key: Option<&str>) -> Answer {
        let operator = caller("operator", Role::Operator);
        self.call_as(Some(&operator), method, uri, body, key).await
    }

    async fn call_as(
        &self,
        caller: Option<&Caller>,
        method: &str,
        uri: &str,
        body: Option<&str>,
        key: Option<&str>,
    ) -> Answer {
        let key = tanda_testkit::idempotency_key(key);
        self.0.call(caller, method, uri, body, &key).await
    }

    async fn deposit(&self, user: &str, amount: i64) -> Answer {
        let body = json!({ "amount": amount }).to_string();
        let uri = format!("/accounts/{user}/deposit");
        self.call("POST", &uri, Some(&body), None).await
    }

    async fn balance(&self, user: &str) -> i64 {
        let answer = self
            .call("GET", &format!("/accounts/{user}"), None, None)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.raw);
        assert_eq!(answer.body["userId"], user);
        answer.body["balance"].as_i64().unwrap()
    }

    async fn movements(&self, user: &str) -> Vec<Value> {
        let uri = format!("/accounts/{user}/movements");
        let answer = self.call("GET", &uri, None, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.raw);
        answer.body.as_array().unwrap().clone()
    }

    /// `(type, envelope)` of every outbox row about a reservation, in order: the deposits that
    /// set a test's scene announce `Deposited` too, which `deposits_announced` checks.
    async fn outbox(&self) -> Vec<(String, Value)> {
        self.all_outbox()
            .await
            .into_iter()
            .filter(|(kind, _)| kind != Deposited::TYPE)
            .collect()
    }

    async fn all_outbox(&self) -> Vec<(String, Value)> {
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

    /// The `Deposited` events published, in order.
    async fn deposits_announced(&self) -> Vec<Deposited> {
        self.all_outbox()
            .await
            .into_iter()
            .filter(|(kind, _)| kind == Deposited::TYPE)
            .map(|(_, envelope)| serde_json::from_value(envelope["payload"].clone()).unwrap())
            .collect()
    }

    /// Payloads of the outbox events of type `E`.
    async fn published<E: Event>(&self) -> Vec<E> {
        self.outbox()
            .await
            .into_iter()
            .filter(|(kind, _)| kind == E::TYPE)
            .map(|(_, e)| serde_json::from_value(e["payload"].clone()).unwrap())
            .collect()
    }

    /// Deposits and refunds minus debits, per the ledger table.
    async fn ledger_sum(&self, user: &str) -> i64 {
        query_scalar(
            "SELECT COALESCE(SUM(CASE kind WHEN 'DEBIT' THEN -amount ELSE amount END), 0)
             FROM movements WHERE user_id = $1",
        )
        .bind(user)
        .fetch_one(self.db.reader())
        .await
        .unwrap()
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
async fn deposits_show_in_the_balance_and_the_ledger() {
    let s = service().await;
    assert_eq!(
        s.balance("ew").await,
        0,
        "a user never seen has an empty wallet"
    );
    assert!(s.movements("ew").await.is_empty());

    let answer = s.deposit("ew", 150).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.raw);
    assert_eq!(answer.body, json!({"userId": "ew", "balance": 150}));
    let answer = s.deposit("ew", 25).await;
    assert_eq!(answer.body["balance"], 175);
    assert_eq!(s.balance("ew").await, 175);
    assert_eq!(s.balance("someone-else").await, 0);

    let movements = s.movements("ew").await;
    assert_eq!(movements.len(), 2);
    assert_eq!(
        (
            &movements[0]["kind"],
            &movements[0]["amount"],
            &movements[0]["balanceAfter"]
        ),
        (&json!("DEPOSIT"), &json!(25), &json!(175)),
        "newest first"
    );
    assert_eq!(movements[1]["balanceAfter"], 150);
    assert!(movements[0].get("reservationId").is_none());
    assert!(movements[0]["at"].as_str().unwrap().ends_with('Z'));
    assert!(movements[0]["movementId"].as_str().is_some());
    assert_eq!(s.ledger_sum("ew").await, 175);
    assert!(
        s.outbox().await.is_empty(),
        "a deposit is no reservation's business"
    );
    // ...but whose wallet it was is announced: identity learns that the id is someone's.
    let announced = s.deposits_announced().await;
    assert_eq!(
        announced
            .iter()
            .map(|d| (d.user_id.as_str(), d.amount, d.balance))
            .collect::<Vec<_>>(),
        [("ew", 150, 150), ("ew", 25, 175)]
    );
}

#[tokio::test]
async fn a_retried_deposit_with_the_same_key_is_counted_once() {
    let s = service().await;
    let body = r#"{"amount": 100}"#;
    let first = s
        .call("POST", "/accounts/ew/deposit", Some(body), Some("dep-1"))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.raw);
    assert_eq!(first.body["balance"], 100);

    let again = s
        .call("POST", "/accounts/ew/deposit", Some(body), Some("dep-1"))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, first.body, "the first answer, replayed");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(s.balance("ew").await, 100);

    let other = s
        .call("POST", "/accounts/ew/deposit", Some(body), Some("dep-2"))
        .await;
    assert_eq!(other.body["balance"], 200, "a new key is a new deposit");

    let reused = s
        .call(
            "POST",
            "/accounts/ew/deposit",
            Some(r#"{"amount": 5}"#),
            Some("dep-1"),
        )
        .await;
    assert_problem(
        &reused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    let elsewhere = s
        .call("POST", "/accounts/kim/deposit", Some(body), Some("dep-1"))
        .await;
    assert_problem(
        &elsewhere,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    assert_eq!(s.balance("ew").await, 200);
    assert_eq!(s.balance("kim").await, 0);
    assert_eq!(s.movements("ew").await.len(), 2);
}

#[tokio::test]
async fn a_covered_price_is_debited_once() {
    let s = service().await;
    s.deposit("ew", 150).await;
    let cause = s.deliver(&requested("r-1", "ew", 100), "r-1").await;
    assert_eq!(s.balance("ew").await, 50);

    let outbox = s.outbox().await;
    assert_eq!(outbox.len(), 1);
    let (kind, envelope) = &outbox[0];
    assert_eq!(kind, PaymentSucceeded::TYPE);
    assert_eq!(envelope["aggregateId"], "r-1");
    assert_eq!(envelope["correlationId"], "r-1");
    assert_eq!(envelope["causationId"], cause.id);
    assert_eq!(
        s.published::<PaymentSucceeded>().await,
        [PaymentSucceeded {
            reservation_id: "r-1".into(),
            user_id: "ew".into(),
            amount: 100,
            balance: 50,
        }]
    );
    let movements = s.movements("ew").await;
    assert_eq!(movements[0]["kind"], "DEBIT");
    assert_eq!(movements[0]["amount"], 100);
    assert_eq!(movements[0]["reservationId"], "r-1");
    assert_eq!(movements[0]["balanceAfter"], 50);

    // The same request again (a re-publish): nothing more is debited or announced.
    s.deposit("ew", 1_000).await;
    s.deliver(&requested("r-1", "ew", 100), "r-1").await;
    assert_eq!(s.balance("ew").await, 1_050);
    assert_eq!(s.outbox().await.len(), 1);
    assert_eq!(s.ledger_sum("ew").await, 1_050);
}

#[tokio::test]
async fn a_short_balance_is_declined_and_nothing_is_debited() {
    let s = service().await;
    s.deposit("ew", 70).await;
    s.deliver(&requested("r-1", "ew", 100), "r-1").await;
    assert_eq!(s.balance("ew").await, 70);
    assert_eq!(
        s.published::<PaymentFailed>().await,
        [PaymentFailed {
            reservation_id: "r-1".into(),
            user_id: "ew".into(),
            amount: 100,
            balance: 70,
            reason: "insufficient_balance".into(),
        }]
    );
    assert!(s.published::<PaymentSucceeded>().await.is_empty());
    assert_eq!(s.movements("ew").await.len(), 1, "only the deposit");

    // A user never seen is declined too, and gets no account row for it.
    s.deliver(&requested("r-2", "nobody", 100), "r-2").await;
    assert_eq!(s.published::<PaymentFailed>().await[1].balance, 0);
    let accounts: i64 = query_scalar("SELECT COUNT(*) FROM accounts")
        .fetch_one(s.db.reader())
        .await
        .unwrap();
    assert_eq!(accounts, 1);
}

#[tokio::test]
async fn a_cancel_refunds_the_debit_exactly_once() {
    let s = service().await;
    s.deposit("ew", 150).await;
    s.deliver(&requested("r-1", "ew", 100), "r-1").await;
    let cause = s.deliver(&cancel("r-1", "ew"), "r-1").await;
    assert_eq!(s.balance("ew").await, 150);
    // A duplicate cancel event, and a late duplicate request: still refunded once, never
    // debited again.
    s.deliver(&cancel("r-1", "ew"), "r-1").await;
    s.deliver(&requested("r-1", "ew", 100), "r-1").await;
    assert_eq!(s.balance("ew").await, 150);

    assert_eq!(
        s.published::<PaymentRefunded>().await,
        [PaymentRefunded {
            reservation_id: "r-1".into(),
            user_id: "ew".into(),
            amount: 100,
            balance: 150,
        }]
    );
    let (_, refunded) = s.outbox().await.pop().unwrap();
    assert_eq!(refunded["causationId"], cause.id);
    assert_eq!(refunded["correlationId"], "r-1");
    let kinds: Vec<Value> = s
        .movements("ew")
        .await
        .iter()
        .map(|m| m["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!("REFUND"), json!("DEBIT"), json!("DEPOSIT")]);
    assert_eq!(s.ledger_sum("ew").await, 150);
}

#[tokio::test]
async fn a_cancel_with_nothing_debited_is_answered_with_zero_once() {
    let s = service().await;
    s.deposit("ew", 70).await;
    s.deliver(&requested("r-1", "ew", 100), "r-1").await;
    s.deliver(&cancel("r-1", "ew"), "r-1").await;
    s.deliver(&cancel("r-1", "ew"), "r-1").await;
    assert_eq!(
        s.published::<PaymentRefunded>().await,
        [PaymentRefunded {
            reservation_id: "r-1".into(),
            user_id: "ew".into(),
            amount: 0,
            balance: 70,
        }]
    );
    assert_eq!(s.balance("ew").await, 70);
    assert_eq!(
        s.movements("ew").await.len(),
        1,
        "a zero answer is no ledger line"
    );
}

#[tokio::test]
async fn a_request_arriving_after_its_cancel_was_answered_debits_nothing() {
    let s = service().await;
    s.deposit("ew", 500).await;
    s.deliver(&cancel("r-1", "ew"), "r-1").await;
    s.deliver(&requested("r-1", "ew", 100), "r-1").await;
    assert_eq!(s.balance("ew").await, 500);
    let kinds: Vec<String> = s.outbox().await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, [PaymentRefunded::TYPE]);
    assert_eq!(s.published::<PaymentRefunded>().await[0].amount, 0);
}

#[tokio::test]
async fn concurrent_debits_never_overdraw_a_wallet() {
    let s = Arc::new(service().await);
    s.deposit("ew", 550).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let s = s.clone();
        tasks.spawn(async move {
            let id = format!("r-{i}");
            s.deliver(&requested(&id, "ew", 100), &id).await;
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(s.published::<PaymentSucceeded>().await.len(), 5);
    assert_eq!(s.published::<PaymentFailed>().await.len(), 5);
    assert_eq!(s.balance("ew").await, 50);
    assert_eq!(s.ledger_sum("ew").await, 50);
    let mut balances: Vec<i64> = s
        .published::<PaymentSucceeded>()
        .await
        .iter()
        .map(|p| p.balance)
        .collect();
    balances.sort_unstable();
    assert_eq!(
        balances,
        [50, 150, 250, 350, 450],
        "each debit saw the one before"
    );
}

#[tokio::test]
async fn the_database_itself_refuses_a_second_debit_or_a_negative_balance() {
    let s = service().await;
    s.deposit("ew", 150).await;
    s.deliver(&requested("r-1", "ew", 100), "r-1").await;
    let second_debit = query(
        "INSERT INTO movements
             (movement_id, user_id, kind, amount, reservation_id, balance_after, created_at)
         VALUES ('m-x', 'ew', 'DEBIT', 100, 'r-1', 0, 0)",
    )
    .execute(s.db.reader())
    .await;
    assert!(second_debit.is_err());
    let overdraw = query("UPDATE accounts SET balance = balance - 100 WHERE user_id = 'ew'")
        .execute(s.db.reader())
        .await;
    assert!(overdraw.is_err());
    assert_eq!(s.balance("ew").await, 50);
}

#[tokio::test]
async fn an_event_breaking_the_contract_fails_and_changes_nothing() {
    let s = service().await;
    s.deposit("ew", 150).await;
    for envelope in [
        Envelope::new(&requested("r-1", "ew", -100), "r-1", None, 0),
        Envelope::new(&requested("r-2", "not a user id", 100), "r-2", None, 0),
    ] {
        let mut uow = s.db.begin().await.unwrap();
        let failed = s
            .consumer("payment")
            .handler
            .handle(&mut uow, &envelope)
            .await;
        assert!(failed.is_err());
    }
    assert_eq!(s.balance("ew").await, 150);
    assert!(s.outbox().await.is_empty());
}

#[tokio::test]
async fn bad_input_is_a_400_problem_and_changes_nothing() {
    let s = service().await;
    let long = "u".repeat(65);
    for uri in [
        "/accounts/a%20b",
        &format!("/accounts/{long}"),
        "/accounts/%ED%95%9C/movements",
    ] {
        let answer = s.call("GET", uri, None, None).await;
        assert_problem(&answer, StatusCode::BAD_REQUEST, "invalid_user_id");
    }
    let cases = [
        ("{}", "missing_field"),
        (r#"{"amount": null}"#, "missing_field"),
        ("[]", "missing_field"),
        (r#"{"amount": 0}"#, "invalid_amount"),
        (r#"{"amount": -5}"#, "invalid_amount"),
        (r#"{"amount": 100000001}"#, "invalid_amount"),
        (r#"{"amount": 1.5}"#, "invalid_amount"),
        (r#"{"amount": "100"}"#, "invalid_amount"),
        ("{not json", "invalid_body"),
    ];
    for (body, code) in cases {
        let answer = s
            .call("POST", "/accounts/ew/deposit", Some(body), None)
            .await;
        assert_problem(&answer, StatusCode::BAD_REQUEST, code);
    }
    let answer = s
        .call(
            "POST",
            "/accounts/a%20b/deposit",
            Some(r#"{"amount": 5}"#),
            None,
        )
        .await;
    assert_problem(&answer, StatusCode::BAD_REQUEST, "invalid_user_id");
    let answer = s.deposit("ew", 100_000_000).await;
    assert_eq!(
        answer.body["balance"], 100_000_000,
        "the largest deposit is accepted"
    );
    assert_eq!(s.movements("ew").await.len(), 1);
}

/// API.md "Identity and access": a traveller deposits into and reads only their own wallet.
#[tokio::test]
async fn travellers_reach_only_their_own_wallet() {
    let s = service().await;
    let hong = caller("hong", Role::Customer);
    let kim = caller("kim", Role::Customer);
    let body = json!({"amount": 777}).to_string();
    let own = s
        .call_as(
            Some(&hong),
            "POST",
            "/accounts/hong/deposit",
            Some(&body),
            None,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.raw);
    let other = s
        .call_as(
            Some(&kim),
            "POST",
            "/accounts/hong/deposit",
            Some(&body),
            None,
        )
        .await;
    assert_eq!(
        (other.status, other.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let anonymous = s
        .call_as(None, "POST", "/accounts/hong/deposit", Some(&body), None)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.balance("hong").await,
        777,
        "only the owner's deposit counted"
    );
    for path in ["/accounts/hong", "/accounts/hong/movements"] {
        let read = s.call_as(Some(&kim), "GET", path, None, None).await;
        assert_eq!(
            (read.status, read.body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
        assert_eq!(
            s.call_as(Some(&hong), "GET", path, None, None).await.status,
            StatusCode::OK
        );
    }
}
