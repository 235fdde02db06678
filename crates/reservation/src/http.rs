//! The user's HTTP API (API.md "Flight": flights and reservations): requests are parsed into
//! domain types here, so nothing past this file sees a raw string.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tanda_core::auth::{Caller, Role};
use tanda_core::clock::{parse_rfc3339, rfc3339};
use tanda_core::db::Db;
use tanda_core::http::{IdempotencyKey, Json, Path, Query};
use tanda_core::id::{ClientId, InvalidClientId, new_id};
use tanda_core::{Problem, Timestamp};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Error;
use crate::domain::{Command, Flight, InvalidField, PlaceName, Price, Reservation, Seats};
use crate::store::{self, Created, Idempotency, NewReservation};

#[derive(Clone)]
struct App {
    db: Db,
    payment_pending_after: Duration,
    payment_backlog_limit: u64,
}

pub fn router(db: Db, config: &crate::Config) -> Router {
    let app = App {
        db,
        payment_pending_after: config.payment_pending_after,
        payment_backlog_limit: config.payment_backlog_limit,
    };
    routes().with_state(app).into()
}

/// The operations `router` serves, documented.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(create_flight, list_flights))
        .routes(routes!(get_flight))
        .routes(routes!(reserve, list_reservations))
        .routes(routes!(get_reservation))
        .routes(routes!(cancel_reservation))
}

/// A flight to schedule.
// Every field is any JSON here, so that a missing or mistyped one gets its own problem; the
// document says which are required and of what type.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct FlightRequest {
    /// The flight's id, named by the client (1–64 letters, digits, `-`, `_`).
    #[schema(required = true, value_type = String, example = "KE1101")]
    flight_id: Option<Value>,
    /// Where it leaves from (1–100 characters, not blank).
    #[schema(required = true, value_type = String, example = "Seoul/Gimpo (GMP)")]
    from: Option<Value>,
    /// Where it goes (1–100 characters, not blank; not the same place as `from`).
    #[schema(required = true, value_type = String, example = "Jeju (CJU)")]
    to: Option<Value>,
    /// When it departs, an RFC 3339 UTC time.
    #[schema(required = true, value_type = String, format = DateTime)]
    departs_at: Option<Value>,
    /// Its capacity.
    #[schema(required = true, value_type = i64, minimum = 1, maximum = 1000)]
    seats: Option<Value>,
    /// The price of a seat in won; omitted: 100.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 10_000_000, default = 100)]
    price: Option<Value>,
}

/// Schedules a flight, every seat free.
#[utoipa::path(post, path = "/flights",
    params(("Idempotency-Key" = Option<String>, Header,
        description = "The same key again returns the first answer and schedules nothing new")),
    request_body(content = FlightRequest, example = json!({
        "flightId": "KE1101", "from": "Seoul/Gimpo (GMP)", "to": "Jeju (CJU)",
        "departsAt": "2030-05-01T09:30:00Z", "seats": 180, "price": 85000
    })),
    responses(
        (status = CREATED, description = "Scheduled (or the first answer to this Idempotency-Key)",
            body = FlightView),
        (status = CONFLICT, description = "`flight_exists`: a flight with this id exists",
            body = Problem, content_type = "application/problem+json"),
        (status = UNPROCESSABLE_ENTITY,
            description = "`idempotency_key_reused`: this key came with a different request",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_flight(
    caller: Caller,
    State(app): State<App>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<FlightRequest>,
) -> Result<Response, Problem> {
    caller.require_operator()?;
    let flight = parse_flight(body, app.db.now())?;
    let view = flight_json(&flight);
    // The key stands for the flight as parsed; its first answer showed every seat free.
    let idempotency = key.as_deref().map(|key| Idempotency {
        key,
        request: &view,
    });
    match store::create_flight(&app.db, &flight, idempotency, &view).await? {
        Created::New(()) => Ok((StatusCode::CREATED, axum::Json(view)).into_response()),
        Created::Replayed(first) => Ok(first.into_response()),
    }
}

/// Every flight, by departure.
#[utoipa::path(get, path = "/flights", security(()),
    responses((status = OK, description = "The flights", body = Vec<FlightView>)))]
