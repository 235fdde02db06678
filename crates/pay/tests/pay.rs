//! Pay on a real temp SQLite database, through its routes (public, and the internal `POST /pays`)
//! and its in-process handle: a trip is charged at most once, the amount asked, declines and
//! outages store nothing, bad input is a 400 problem.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use proptest::prelude::*;
use serde_json::{Value, json};
use tanda_cardnet::{CardNetwork, CardNumber, NetworkMode, tokenize};
use tanda_catalog::taxi::pay::PayRequest;
use tanda_catalog::taxi::{CARD, CASH};
use tanda_core::auth::{Caller, Role};
use tanda_core::sql::query_scalar;
use tanda_core::{Db, Problem};
use tanda_pay::{PayApi, PayError, SPEC, build, card_network};
use tanda_testkit::caller;
use tempfile::TempDir;

struct Service {
    _dir: TempDir,
    db: Db,
    /// The public routes, which the gateway serves.
    router: Router,
    /// `POST /pays`, which only dispatch calls.
    internal: Router,
    api: PayApi,
    network: Arc<CardNetwork>,
}

async fn service() -> Service {
    let (dir, db) = tanda_testkit::database(&SPEC).await;
    let network = card_network(&db, NetworkMode::default());
    let (parts, api) = build(db.clone(), network.clone()).await.unwrap();
    Service {
        _dir: dir,
        db,
        router: parts.router,
        internal: parts.internal,
        api,
        network,
    }
}

fn card(number: &str) -> String {
    tokenize(&CardNumber::parse(number).unwrap()).token
}

fn pay_body(book_id: &str, dispatch_id: &str, amount: i64, token: &str) -> Value {
    json!({"bookId": book_id, "customerId": "c1", "dispatchId": dispatch_id, "amount": amount, "cardToken": token})
}

fn cash_body(book_id: &str, dispatch_id: &str, amount: i64) -> Value {
    json!({"bookId": book_id, "customerId": "c1", "dispatchId": dispatch_id, "amount": amount, "method": "CASH"})
}

/// A call by the operator, who may do everything.
async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
    idempotency_key: Option<&str>,
) -> (StatusCode, HeaderMap, Value) {
    let operator = caller("operator", Role::Operator);
    call_as(router, Some(operator), method, uri, body, idempotency_key).await
}

async fn call_as(
    router: &Router,
    caller: Option<Caller>,
    method: &str,
    uri: &str,
    body: Option<Value>,
    idempotency_key: Option<&str>,
) -> (StatusCode, HeaderMap, Value) {
    let key = tanda_testkit::idempotency_key(idempotency_key);
    let body = body.map(|b| b.to_string());
    let answer =
        tanda_testkit::call(router, caller.as_ref(), method, uri, body.as_deref(), &key).await;
    assert!(
        answer.raw.is_empty() || answer.body != Value::Null,
        "not JSON: {}",
        answer.raw
    );
    (answer.status, answer.headers, answer.body)
}

async fn count(db: &Db, sql: &'static str, arg: &str) -> i64 {
    query_scalar(sql)
        .bind(arg)
        .fetch_one(db.reader())
        .await
        .unwrap()
}

async fn pays_of_dispatch(db: &Db, dispatch_id: &str) -> i64 {
    count(
        db,
        "SELECT COUNT(*) FROM pays WHERE dispatch_id = $1",
        dispatch_id,
    )
    .await
}

async fn approvals_of_book(db: &Db, book_id: &str) -> i64 {
    count(
        db,
        "SELECT COUNT(*) FROM outbox WHERE type = 'taxi.PaymentApproved' AND aggregate_id = $1",
        book_id,
    )
    .await
}

