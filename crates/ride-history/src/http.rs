//! Ride history's HTTP edge: a customer's rides, one ride, and counts by status, read straight
//! from the read model.

use axum::Router;
use axum::extract::State;
use serde::Deserialize;
use tanda_core::auth::{Caller, Role};
use tanda_core::http::{Json, Path, Query};
use tanda_core::id::ClientId;
use tanda_core::{Db, Problem};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{RideHistory, RideStats};
use crate::store;

pub fn router(db: Db) -> Router {
    routes().with_state(db).into()
}

/// The operations `router` serves, documented.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

fn routes() -> OpenApiRouter<Db> {
    OpenApiRouter::new()
        .routes(routes!(list_ride_histories))
        .routes(routes!(ride_stats))
        .routes(routes!(get_ride_history))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ByCustomer {
    /// Whose rides; omitted: the caller's. Only an operator may name another customer (and must
    /// name one, except to count all rides).
    customer_id: Option<String>,
}

/// The caller's rides, newest request first (an operator names the customer).
#[utoipa::path(get, path = "/rideHistories", security(("bearer" = ["customer"])),
    params(ByCustomer),
    responses((status = OK, description = "The rides", body = Vec<RideHistory>)))]
async fn list_ride_histories(
    caller: Caller,
    State(db): State<Db>,
    Query(query): Query<ByCustomer>,
) -> Result<Json<Vec<RideHistory>>, Problem> {
    let named = query.customer_id.as_deref().map(customer_id).transpose()?;
    let customer_id = caller.act_as(Role::Customer, named.as_ref())?;
    Ok(Json(store::by_customer(&db, customer_id.as_str()).await?))
}

fn customer_id(raw: &str) -> Result<ClientId, Problem> {
    ClientId::parse(raw)
        .map_err(|e| Problem::bad_request("invalid_customer_id", format!("customerId {e}")))
}

/// Rides counted by book status.
///
/// `customerId` narrows it to one customer. A customer counts their own; all rides (no
/// `customerId`) are the operator's to count.
#[utoipa::path(get, path = "/rideHistories/stats", security(("bearer" = ["customer"])),
    params(ByCustomer),
    responses((status = OK, description = "The counts", body = RideStats)))]
async fn ride_stats(
    caller: Caller,
    State(db): State<Db>,
    Query(query): Query<ByCustomer>,
) -> Result<Json<RideStats>, Problem> {
    let named = query.customer_id.as_deref().map(customer_id).transpose()?;
    let customer_id = match named {
        None if caller.is_operator() => None,
        named => Some(caller.act_as(Role::Customer, named.as_ref())?),
    };
    let customer_id = customer_id.as_ref().map(ClientId::as_str);
    Ok(Json(store::stats(&db, customer_id).await?))
}

/// One ride, by its booking.
#[utoipa::path(get, path = "/rideHistories/{bookId}", security(("bearer" = ["customer"])),
    params(("bookId" = String, Path)),
    responses((status = OK, description = "The ride", body = RideHistory)))]
async fn get_ride_history(
    caller: Caller,
    State(db): State<Db>,
    Path(book_id): Path<String>,
) -> Result<Json<RideHistory>, Problem> {
    store::by_book(&db, &book_id)
        .await?
        .filter(|ride| caller.may_read(Role::Customer, &ride.customer_id))
        .map(Json)
        .ok_or_else(|| Problem::not_found("ride history", &book_id))
}
