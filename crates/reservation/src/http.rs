//! The user's HTTP API (API.md "Flight": flights and reservations): requests are parsed into
//! domain types here, so nothing past this file sees a raw string.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tanda_core::Problem;
use tanda_core::auth::{Caller, Role};
use tanda_core::clock::{parse_rfc3339, rfc3339};
use tanda_core::db::Db;
use tanda_core::http::{IdempotencyKey, Json, Path, Query};
use tanda_core::id::{ClientId, InvalidClientId, new_id};

use crate::Error;
use crate::domain::{Command, Flight, InvalidField, PlaceName, Price, Reservation, Seats};
use crate::store::{self, Created, Idempotency, NewReservation};

#[derive(Clone)]
struct App {
    db: Db,
    payment_pending_after: Duration,
}

pub fn router(db: Db, payment_pending_after: Duration) -> Router {
    let app = App {
        db,
        payment_pending_after,
    };
    Router::new()
        .route("/flights", post(create_flight).get(list_flights))
        .route("/flights/{flight_id}", get(get_flight))
        .route("/reservations", post(reserve).get(list_reservations))
        .route("/reservations/{reservation_id}", get(get_reservation))
        .route("/reservations/{reservation_id}/cancel", post(cancel))
        .with_state(app)
}

/// `POST /flights`. Every field is any JSON here, so that a missing or mistyped one gets its own
/// problem.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FlightRequest {
    flight_id: Option<Value>,
    from: Option<Value>,
    to: Option<Value>,
    departs_at: Option<Value>,
    seats: Option<Value>,
    price: Option<Value>,
}

async fn create_flight(
    caller: Caller,
    State(app): State<App>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<FlightRequest>,
) -> Result<Response, Problem> {
    caller.require_operator()?;
    let flight = parse_flight(body)?;
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

async fn list_flights(State(app): State<App>) -> Result<Response, Problem> {
    let flights = store::list_flights(&app.db).await?;
    Ok(axum::Json(flights.iter().map(FlightView::from).collect::<Vec<_>>()).into_response())
}

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

/// `POST /reservations`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReservationRequest {
    user_id: Option<Value>,
    flight_id: Option<Value>,
}

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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    user_id: Option<String>,
}

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

async fn cancel(
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
fn parse_flight(body: FlightRequest) -> Result<Flight, Error> {
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
    Flight::schedule(id, from, to, departs_at, seats, price)
        .map_err(|e| invalid("same_from_and_to", "to", e))
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

/// API.md's Flight.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FlightView<'a> {
    flight_id: &'a str,
    from: &'a str,
    to: &'a str,
    departs_at: String,
    seats: i64,
    seats_left: i64,
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

/// API.md's Reservation, with the flight's route and departure.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReservationView<'a> {
    reservation_id: &'a str,
    user_id: &'a str,
    flight_id: &'a str,
    from: &'a str,
    to: &'a str,
    departs_at: String,
    price: i64,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ticket_id: Option<&'a str>,
    created_at: String,
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
            Error::Rejected(r) => Problem::conflict(r.code(), detail),
            Error::Inconsistent(_) => Problem::internal(&e),
            Error::Db(e) => e.into(),
        }
    }
}
