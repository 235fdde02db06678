//! Ride history's HTTP edge: a customer's rides, one ride, and counts by status, read straight
//! from the read model.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;
use tanda_core::auth::{Caller, Role};
use tanda_core::http::{Json, Path, Query};
use tanda_core::id::ClientId;
use tanda_core::{Db, Problem};

use crate::domain::{RideHistory, RideStats};
use crate::store;

pub fn router(db: Db) -> Router {
    Router::new()
        .route("/rideHistories", get(list))
        .route("/rideHistories/stats", get(stats))
        .route("/rideHistories/{book_id}", get(show))
        .with_state(db)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ByCustomer {
    customer_id: Option<String>,
}

/// The caller's rides (an operator names the customer).
async fn list(
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

/// Rides counted by book status; `customerId` narrows it to one customer. A customer counts
/// their own; all rides are the operator's to count.
async fn stats(
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

async fn show(
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