fn assert_problem(
    status: StatusCode,
    headers: &HeaderMap,
    body: &Value,
    want: StatusCode,
    code: &str,
) {
    assert_eq!(status, want, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["code"], code);
    assert_eq!(body["status"], want.as_u16());
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn paying_a_trip_twice_charges_once_and_answers_200_with_the_same_pay() {
    let s = service().await;
    let body = pay_body("b1", "d1", 7300, &card("4242424242424242"));
    let (status, _, first) = call(&s.internal, "POST", "/pays", Some(body.clone()), None).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["bookId"], "b1");
    assert_eq!(first["dispatchId"], "d1");
    assert_eq!(first["amount"], 7300);
    assert_eq!(first["cardLast4"], "4242");
    assert_eq!(first["method"], "CARD");
    assert_eq!(first["status"], "PAID");
    assert!(first["paidAt"].as_str().unwrap().ends_with('Z'));

    let (status, _, again) = call(&s.internal, "POST", "/pays", Some(body), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first);
    assert_eq!(pays_of_dispatch(&s.db, "d1").await, 1);
    assert_eq!(approvals_of_book(&s.db, "b1").await, 1);
    assert_eq!(s.network.charge_count().await.unwrap(), 1);

    let (status, _, listed) = call(&s.router, "GET", "/pays?bookId=b1", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed, json!([first.clone()]));
    let uri = format!("/pays/{}", first["payId"].as_str().unwrap());
    let (status, _, shown) = call(&s.router, "GET", &uri, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown, first);

    let envelope: String =
        query_scalar("SELECT envelope FROM outbox WHERE type = 'taxi.PaymentApproved'")
            .fetch_one(s.db.reader())
            .await
            .unwrap();
    let envelope: Value = serde_json::from_str(&envelope).unwrap();
    assert_eq!(envelope["correlationId"], "b1");
    assert_eq!(envelope["aggregateId"], "b1");
    assert_eq!(envelope["payload"]["payId"], first["payId"]);
    assert_eq!(envelope["payload"]["amount"], 7300);
}

/// `POST /pays` is internal: pay's public routes (those the gateway serves) do not take it, so
/// no client charges a trip — nor sets its fare — by paying it first.
#[tokio::test]
async fn the_public_routes_take_no_payment() {
    let s = service().await;
    for amount in [1, 9_999_999] {
        let body = pay_body("b1", "d1", amount, &card("4242424242424242"));
        let (status, _, _) = call(&s.router, "POST", "/pays", Some(body), None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }
    assert_eq!(pays_of_dispatch(&s.db, "d1").await, 0);
    assert_eq!(s.network.charge_count().await.unwrap(), 0);
    let (status, _, listed) = call(&s.router, "GET", "/pays?bookId=b1", None, None).await;
    assert_eq!((status, listed), (StatusCode::OK, json!([])));
}

/// A trip is charged the fare dispatch computed, once: asked again for another amount, pay
/// refuses (409) rather than answer with the payment it has, so nobody can make a trip's first
/// payment decide its fare. The same amount again is the same payment, charged once.
#[tokio::test]
async fn another_amount_for_a_paid_trip_is_refused_and_changes_nothing() {
    let s = service().await;
    let body = |amount| pay_body("b1", "d1", amount, &card("4242424242424242"));
    let (status, _, first) = call(&s.internal, "POST", "/pays", Some(body(11_200)), None).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");

    for amount in [1, 11_100, 9_999_999] {
        let (status, headers, problem) =
            call(&s.internal, "POST", "/pays", Some(body(amount)), None).await;
        assert_problem(
            status,
            &headers,
            &problem,
            StatusCode::CONFLICT,
            "amount_mismatch",
        );
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("11200") && detail.contains(&amount.to_string()),
            "{detail}"
        );
    }
    let (status, _, again) = call(&s.internal, "POST", "/pays", Some(body(11_200)), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first);

    let (_, _, listed) = call(&s.router, "GET", "/pays?bookId=b1", None, None).await;
    assert_eq!(listed, json!([first]));
    assert_eq!(pays_of_dispatch(&s.db, "d1").await, 1);
    assert_eq!(approvals_of_book(&s.db, "b1").await, 1);
    assert_eq!(s.network.charge_count().await.unwrap(), 1);

    // The in-process handle dispatch uses refuses it the same way.
    let other = PayRequest {
        book_id: "b1".into(),
        customer_id: "c1".into(),
        dispatch_id: "d1".into(),
        amount: 1,
        card_token: card("4242424242424242"),
        method: CARD.into(),
    };
    let refused = s
        .api
        .pay(other)
        .await
        .expect_err("another amount is refused");
    assert_eq!(Problem::from(refused).code, "amount_mismatch");
}

