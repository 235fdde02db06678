//! The tickets' HTTP API (API.md "Flight": tickets). Read-only: tickets are issued and voided by
//! events alone.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tanda_core::Problem;
use tanda_core::auth::{Caller, Role};
use tanda_core::clock::rfc3339;
use tanda_core::db::Db;
use tanda_core::http::{Path, Query};
use tanda_core::id::ClientId;

use crate::Error;
use crate::domain::Ticket;
use crate::store;

pub fn router(db: Db) -> Router {
    Router::new()
        .route("/tickets", get(list_tickets))
        .route("/tickets/{ticket_id}", get(get_ticket))
        .with_state(db)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    user_id: Option<String>,
}

/// The caller's tickets (an operator names the traveller).
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

/// API.md's Ticket.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TicketView<'a> {
    ticket_id: &'a str,
    reservation_id: &'a str,
    flight_id: &'a str,
    user_id: &'a str,
    status: &'static str,
    issued_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
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