async fn list_flights(State(app): State<App>) -> Result<Response, Problem> {
    let flights = store::list_flights(&app.db).await?;
    Ok(axum::Json(flights.iter().map(FlightView::from).collect::<Vec<_>>()).into_response())
}

/// One flight.
#[utoipa::path(get, path = "/flights/{flightId}", security(()),
    params(("flightId" = String, Path)),
    responses((status = OK, description = "The flight", body = FlightView)))]
async fn get_flight(
    State(app): State<App>,
    Path(flight_id): Path<String>,
) -> Result<Response, Problem> {
    match store::find_flight(&app.db, &flight_id).await? {
        Some(flight) => Ok(axum::Json(FlightView::from(&flight)).into_response()),
        None => Err(Error::NotFound {
            what: "flight",
            id: flight_id,
        }
        .into()),
    }
}

/// A seat to reserve.
// Every field is any JSON here, so that a missing or mistyped one gets its own problem.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ReservationRequest {
    /// The traveller; omitted: the caller. Only an operator may name another (and must).
    #[schema(value_type = Option<String>)]
    user_id: Option<Value>,
    #[schema(required = true, value_type = String, example = "KE1101")]
    flight_id: Option<Value>,
}

/// Reserves a seat: it is held now, and payment is asked to debit the traveller's wallet.
#[utoipa::path(post, path = "/reservations",
    security(("bearer" = ["customer"])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "The same key again returns the first answer and reserves nothing new")),
    request_body(content = ReservationRequest, example = json!({"flightId": "KE1101"})),
    responses(
        (status = CREATED,
            description = "`REQUESTED` (or the first answer to this Idempotency-Key)",
            body = ReservationView),
        (status = NOT_FOUND, description = "No such flight", body = Problem,
            content_type = "application/problem+json"),
        (status = CONFLICT, description = "`sold_out`: the flight has no seat left; \
            `flight_departed`: it has left", body = Problem,
            content_type = "application/problem+json"),
        (status = UNPROCESSABLE_ENTITY,
            description = "`idempotency_key_reused`: this key came with a different request",
            body = Problem, content_type = "application/problem+json"),
        (status = SERVICE_UNAVAILABLE, description = "`payment_overloaded`: payment is behind \
            with its answers; try again after `Retry-After`", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn reserve(
    caller: Caller,
    State(app): State<App>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<ReservationRequest>,
) -> Result<Response, Problem> {
    let named = optional_client_id(body.user_id, "userId", "invalid_user_id")?;
    let user_id = caller.act_as(Role::Customer, named.as_ref())?;
    let flight_id = client_id(body.flight_id, "flightId", "invalid_flight_id")?;
    let fingerprint = json!({"userId": user_id.as_str(), "flightId": flight_id.as_str()});
    let idempotency = key.as_deref().map(|key| Idempotency {
        key,
        request: &fingerprint,
    });
    refuse_while_payment_is_overloaded(&app).await?;
    let new = NewReservation {
        id: new_id(),
        user_id,
        flight_id,
    };
    let created = store::reserve(
        &app.db,
        new,
        app.payment_pending_after,
        idempotency,
        reservation_json,
    )
    .await?;
    match created {
        Created::New(reservation) => Ok((
            StatusCode::CREATED,
            axum::Json(ReservationView::from(&reservation)),
        )
            .into_response()),
        Created::Replayed(first) => Ok(first.into_response()),
    }
}

/// "When payment is overloaded, stop taking reservations for a moment and ask to try later":
/// below the limit a reservation is taken however slow or down payment is (it waits, `PENDING`);
/// at it, the traveller is asked to come back once payment has had time to answer.
async fn refuse_while_payment_is_overloaded(app: &App) -> Result<(), Problem> {
    if app.payment_backlog_limit == 0 {
        return Ok(());
    }
    let waiting = store::awaiting_payment(&app.db).await?;
    if waiting < i64::try_from(app.payment_backlog_limit).unwrap_or(i64::MAX) {
        return Ok(());
    }
    Err(Problem::unavailable(
        "payment_overloaded",
        "payment is behind with its answers; please try again in a moment",
        app.payment_pending_after.as_secs().max(1),
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Whose reservations; omitted: the caller's. Only an operator may name another (and must).
    user_id: Option<String>,
}

/// A traveller's reservations.
#[utoipa::path(get, path = "/reservations", security(("bearer" = ["customer"])),
    params(ListQuery),
    responses((status = OK, description = "The reservations", body = Vec<ReservationView>)))]
async fn list_reservations(
    caller: Caller,
    State(app): State<App>,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    let named = optional_client_id(
        query.user_id.map(Value::String),
        "userId",
        "invalid_user_id",
    )?;
    let user = caller.act_as(Role::Customer, named.as_ref())?;
    let reservations = store::list_for_user(&app.db, &user).await?;
    Ok(axum::Json(
        reservations
            .iter()
            .map(ReservationView::from)
            .collect::<Vec<_>>(),
    )
    .into_response())
}

/// One of the caller's reservations.
#[utoipa::path(get, path = "/reservations/{reservationId}", security(("bearer" = ["customer"])),
    params(("reservationId" = String, Path)),
    responses((status = OK, description = "The reservation", body = ReservationView)))]
