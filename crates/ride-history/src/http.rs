//! Ride history's HTTP edge: a customer's rides, one ride, and counts by status, read straight
//! from the read model.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;
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

async fn list(
    State(db): State<Db>,
    Query(query): Query<ByCustomer>,
) -> Result<Json<Vec<RideHistory>>, Problem> {
    let raw = query.customer_id.ok_or_else(|| {
        Problem::bad_request(
            "missing_customer_id",
            "the customerId query parameter is required",
        )
    })?;
    let customer_id = customer_id(&raw)?;
    Ok(Json(store::by_customer(&db, customer_id.as_str()).await?))
}

fn customer_id(raw: &str) -> Result<ClientId, Problem> {
    ClientId::parse(raw)
        .map_err(|e| Problem::bad_request("invalid_customer_id", format!("customerId {e}")))
}

/// Rides counted by book status; `customerId` narrows it to one customer.
async fn stats(
    State(db): State<Db>,
    Query(query): Query<ByCustomer>,
) -> Result<Json<RideStats>, Problem> {
    let customer_id = query.customer_id.as_deref().map(customer_id).transpose()?;
    let customer_id = customer_id.as_ref().map(ClientId::as_str);
    Ok(Json(store::stats(&db, customer_id).await?))
}

async fn show(
    State(db): State<Db>,
    Path(book_id): Path<String>,
) -> Result<Json<RideHistory>, Problem> {
    store::by_book(&db, &book_id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found("ride history", &book_id))
}