/// The network's idempotency key is the dispatch id, so a charge it made for the trip under
/// another amount (pay stopped before storing it) comes back from it: pay refuses that too,
/// rather than store and answer an amount nobody asked for.
#[tokio::test]
async fn a_network_charge_of_another_amount_is_not_taken_for_the_fare() {
    let s = service().await;
    let token = card("4242424242424242");
    s.network.charge(&token, 1, "d1").await.unwrap();
    let request = PayRequest {
        book_id: "b1".into(),
        customer_id: "c1".into(),
        dispatch_id: "d1".into(),
        amount: 11_200,
        card_token: token,
        method: CARD.into(),
    };
    let refused = s
        .api
        .pay(request)
        .await
        .expect_err("another amount is refused");
    assert_eq!(Problem::from(refused).code, "amount_mismatch");
    assert_eq!(pays_of_dispatch(&s.db, "d1").await, 0);
    assert_eq!(approvals_of_book(&s.db, "b1").await, 0);
}

#[tokio::test]
async fn concurrent_payments_of_one_trip_charge_once() {
    let s = service().await;
    // A little latency so both calls are in flight at the card network together.
    s.network
        .set_mode(NetworkMode {
            latency_ms: 20,
            ..NetworkMode::default()
        })
        .await
        .unwrap();
    let body = pay_body("b2", "d2", 4800, &card("4242424242424242"));
    let (a, b) = tokio::join!(
        call(&s.internal, "POST", "/pays", Some(body.clone()), None),
        call(&s.internal, "POST", "/pays", Some(body), None),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CREATED]);
    assert_eq!(a.2, b.2);
    assert_eq!(pays_of_dispatch(&s.db, "d2").await, 1);
    assert_eq!(approvals_of_book(&s.db, "b2").await, 1);
    assert_eq!(s.network.charge_count().await.unwrap(), 1);

    // The same through the in-process handle dispatch uses.
    let request = PayRequest {
        book_id: "b3".into(),
        customer_id: "c1".into(),
        dispatch_id: "d3".into(),
        amount: 5000,
        card_token: card("4242424242424242"),
        method: CARD.into(),
    };
    let (x, y) = tokio::join!(s.api.pay(request.clone()), s.api.pay(request));
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.0, y.0);
    assert!(x.1 ^ y.1, "exactly one call creates the payment");
    assert_eq!(pays_of_dispatch(&s.db, "d3").await, 1);
    assert_eq!(approvals_of_book(&s.db, "b3").await, 1);
    assert_eq!(s.network.charge_count().await.unwrap(), 2);
}