async fn get_reservation(
    caller: Caller,
    State(app): State<App>,
    Path(reservation_id): Path<String>,
) -> Result<Response, Problem> {
    let reservation = owned(&app, &caller, &reservation_id).await?;
    Ok(axum::Json(ReservationView::from(&reservation)).into_response())
}

/// The reservation, if it is the caller's to see (someone else's is as good as unknown: 404).
async fn owned(app: &App, caller: &Caller, id: &str) -> Result<Reservation, Problem> {
    match store::find(&app.db, id).await? {
        Some(r) if caller.may_read(Role::Customer, r.user_id.as_str()) => Ok(r),
        _ => Err(reservation_not_found(id.to_owned()).into()),
    }
}

/// Asks to cancel: the debit is refunded, the ticket voided and the seat released.
#[utoipa::path(post, path = "/reservations/{reservationId}/cancel",
    security(("bearer" = ["customer"])),
    params(("reservationId" = String, Path)),
    responses(
        (status = ACCEPTED, description = "`CANCEL_REQUESTED`", body = ReservationView),
        (status = CONFLICT, description = "`already_cancelled`, `payment_failed`, \
            `cancel_pending` or `flight_departed`: it can no longer be cancelled", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn cancel_reservation(
    caller: Caller,
    State(app): State<App>,
    Path(reservation_id): Path<String>,
) -> Result<Response, Problem> {
    owned(&app, &caller, &reservation_id).await?;
    let reservation = Db::retry_on_conflict(|| async {
        let mut uow = app.db.begin().await?;
        let reservation = store::execute(&mut uow, &reservation_id, Command::Cancel, None).await?;
        uow.commit().await?;
        Ok::<_, Error>(reservation)
    })
    .await?
    .ok_or_else(|| reservation_not_found(reservation_id.clone()))?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ReservationView::from(&reservation)),
    )
        .into_response())
}

fn reservation_not_found(id: String) -> Error {
    Error::NotFound {
        what: "reservation",
        id,
    }
}

/// Parses a flight request, reporting the first invalid field.
fn parse_flight(body: FlightRequest, now: Timestamp) -> Result<Flight, Error> {
    let id = client_id(body.flight_id, "flightId", "invalid_flight_id")?;
    let from = required(body.from, "from")?;
    let from = place(&from).map_err(|e| invalid("invalid_from", "from", e))?;
    let to = required(body.to, "to")?;
    let to = place(&to).map_err(|e| invalid("invalid_to", "to", e))?;
    let departs_at = required(body.departs_at, "departsAt")?;
    let departs_at = departs_at
        .as_str()
        .and_then(parse_rfc3339)
        .ok_or_else(|| Error::Invalid {
            code: "invalid_departs_at",
            detail: "departsAt must be an RFC 3339 UTC time, e.g. 2026-05-01T09:30:00Z".to_owned(),
        })?;
    let seats = required(body.seats, "seats")?;
    let seats = whole(&seats, InvalidField::Seats)
        .and_then(Seats::parse)
        .map_err(|e| invalid("invalid_seats", "seats", e))?;
    let price = match body.price {
        Some(won) => whole(&won, InvalidField::Price)
            .and_then(Price::parse)
            .map_err(|e| invalid("invalid_price", "price", e))?,
        None => Price::DEFAULT,
    };
    Flight::schedule(id, from, to, departs_at, seats, price, now).map_err(|e| match e {
        InvalidField::Departed => invalid("departed", "departsAt", e),
        e => invalid("same_from_and_to", "to", e),
    })
}

