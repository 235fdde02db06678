//! The wallet's HTTP API (API.md "Flight": accounts), plus the ledger behind each balance.
//! Requests are parsed into domain types here; nothing past this file sees a raw user id or amount.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};
use tanda_core::Problem;
use tanda_core::auth::{Caller, Role};
use tanda_core::clock::rfc3339;
use tanda_core::db::Db;
use tanda_core::http::{IdempotencyKey, Json, Path};
use tanda_core::id::ClientId;

use crate::Error;
use crate::domain::{Account, Deposit, Movement};
use crate::store::{self, Deposited, Idempotency};

pub fn router(db: Db) -> Router {
    Router::new()
        .route("/accounts/{user_id}", get(get_account))
        .route("/accounts/{user_id}/deposit", post(deposit))
        .route("/accounts/{user_id}/movements", get(list_movements))
        .with_state(db)
}

async fn get_account(
    caller: Caller,
    State(db): State<Db>,
    Path(user_id): Path<String>,
) -> Result<Response, Problem> {
    let account = store::account(&db, &own(&caller, &user_id)?).await?;
    Ok(axum::Json(AccountView::from(&account)).into_response())
}

/// `POST /accounts/{userId}/deposit {amount}`. The body is taken as any JSON so that every way of
/// getting `amount` wrong is answered the same way: a 400 naming it.
async fn deposit(
    caller: Caller,
    State(db): State<Db>,
    Path(user_id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<Value>,
) -> Result<Response, Problem> {
    let user = caller.act_as(Role::Customer, Some(&user(&user_id)?))?;
    let amount = deposit_amount(&body)?;
    let fingerprint = json!({"userId": user.as_str(), "amount": amount.won()});
    let idempotency = key.as_deref().map(|key| Idempotency {
        key,
        request: &fingerprint,
    });
    let outcome =
        Db::retry_on_conflict(|| store::deposit(&db, &user, amount, idempotency, account_json))
            .await?;
    Ok(match outcome {
        Deposited::New(account) => axum::Json(AccountView::from(&account)).into_response(),
        Deposited::Replayed(first) => first.into_response(),
    })
}

async fn list_movements(
    caller: Caller,
    State(db): State<Db>,
    Path(user_id): Path<String>,
) -> Result<Response, Problem> {
    let movements = store::movements(&db, &own(&caller, &user_id)?).await?;
    Ok(axum::Json(movements.iter().map(MovementView::from).collect::<Vec<_>>()).into_response())
}

/// The wallet of `raw`, if it is the caller's to see; someone else's is as good as unknown.
fn own(caller: &Caller, raw: &str) -> Result<ClientId, Problem> {
    let user = user(raw)?;
    if caller.may_read(Role::Customer, user.as_str()) {
        Ok(user)
    } else {
        Err(Problem::not_found("account", user.as_str()))
    }
}

fn user(raw: &str) -> Result<ClientId, Error> {
    ClientId::parse(raw).map_err(|e| Error::Invalid {
        code: "invalid_user_id",
        detail: format!("userId {e}"),
    })
}

fn deposit_amount(body: &Value) -> Result<Deposit, Error> {
    let invalid = |detail: String| Error::Invalid {
        code: "invalid_amount",
        detail,
    };
    match body.get("amount") {
        None | Some(Value::Null) => Err(Error::Invalid {
            code: "missing_field",
            detail: "amount is required".to_owned(),
        }),
        Some(amount) => amount
            .as_i64()
            .ok_or_else(|| {
                invalid(format!(
                    "amount must be a whole number of won, not {amount}"
                ))
            })
            .and_then(|won| Deposit::parse(won).map_err(|e| invalid(e.to_string()))),
    }
}

/// API.md's Account.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountView<'a> {
    user_id: &'a str,
    balance: i64,
}

impl<'a> From<&'a Account> for AccountView<'a> {
    fn from(account: &'a Account) -> Self {
        Self {
            user_id: account.user_id.as_str(),
            balance: account.balance,
        }
    }
}

fn account_json(account: &Account) -> Value {
    serde_json::to_value(AccountView::from(account)).expect("an account view is plain JSON")
}

/// One ledger line.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MovementView<'a> {
    movement_id: &'a str,
    kind: &'static str,
    amount: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation_id: Option<&'a str>,
    balance_after: i64,
    at: String,
}

impl<'a> From<&'a Movement> for MovementView<'a> {
    fn from(m: &'a Movement) -> Self {
        Self {
            movement_id: &m.movement_id,
            kind: m.kind.as_str(),
            amount: m.amount,
            reservation_id: m.reservation_id.as_deref(),
            balance_after: m.balance_after,
            at: rfc3339(m.at),
        }
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { code, detail } => Problem::bad_request(code, detail),
            Error::Rejected(r) => Problem::conflict(r.code(), r.to_string()),
            Error::BadEvent(_) => Problem::internal(&e),
            Error::Db(e) => e.into(),
        }
    }
}
