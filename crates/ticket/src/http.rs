//! The tickets' HTTP API (API.md "Flight": tickets). Read-only: tickets are issued and voided by
//! events alone.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tanda_core::Problem;
use tanda_core::auth::{Caller, Role};
use tanda_core::clock::rfc3339;
use tanda_core::db::Db;
use tanda_core::http::{Path, Query};
use tanda_core::id::ClientId;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Error;
use crate::domain::Ticket;
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
        .routes(routes!(list_tickets))
        .routes(routes!(get_ticket))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Whose tickets; omitted: the caller's. Only an operator may name another (and must).
    user_id: Option<String>,
}

/// The caller's tickets (an operator names the traveller).
#[utoipa::path(get, path = "/tickets", security(("bearer" = ["customer"])), params(ListQuery),
    responses((status = OK, description = "The tickets", body = Vec<TicketView>)))]
async fn list_tickets(
    caller: Caller,
    State(db): State<Db>,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    let named = query
        .user_id
        .map(|raw| {
            ClientId::parse(&raw).map_err(|e| Error::Invalid {
                code: "invalid_user_id",
                detail: format!("userId {e}"),
            })
        })
        .transpose()?;
    let user = caller.act_as(Role::Customer, named.as_ref())?;
    let tickets = store::tickets_of(&db, &user).await?;
    Ok(axum::Json(tickets.iter().map(TicketView::from).collect::<Vec<_>>()).into_response())
}

/// One of the caller's tickets.
#[utoipa::path(get, path = "/tickets/{ticketId}", security(("bearer" = ["customer"])),
    params(("ticketId" = String, Path)),
    responses((status = OK, description = "The ticket", body = TicketView)))]
async fn get_ticket(
    caller: Caller,
    State(db): State<Db>,
    Path(ticket_id): Path<String>,
) -> Result<Response, Problem> {
    match store::ticket(&db, &ticket_id).await? {
        Some(ticket) if caller.may_read(Role::Customer, ticket.user_id.as_str()) => {
            Ok(axum::Json(TicketView::from(&ticket)).into_response())
        }
        _ => Err(Error::NotFound(ticket_id).into()),
    }
}

/// A ticket for one paid reservation's seat.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TicketView<'a> {
    ticket_id: &'a str,
    reservation_id: &'a str,
    flight_id: &'a str,
    user_id: &'a str,
    /// `ISSUED`, or `VOID` once its reservation was cancelled.
    #[schema(example = "ISSUED")]
    status: &'static str,
    #[schema(format = DateTime)]
    issued_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    voided_at: Option<String>,
}

impl<'a> From<&'a Ticket> for TicketView<'a> {
    fn from(t: &'a Ticket) -> Self {
        Self {
            ticket_id: &t.ticket_id,
            reservation_id: &t.reservation_id,
            flight_id: t.flight_id.as_str(),
            user_id: t.user_id.as_str(),
            status: t.status().as_str(),
            issued_at: rfc3339(t.issued_at),
            voided_at: t.voided_at.map(rfc3339),
        }
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { code, detail } => Problem::bad_request(code, detail),
            Error::NotFound(id) => Problem::not_found("ticket", &id),
            Error::BadEvent(_) => Problem::internal(&e),
        }
    }
}