/// Cash the driver took is recorded like a charge — the fare asked, once per trip, announced —
/// without touching the card network; after a declined card too.
#[tokio::test]
async fn a_trip_settled_in_cash_is_paid_once_with_no_card() {
    let s = service().await;
    let declined = pay_body("b1", "d1", 7300, &card("4000000000000002"));
    let (status, _, _) = call(&s.internal, "POST", "/pays", Some(declined), None).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);

    let (status, _, first) = call(
        &s.internal,
        "POST",
        "/pays",
        Some(cash_body("b1", "d1", 7300)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["method"], "CASH");
    assert_eq!(first["amount"], 7300);
    assert!(first.get("cardLast4").is_none(), "{first}");
    let (status, _, again) = call(
        &s.internal,
        "POST",
        "/pays",
        Some(cash_body("b1", "d1", 7300)),
        None,
    )
    .await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    // Asked again by card, the trip is paid already: the cash payment answers, nothing is charged.
    let by_card = pay_body("b1", "d1", 7300, &card("4242424242424242"));
    let (status, _, answered) = call(&s.internal, "POST", "/pays", Some(by_card), None).await;
    assert_eq!((status, &answered), (StatusCode::OK, &first));
    let (status, headers, problem) = call(
        &s.internal,
        "POST",
        "/pays",
        Some(cash_body("b1", "d1", 1)),
        None,
    )
    .await;
    assert_problem(
        status,
        &headers,
        &problem,
        StatusCode::CONFLICT,
        "amount_mismatch",
    );

    assert_eq!(s.network.charge_count().await.unwrap(), 0);
    assert_eq!(pays_of_dispatch(&s.db, "d1").await, 1);
    assert_eq!(approvals_of_book(&s.db, "b1").await, 1);
    let event: String = query_scalar(
        "SELECT envelope FROM outbox WHERE type = 'taxi.PaymentApproved' AND aggregate_id = $1",
    )
    .bind("b1")
    .fetch_one(s.db.reader())
    .await
    .unwrap();
    let event: Value = serde_json::from_str(&event).unwrap();
    assert_eq!(event["payload"]["method"], "CASH");
    assert!(event["payload"].get("cardLast4").is_none(), "{event}");
    let (_, _, listed) = call(&s.router, "GET", "/pays?bookId=b1", None, None).await;
    assert_eq!(listed, json!([first]));

    let mut with_token = cash_body("b2", "d2", 7300);
    with_token["cardToken"] = json!(card("4242424242424242"));
    let mut cheque = cash_body("b2", "d2", 7300);
    cheque["method"] = json!("CHEQUE");
    for body in [with_token, cheque] {
        let (status, headers, problem) = call(&s.internal, "POST", "/pays", Some(body), None).await;
        assert_problem(
            status,
            &headers,
            &problem,
            StatusCode::BAD_REQUEST,
            "invalid_payment",
        );
    }
    assert_eq!(pays_of_dispatch(&s.db, "d2").await, 0);
    let cash = PayRequest {
        book_id: "b3".into(),
        customer_id: "c1".into(),
        dispatch_id: "d3".into(),
        amount: 4800,
        card_token: String::new(),
        method: CASH.into(),
    };
    let (pay, created) = s.api.pay(cash).await.unwrap();
    assert!(created);
    assert_eq!((pay.method.as_str(), pay.card_last4), (CASH, None));
}

