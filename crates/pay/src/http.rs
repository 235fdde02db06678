//! Pay's HTTP edge: the payment queries and the operator's control of the simulated card network
//! (how tests and operators exercise dispatch's circuit breaker), public; and `POST /pays`,
//! internal: only dispatch charges a trip, the fare it computed.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use tanda_catalog::taxi::pay::{Pay, PayRequest};
use tanda_core::Problem;
use tanda_core::auth::{Caller, Role};
use tanda_core::http::{IdempotencyKey, Json, Path, Query};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::PayApi;
use crate::domain::Payment;
use crate::store;

/// The longest latency an operator may inject: longer would only park callers' connections.
const MAX_LATENCY_MS: u64 = 60_000;

/// The public routes, which the gateway serves.
pub fn router(api: PayApi) -> Router {
    routes().with_state(api).into()
}

/// The operations `router` serves, documented (`POST /pays`, internal, is not among them).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

fn routes() -> OpenApiRouter<PayApi> {
    OpenApiRouter::new()
        .routes(routes!(list_pays))
        .routes(routes!(get_pay))
        .routes(routes!(get_network_mode, set_network_mode))
}

/// The internal routes: `POST /pays`, for dispatch only (see `ServiceParts::internal`).
pub fn internal(api: PayApi) -> Router {
    Router::new().route("/pays", post(create)).with_state(api)
}

/// 201 with a new payment, 200 with the trip's existing one.
async fn create(
    State(api): State<PayApi>,
    IdempotencyKey(key): IdempotencyKey,
    Json(request): Json<PayRequest>,
) -> Result<Response, Problem> {
    let fingerprint = serde_json::to_value(&request).expect("a PayRequest serializes");
    if let Some(key) = &key
        && let Some(first) = store::replay(&api.db, key, &fingerprint).await?
    {
        return Ok(first.into_response());
    }
    let (pay, created) = api.pay(request).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    if let Some(key) = &key {
        let body = serde_json::to_value(&pay).expect("a Pay serializes");
        store::remember(&api.db, key, &fingerprint, status.as_u16(), &body).await?;
    }
    Ok((status, Json(pay)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ByBook {
    /// The booking whose payments to list.
    // Optional here only so that a missing one gets its own problem.
    #[param(required = true)]
    book_id: Option<String>,
}

/// A booking's payments: those of the caller's own bookings (an operator's: any).
#[utoipa::path(get, path = "/pays", security(("bearer" = ["customer"])), params(ByBook),
    responses((status = OK, description = "The booking's payments (none if not the caller's)",
        body = Vec<Pay>)))]
async fn list_pays(
    caller: Caller,
    State(api): State<PayApi>,
    Query(query): Query<ByBook>,
) -> Result<Json<Vec<Pay>>, Problem> {
    let book_id = query
        .book_id
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| {
            Problem::bad_request("missing_book_id", "the bookId query parameter is required")
        })?;
    let payments = store::by_book(&api.db, &book_id).await?;
    let own = payments.iter().filter(|p| may_read(&caller, p));
    Ok(Json(own.map(Payment::view).collect()))
}

/// One payment, if it is of one of the caller's bookings.
#[utoipa::path(get, path = "/pays/{payId}", security(("bearer" = ["customer"])),
    params(("payId" = String, Path)),
    responses((status = OK, description = "The payment", body = Pay)))]
async fn get_pay(
    caller: Caller,
    State(api): State<PayApi>,
    Path(pay_id): Path<String>,
) -> Result<Json<Pay>, Problem> {
    match store::by_id(&api.db, &pay_id).await? {
        Some(payment) if may_read(&caller, &payment) => Ok(Json(payment.view())),
        _ => Err(Problem::not_found("pay", &pay_id)),
    }
}

/// A payment is its customer's to read (and an operator's); one of unknown owner, made before
/// payments knew it, the operator's only.
fn may_read(caller: &Caller, payment: &Payment) -> bool {
    caller.is_operator()
        || (!payment.customer_id.is_empty()
            && caller.may_read(Role::Customer, &payment.customer_id))
}

/// The simulated card network's current behaviour.
#[utoipa::path(get, path = "/admin/card-network",
    responses((status = OK, description = "The network's behaviour", body = NetworkMode),
        (status = SERVICE_UNAVAILABLE, description = "`card_network_unavailable`: pay's database cannot be read; retry")))]
async fn get_network_mode(
    caller: Caller,
    State(api): State<PayApi>,
) -> Result<Json<NetworkMode>, Problem> {
    caller.require_operator()?;
    Ok(Json(
        api.network
            .mode()
            .await
            .map_err(records_unavailable)?
            .into(),
    ))
}

/// The network's records cannot be read or written (pay's database is down): try again.
fn records_unavailable(e: tanda_cardnet::LogUnavailable) -> Problem {
    Problem::unavailable("card_network_unavailable", e.to_string(), 1)
}

/// Sets the simulated card network's latency and whether it is down, for every instance of pay
/// and until set again (a restart keeps it).
///
/// How tests and operators exercise dispatch's circuit breaker.
#[utoipa::path(put, path = "/admin/card-network",
    request_body(content = NetworkMode, example = json!({"latencyMs": 2000, "down": false})),
    responses((status = OK, description = "The network's behaviour now", body = NetworkMode),
        (status = SERVICE_UNAVAILABLE, description = "`card_network_unavailable`: the mode cannot be kept (pay's database); nothing changed, retry")))]
async fn set_network_mode(
    caller: Caller,
    State(api): State<PayApi>,
    Json(mode): Json<NetworkMode>,
) -> Result<Json<NetworkMode>, Problem> {
    caller.require_operator()?;
    if mode.latency_ms.max(mode.answer_delay_ms) > MAX_LATENCY_MS {
        return Err(Problem::bad_request(
            "invalid_latency",
            format!("latencyMs and answerDelayMs must be at most {MAX_LATENCY_MS}"),
        ));
    }
    api.network
        .set_mode(mode.into())
        .await
        .map_err(records_unavailable)?;
    Ok(Json(
        api.network
            .mode()
            .await
            .map_err(records_unavailable)?
            .into(),
    ))
}

// The card network's `NetworkMode` as the document describes it (that crate derives no schema).
/// How the simulated card network behaves.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct NetworkMode {
    /// Latency added to every charge, in milliseconds.
    // The schema takes a literal only: the assertion below keeps it `MAX_LATENCY_MS`.
    #[schema(maximum = 60_000)]
    latency_ms: u64,
    /// Whether every charge fails as unavailable.
    down: bool,
    /// How long the answer takes once the charge is made, in milliseconds: a charge whose
    /// answer is slow (or never arrives, if the caller gives up first).
    #[schema(maximum = 60_000)]
    #[serde(default)]
    answer_delay_ms: u64,
}

const _: () = assert!(
    MAX_LATENCY_MS == 60_000,
    "update NetworkMode's documented maximum"
);

impl From<tanda_cardnet::NetworkMode> for NetworkMode {
    fn from(mode: tanda_cardnet::NetworkMode) -> Self {
        let tanda_cardnet::NetworkMode {
            latency_ms,
            down,
            answer_delay_ms,
        } = mode;
        Self {
            latency_ms,
            down,
            answer_delay_ms,
        }
    }
}

impl From<NetworkMode> for tanda_cardnet::NetworkMode {
    fn from(mode: NetworkMode) -> Self {
        let NetworkMode {
            latency_ms,
            down,
            answer_delay_ms,
        } = mode;
        Self {
            latency_ms,
            down,
            answer_delay_ms,
        }
    }
}