fn place(value: &Value) -> Result<PlaceName, InvalidField> {
    value
        .as_str()
        .ok_or(InvalidField::PlaceName)
        .and_then(PlaceName::parse)
}

/// A JSON integer, or `otherwise`.
fn whole(value: &Value, otherwise: InvalidField) -> Result<i64, InvalidField> {
    value.as_i64().ok_or(otherwise)
}

fn client_id(value: Option<Value>, field: &str, code: &'static str) -> Result<ClientId, Error> {
    let value = required(value, field)?;
    value
        .as_str()
        .ok_or(InvalidClientId)
        .and_then(ClientId::parse)
        .map_err(|e| invalid(code, field, e))
}

fn optional_client_id(
    value: Option<Value>,
    field: &str,
    code: &'static str,
) -> Result<Option<ClientId>, Error> {
    value.map(|v| client_id(Some(v), field, code)).transpose()
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Error> {
    value.ok_or_else(|| Error::Invalid {
        code: "missing_field",
        detail: format!("{field} is required"),
    })
}

fn invalid(code: &'static str, field: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid {
        code,
        detail: format!("{field} {e}"),
    }
}

/// A flight, with the seats still on sale.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct FlightView<'a> {
    flight_id: &'a str,
    from: &'a str,
    to: &'a str,
    #[schema(format = DateTime)]
    departs_at: String,
    seats: i64,
    seats_left: i64,
    /// The price of a seat in won.
    price: i64,
}

impl<'a> From<&'a Flight> for FlightView<'a> {
    fn from(f: &'a Flight) -> Self {
        Self {
            flight_id: f.id.as_str(),
            from: f.from.as_str(),
            to: f.to.as_str(),
            departs_at: rfc3339(f.departs_at),
            seats: f.seats.get(),
            seats_left: f.seats_left,
            price: f.price.won(),
        }
    }
}

fn flight_json(flight: &Flight) -> Value {
    serde_json::to_value(FlightView::from(flight)).expect("a flight view is plain JSON")
}

/// A reservation of one seat, with the flight's route and departure.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
// `ReservationView` is reservation-view's list item, in the same document.
#[schema(as = Reservation)]
struct ReservationView<'a> {
    reservation_id: &'a str,
    user_id: &'a str,
    flight_id: &'a str,
    from: &'a str,
    to: &'a str,
    #[schema(format = DateTime)]
    departs_at: String,
    /// The flight's price in won when the reservation was made.
    price: i64,
    /// `REQUESTED`, `PENDING` (payment is slow), `PAID`, `CONFIRMED` (ticket issued),
    /// `PAYMENT_FAILED`, `CANCEL_REQUESTED` or `CANCELLED`.
    #[schema(example = "REQUESTED")]
    status: &'static str,
    /// Once a ticket was issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    ticket_id: Option<&'a str>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl<'a> From<&'a Reservation> for ReservationView<'a> {
    fn from(r: &'a Reservation) -> Self {
        Self {
            reservation_id: &r.id,
            user_id: r.user_id.as_str(),
            flight_id: r.flight_id.as_str(),
            from: r.from.as_str(),
            to: r.to.as_str(),
            departs_at: rfc3339(r.departs_at),
            price: r.price.won(),
            status: r.status.as_str(),
            ticket_id: r.ticket_id.as_deref(),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

fn reservation_json(reservation: &Reservation) -> Value {
    serde_json::to_value(ReservationView::from(reservation))
        .expect("a reservation view is plain JSON")
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        let detail = e.to_string();
        match e {
            Error::Invalid { code, .. } => Problem::bad_request(code, detail),
            Error::NotFound { what, id } => Problem::not_found(what, &id),
            Error::FlightExists(_) => Problem::conflict("flight_exists", detail),
            Error::SoldOut(_) => Problem::conflict("sold_out", detail),
            Error::FlightDeparted(_) => Problem::conflict("flight_departed", detail),
            Error::Rejected(r) => Problem::conflict(r.code(), detail),
            Error::Inconsistent(_) => Problem::internal(&e),
            Error::Db(e) => e.into(),
        }
    }
}
