//! Reservation-view's HTTP edge: a user's reservations, one reservation, and counts by status,
//! read straight from the read model.

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

use crate::domain::{ReservationStats, ReservationView};
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
        .routes(routes!(list_reservation_views))
        .routes(routes!(reservation_view_stats))
        .routes(routes!(get_reservation_view))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ByUser {
    /// Whose reservations; omitted: the caller's. Only an operator may name another.
    user_id: Option<String>,
}

/// The caller's reservations, newest first (an operator names the traveller).
#[utoipa::path(get, path = "/reservationViews", security(("bearer" = ["customer"])),
    params(ByUser),
    responses((status = OK, description = "The reservations", body = Vec<ReservationView>)))]
async fn list_reservation_views(
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

/// Reservations counted by status.
///
/// `userId` narrows it to one user. A traveller counts their own; all reservations are the
/// operator's to count.
#[utoipa::path(get, path = "/reservationViews/stats", security(("bearer" = ["customer"])),
    params(ByUser),
    responses((status = OK, description = "The counts", body = ReservationStats)))]
async fn reservation_view_stats(
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

/// One of the caller's reservations.
#[utoipa::path(get, path = "/reservationViews/{reservationId}",
    security(("bearer" = ["customer"])), params(("reservationId" = String, Path)),
    responses((status = OK, description = "The reservation", body = ReservationView)))]
async fn get_reservation_view(
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
