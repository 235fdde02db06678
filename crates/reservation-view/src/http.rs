//! Reservation-view's HTTP edge: a user's reservations, one reservation, and counts by status,
//! read straight from the read model.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;
use tanda_core::auth::{Caller, Role};
use tanda_core::http::{Json, Path, Query};
use tanda_core::id::ClientId;
use tanda_core::{Db, Problem};

use crate::domain::{ReservationStats, ReservationView};
use crate::store;

pub fn router(db: Db) -> Router {
    Router::new()
        .route("/reservationViews", get(list))
        .route("/reservationViews/stats", get(stats))
        .route("/reservationViews/{reservation_id}", get(show))
        .with_state(db)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ByUser {
    user_id: Option<String>,
}

/// The caller's reservations (an operator names the traveller).
async fn list(
    caller: Caller,
    State(db): State<Db>,
    Query(query): Query<ByUser>,
) -> Result<Json<Vec<ReservationView>>, Problem> {
    let named = query.user_id.as_deref().map(user_id).transpose()?;
    let user_id = caller.act_as(Role::Customer, named.as_ref())?;
    Ok(Json(store::by_user(&db, user_id.as_str()).await?))
}

fn user_id(raw: &str) -> Result<ClientId, Problem> {
    ClientId::parse(raw).map_err(|e| Problem::bad_request("invalid_user_id", format!("userId {e}")))
}

/// Reservations counted by status; `userId` narrows it to one user. A traveller counts their
/// own; all reservations are the operator's to count.
async fn stats(
    caller: Caller,
    State(db): State<Db>,
    Query(query): Query<ByUser>,
) -> Result<Json<ReservationStats>, Problem> {
    let named = query.user_id.as_deref().map(user_id).transpose()?;
    let user_id = match named {
        None if caller.is_operator() => None,
        named => Some(caller.act_as(Role::Customer, named.as_ref())?),
    };
    let user_id = user_id.as_ref().map(ClientId::as_str);
    Ok(Json(store::stats(&db, user_id).await?))
}

async fn show(
    caller: Caller,
    State(db): State<Db>,
    Path(reservation_id): Path<String>,
) -> Result<Json<ReservationView>, Problem> {
    store::by_reservation(&db, &reservation_id)
        .await?
        .filter(|view| caller.may_read(Role::Customer, &view.user_id))
        .map(Json)
        .ok_or_else(|| Problem::not_found("reservation view", &reservation_id))
}