/// The card was charged but the answer never reached dispatch (it gave up waiting), and the
/// driver then takes the fare in cash: pay finds the charge the network made under the trip's key
/// and answers with the card payment, so the customer pays once. While the network cannot be
/// asked, such a trip's cash is refused for now (503); a trip whose card was never tried settles
/// in cash with the network down.
#[tokio::test]
async fn cash_after_a_card_charge_whose_answer_was_lost_is_the_card_payment() {
    let s = service().await;
    s.network
        .set_mode(NetworkMode {
            answer_delay_ms: 5_000,
            ..NetworkMode::default()
        })
        .await
        .unwrap();
    let by_card = pay_body("b1", "d1", 7300, &card("4242424242424242"));
    let gave_up = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        call(&s.internal, "POST", "/pays", Some(by_card), None),
    )
    .await;
    assert!(gave_up.is_err(), "the answer was still on its way");
    assert_eq!(
        s.network.charge_count().await.unwrap(),
        1,
        "but the card was charged"
    );

    s.network
        .set_mode(NetworkMode {
            down: true,
            ..NetworkMode::default()
        })
        .await
        .unwrap();
    let cash = cash_body("b1", "d1", 7300);
    let (status, _, _) = call(&s.internal, "POST", "/pays", Some(cash.clone()), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, never_tried) = call(
        &s.internal,
        "POST",
        "/pays",
        Some(cash_body("b2", "d2", 4800)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{never_tried}");
    assert_eq!(never_tried["method"], "CASH");

    s.network.set_mode(NetworkMode::default()).await.unwrap();
    let (status, _, paid) = call(&s.internal, "POST", "/pays", Some(cash), None).await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    assert_eq!(
        (&paid["method"], &paid["cardLast4"]),
        (&json!("CARD"), &json!("4242"))
    );
    assert_eq!(s.network.charge_count().await.unwrap(), 1, "charged once");
    assert_eq!(pays_of_dispatch(&s.db, "d1").await, 1);
}

#[tokio::test]
async fn a_declined_card_is_402_and_stores_nothing() {
    let s = service().await;
    let body = pay_body("b1", "d1", 7300, &card("4000000000000002"));
    let (status, headers, problem) = call(&s.internal, "POST", "/pays", Some(body), None).await;
    assert_problem(
        status,
        &headers,
        &problem,
        StatusCode::PAYMENT_REQUIRED,
        "card_declined",
    );
    assert_eq!(pays_of_dispatch(&s.db, "d1").await, 0);
    assert_eq!(approvals_of_book(&s.db, "b1").await, 0);
    assert_eq!(s.network.charge_count().await.unwrap(), 0);
    let (_, _, listed) = call(&s.router, "GET", "/pays?bookId=b1", None, None).await;
    assert_eq!(listed, json!([]));
}

#[tokio::test]
async fn a_network_outage_is_503_with_retry_after_and_the_retry_succeeds() {
    let s = service().await;
    let down = json!({"latencyMs": 0, "down": true});
    let (status, _, _) = call(&s.router, "PUT", "/admin/card-network", Some(down), None).await;
    assert_eq!(status, StatusCode::OK);

    let body = pay_body("b1", "d1", 7300, &card("4242424242424242"));
    let (status, headers, problem) =
        call(&s.internal, "POST", "/pays", Some(body.clone()), None).await;
    assert_problem(
        status,
        &headers,
        &problem,
        StatusCode::SERVICE_UNAVAILABLE,
        "card_network_unavailable",
    );
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(pays_of_dispatch(&s.db, "d1").await, 0);

    let up = json!({"latencyMs": 0, "down": false});
    call(&s.router, "PUT", "/admin/card-network", Some(up), None).await;
    let (status, _, _) = call(&s.internal, "POST", "/pays", Some(body), None).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(pays_of_dispatch(&s.db, "d1").await, 1);
}

#[tokio::test]
async fn the_operator_sets_and_reads_the_network_mode() {
    let s = service().await;
    let (status, _, mode) = call(&s.router, "GET", "/admin/card-network", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        mode,
        json!({"latencyMs": 0, "down": false, "answerDelayMs": 0})
    );

    let wanted = json!({"latencyMs": 250, "down": true, "answerDelayMs": 40});
    let (status, _, mode) = call(
        &s.router,
        "PUT",
        "/admin/card-network",
        Some(wanted.clone()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mode, wanted);
    let (_, _, mode) = call(&s.router, "GET", "/admin/card-network", None, None).await;
    assert_eq!(mode, wanted);
    assert_eq!(
        s.network.mode().await.unwrap(),
        NetworkMode {
            latency_ms: 250,
            down: true,
            answer_delay_ms: 40,
        }
    );

    // A minute is the most either delay may be, a minute included.
    let slowest = json!({"latencyMs": 60_000, "down": false, "answerDelayMs": 60_000});
    let (status, _, _) = call(&s.router, "PUT", "/admin/card-network", Some(slowest), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(
        &s.router,
        "PUT",
        "/admin/card-network",
        Some(wanted.clone()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let too_slow = json!({"latencyMs": 60_001, "down": false});
    let (status, headers, problem) = call(
        &s.router,
        "PUT",
        "/admin/card-network",
        Some(too_slow),
        None,
    )
    .await;
    assert_problem(
        status,
        &headers,
        &problem,
        StatusCode::BAD_REQUEST,
        "invalid_latency",
    );
    let (_, _, mode) = call(&s.router, "GET", "/admin/card-network", None, None).await;
    assert_eq!(mode, wanted, "a rejected change changes nothing");

    // Written before the answer delay existed, a mode without it has none.
    let (status, _, mode) = call(
        &s.router,
        "PUT",
        "/admin/card-network",
        Some(json!({"latencyMs": 0, "down": false})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        mode,
        json!({"latencyMs": 0, "down": false, "answerDelayMs": 0})
    );
}

#[tokio::test]
async fn bad_input_is_a_400_problem_and_stores_nothing() {
    let s = service().await;
    let ok = card("4242424242424242");
    for body in [
        pay_body("b1", "d1", 0, &ok),
        pay_body("b1", "d1", 10_000_001, &ok),
        pay_body(" ", "d1", 4800, &ok),
        pay_body("b1", &"d".repeat(101), 4800, &ok),
        pay_body("b1", "d1", 4800, ""),
        pay_body("b1", "d1", 4800, "tok_not_a_real_token"),
    ] {
        let (status, headers, problem) = call(&s.internal, "POST", "/pays", Some(body), None).await;
        assert_problem(
            status,
            &headers,
            &problem,
            StatusCode::BAD_REQUEST,
            "invalid_payment",
        );
    }
    let (status, headers, problem) = call(&s.router, "GET", "/pays", None, None).await;
    assert_problem(
        status,
        &headers,
        &problem,
        StatusCode::BAD_REQUEST,
        "missing_book_id",
    );
    let (status, headers, problem) = call(&s.router, "GET", "/pays/nope", None, None).await;
    assert_problem(
        status,
        &headers,
        &problem,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(pays_of_dispatch(&s.db, "d1").await, 0);
    assert_eq!(approvals_of_book(&s.db, "b1").await, 0);
    assert_eq!(s.network.charge_count().await.unwrap(), 0);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer() {
    let s = service().await;
    let body = pay_body("b1", "d1", 4800, &card("4242424242424242"));
    let (status, _, first) =
        call(&s.internal, "POST", "/pays", Some(body.clone()), Some("k1")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, headers, again) = call(&s.internal, "POST", "/pays", Some(body), Some("k1")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(again, first);

    let other = pay_body("b9", "d9", 4800, &card("4242424242424242"));
    let (status, _, problem) = call(&s.internal, "POST", "/pays", Some(other), Some("k1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["code"], "idempotency_key_reused");
    assert_eq!(pays_of_dispatch(&s.db, "d9").await, 0);
    assert_eq!(s.network.charge_count().await.unwrap(), 1);
}

/// One step of a random session against pay.
#[derive(Debug, Clone)]
enum Step {
    Pay {
        trip: usize,
        good_card: bool,
        amount: i64,
    },
    Network {
        down: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        // Mostly the one fare, so trips are asked again for the amount they were charged.
        4 => (0..3usize, any::<bool>(), prop_oneof![3 => Just(11_200i64), 1 => 1..20_000i64])
            .prop_map(|(trip, good_card, amount)| Step::Pay { trip, good_card, amount }),
        1 => any::<bool>().prop_map(|down| Step::Network { down }),
    ]
}

/// DESIGN §5.5 against a model: whatever the sequence of payments, declines and outages, each trip
/// gets at most one payment, one event and one network charge; every later answer for the same
/// amount is that same payment, and every later request for another amount is refused.
#[test]
fn random_sessions_charge_each_trip_at_most_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s = runtime.block_on(service());
    let good = card("4242424242424242");
    let bad = card("4000000000000002");
    let config = ProptestConfig {
        cases: 32,
        ..ProptestConfig::default()
    };
    proptest!(config, |(steps in prop::collection::vec(step(), 1..25))| {
        // Each case has its own trips and its own network (its log in memory); the database is
        // shared.
        let session = tanda_core::id::new_id();
        let network = Arc::new(CardNetwork::default());
        let (_, api) = runtime.block_on(build(s.db.clone(), network.clone())).unwrap();
        let trip_ids: Vec<String> = (0..3).map(|t| format!("s{session}-d{t}")).collect();
        let book_id = format!("s{session}-b");
        let mut paid: HashMap<usize, (String, i64)> = HashMap::new();
        let mut down = false;
        for step in steps {
            match step {
                Step::Network { down: d } => {
                    down = d;
                    runtime.block_on(network.set_mode(NetworkMode { down, ..NetworkMode::default() })).unwrap();
                }
                Step::Pay { trip, good_card, amount } => {
                    let request = PayRequest {
                        book_id: book_id.clone(),
                        customer_id: "c1".into(),
                        dispatch_id: trip_ids[trip].clone(),
                        amount,
                        card_token: if good_card { good.clone() } else { bad.clone() },
                        method: CARD.into(),
                    };
                    let outcome = runtime.block_on(api.pay(request));
                    match (paid.get(&trip), outcome) {
                        (Some((pay_id, charged)), Ok((pay, created))) => {
                            prop_assert_eq!(&pay.pay_id, pay_id);
                            prop_assert_eq!(pay.amount, amount);
                            prop_assert_eq!(*charged, amount);
                            prop_assert!(!created);
                        }
                        (Some((_, charged)), Err(PayError::AmountMismatch(e))) => {
                            prop_assert_ne!(*charged, amount);
                            prop_assert_eq!((e.charged, e.asked), (*charged, amount));
                        }
                        (None, Ok((pay, created))) => {
                            prop_assert!(good_card && !down && created);
                            prop_assert_eq!(pay.amount, amount);
                            paid.insert(trip, (pay.pay_id, amount));
                        }
                        (None, Err(PayError::Unavailable(_))) => prop_assert!(down),
                        (None, Err(PayError::Declined(_))) => prop_assert!(!good_card && !down),
                        (_, other) => prop_assert!(false, "unexpected {other:?}"),
                    }
                }
            }
        }
        for (trip, id) in trip_ids.iter().enumerate() {
            let want = i64::from(paid.contains_key(&trip));
            prop_assert_eq!(runtime.block_on(pays_of_dispatch(&s.db, id)), want);
        }
        prop_assert_eq!(runtime.block_on(approvals_of_book(&s.db, &book_id)), paid.len() as i64);
        prop_assert_eq!(runtime.block_on(network.charge_count()).unwrap(), paid.len());
    });
}

/// A customer reads the payments of their own trips only; the card network's controls are the
/// operator's.
#[tokio::test]
async fn customers_read_only_their_own_payments() {
    let s = service().await;
    let body = pay_body("b-own", "d-own", 5_000, &card("4242424242424242"));
    let (status, _, paid) = call(&s.internal, "POST", "/pays", Some(body), None).await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    let pay_id = paid["payId"].as_str().unwrap().to_owned();
    let owner = caller("c1", Role::Customer);
    let stranger = caller("c2", Role::Customer);
    let (_, _, own) = call_as(
        &s.router,
        Some(owner.clone()),
        "GET",
        "/pays?bookId=b-own",
        None,
        None,
    )
    .await;
    assert_eq!(own.as_array().unwrap().len(), 1, "{own}");
    let (_, _, none) = call_as(
        &s.router,
        Some(stranger.clone()),
        "GET",
        "/pays?bookId=b-own",
        None,
        None,
    )
    .await;
    assert_eq!(none, json!([]));
    let path = format!("/pays/{pay_id}");
    assert_eq!(
        call_as(&s.router, Some(owner.clone()), "GET", &path, None, None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call_as(&s.router, Some(stranger), "GET", &path, None, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call_as(&s.router, None, "GET", &path, None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let down = json!({"latencyMs": 0, "down": true});
    let (status, _, _) = call_as(
        &s.router,
        Some(owner),
        "PUT",
        "/admin/card-network",
        Some(down),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        !s.network.mode().await.unwrap().down,
        "the network was not taken down"
    );
}

/// The mode an operator sets is kept with the network's records: another instance of pay on the
/// same database charges by it, and so does one started afterwards, whatever it started with.
#[tokio::test]
async fn the_card_networks_mode_holds_for_every_instance_and_after_a_restart() {
    let s = service().await;
    let other = card_network(&s.db, NetworkMode::default());
    let down = json!({"latencyMs": 0, "down": true, "answerDelayMs": 0});
    let (status, _, body) = call(
        &s.router,
        "PUT",
        "/admin/card-network",
        Some(down.clone()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = card("4242424242424242");
    assert_eq!(
        other.charge(&token, 1, "d1").await,
        Err(tanda_cardnet::ChargeError::Unavailable)
    );
    let restarted = card_network(
        &s.db,
        NetworkMode {
            latency_ms: 5,
            ..NetworkMode::default()
        },
    );
    let (parts, _) = build(s.db.clone(), restarted.clone()).await.unwrap();
    let (status, _, body) = call(&parts.router, "GET", "/admin/card-network", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, down));

    restarted.set_mode(NetworkMode::default()).await.unwrap();
    assert!(other.charge(&token, 1, "d1").await.is_ok());
    assert_eq!(s.network.charge_count().await.unwrap(), 1);
}
