//! The wallet's HTTP API (API.md "Flight": accounts), plus the ledger behind each balance.
//! Requests are parsed into domain types here; nothing past this file sees a raw user id or amount.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tanda_core::Problem;
use tanda_core::auth::{Caller, Role};
use tanda_core::clock::rfc3339;
use tanda_core::db::Db;
use tanda_core::http::{IdempotencyKey, Json, Path};
use tanda_core::id::ClientId;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Error;
use crate::domain::{Account, Deposit, Movement};
use crate::store::{self, Deposited, Idempotency};

pub fn router(db: Db) -> Router {
    routes().with_state(db).into()
}

/// The operations `router` serves, documented.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

fn routes() -> OpenApiRouter<Db> {
    OpenApiRouter::new()
        .routes(routes!(get_account))
        .routes(routes!(deposit))
        .routes(routes!(list_movements))
}

/// A traveller's wallet (an empty one for a user never seen).
#[utoipa::path(get, path = "/accounts/{userId}", security(("bearer" = ["customer"])),
    params(("userId" = String, Path)),
    responses((status = OK, description = "The wallet", body = AccountView)))]
async fn get_account(
    caller: Caller,
    State(db): State<Db>,
    Path(user_id): Path<String>,
) -> Result<Response, Problem> {
    let account = store::account(&db, &own(&caller, &user_id)?).await?;
    Ok(axum::Json(AccountView::from(&account)).into_response())
}

/// A deposit.
// Only the document's: the handler takes any JSON, so that every way of getting `amount` wrong is
// answered the same way, a 400 naming it.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "only describes the body, which is read as any JSON"
)]
struct DepositRequest {
    /// Won to add to the balance.
    #[schema(minimum = 1, maximum = 100_000_000)]
    amount: i64,
}

/// Adds money to a traveller's wallet.
#[utoipa::path(post, path = "/accounts/{userId}/deposit", security(("bearer" = ["customer"])),
    params(("userId" = String, Path),
        ("Idempotency-Key" = Option<String>, Header,
            description = "The same key again returns the first answer and deposits nothing more")),
    request_body(content = DepositRequest, example = json!({"amount": 50000})),
    responses(
        (status = OK, description = "The wallet, with the new balance (or the first answer to \
            this Idempotency-Key)", body = AccountView),
        (status = CONFLICT, description = "`balance_limit`: the balance would exceed its limit",
            body = Problem, content_type = "application/problem+json"),
        (status = UNPROCESSABLE_ENTITY,
            description = "`idempotency_key_reused`: this key came with a different request",
            body = Problem, content_type = "application/problem+json"),
    ))]
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

/// A wallet's ledger: its deposits, debits and refunds.
#[utoipa::path(get, path = "/accounts/{userId}/movements", security(("bearer" = ["customer"])),
    params(("userId" = String, Path)),
    responses((status = OK, description = "The movements", body = Vec<MovementView>)))]
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

/// A traveller's wallet.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AccountView<'a> {
    user_id: &'a str,
    /// Won; never negative.
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
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MovementView<'a> {
    movement_id: &'a str,
    /// `DEPOSIT`, `DEBIT` or `REFUND`.
    #[schema(example = "DEPOSIT")]
    kind: &'static str,
    /// Won moved, whatever the direction (never negative).
    amount: i64,
    /// The reservation a debit or refund is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation_id: Option<&'a str>,
    balance_after: i64,
    #[schema(format = DateTime)]
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
