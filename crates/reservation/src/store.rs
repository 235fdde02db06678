//! The reservation service's SQL: flights and their seats, and reservations (loaded, decided on
//! and saved with the events, timers and seat changes they cause, in one unit of work).
//! Runs on SQLite and PostgreSQL alike.
//!
//! Seats are never counted in memory: a reservation takes one with a conditional
//! `UPDATE ... WHERE seats_left > 0` in the unit of work that stores it, and gives it back in the
//! unit of work that ends it, so seats held always equal active reservations.

use std::time::Duration;

use serde_json::Value;
use tanda_catalog::flight::{
    ReservationCancelRequested, ReservationRequested, ReservationStatusChanged,
};
use tanda_core::clock::rfc3339;
use tanda_core::db::Tx;
use tanda_core::db::{Migration, StoredResponse};
use tanda_core::id::ClientId;
use tanda_core::sql::{Executor, Row, query, query_scalar};
use tanda_core::{Db, DbError, Envelope, Timestamp, Uow};

use crate::Error;
use crate::domain::{
    self, Change, Command, Flight, PlaceName, Price, Reservation, ReservationEvent, Seats, Status,
};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "flights and reservations",
        // The CHECK is the last line of defence for the seat invariant; the conditional updates
        // below never reach it.
        sql: "CREATE TABLE flights (
            flight_id VARCHAR(64) PRIMARY KEY,
            origin VARCHAR(100) NOT NULL,
            destination VARCHAR(100) NOT NULL,
            departs_at BIGINT NOT NULL,
            seats BIGINT NOT NULL,
            seats_left BIGINT NOT NULL,
            price BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            CHECK (seats_left >= 0 AND seats_left <= seats));
        CREATE INDEX flights_by_departure ON flights (departs_at, flight_id);
        CREATE TABLE reservations (
            id VARCHAR(64) PRIMARY KEY,
            user_id VARCHAR(64) NOT NULL,
            flight_id VARCHAR(64) NOT NULL,
            origin VARCHAR(100) NOT NULL,
            destination VARCHAR(100) NOT NULL,
            departs_at BIGINT NOT NULL,
            price BIGINT NOT NULL,
            status VARCHAR(32) NOT NULL,
            ticket_id VARCHAR(200),
            refunded BIGINT,
            ticket_voided INTEGER NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            version BIGINT NOT NULL);
        CREATE INDEX reservations_by_user ON reservations (user_id, created_at)",
    },
    Migration {
        version: 2,
        name: "reservations by status",
        sql: "CREATE INDEX reservations_by_status ON reservations (status)",
    },
];

/// How many reservations wait for payment's answer: payment's backlog, as reservation sees it
/// from its own side, with no call to payment.
pub async fn awaiting_payment(db: &Db) -> Result<i64, DbError> {
    query_scalar::<i64>("SELECT COUNT(*) FROM reservations WHERE status IN ($1, $2)")
        .bind(Status::Requested.as_str())
        .bind(Status::Pending.as_str())
        .fetch_one(db.reader())
        .await
}

/// The timer that shows a reservation `PENDING` when payment is slow; keyed by reservation id.
pub const PENDING_TIMER: &str = "reservation.pending";

tanda_core::timers! {
    /// Reservation's timers.
    pub enum ReservationTimer {
        /// Payment has not answered in time: the reservation shows `PENDING`.
        Pending(PENDING_TIMER) { reservation_id: String },
    }
}

macro_rules! flight_columns {
    () => {
        "flight_id, origin, destination, departs_at, seats, seats_left, price"
    };
}

macro_rules! reservation_columns {
    () => {
        "id, user_id, flight_id, origin, destination, departs_at, price, status, ticket_id,
         refunded, ticket_voided, created_at, updated_at, version"
    };
}

/// A creating request's Idempotency-Key and the request it names.
pub struct Idempotency<'a> {
    pub key: &'a str,
    pub request: &'a Value,
}

pub enum Created<T> {
    New(T),
    /// The key was used before: its first response, and nothing new was stored.
    Replayed(StoredResponse),
}

/// Stores a new flight; `response` is kept for the idempotency key. A flight id already taken
/// (without a replayed key) is `FlightExists`.
pub async fn create_flight(
    db: &Db,
    flight: &Flight,
    idempotency: Option<Idempotency<'_>>,
    response: &Value,
) -> Result<Created<()>, Error> {
    const SCOPE: &str = "POST /flights";
    let mut uow = db.begin().await?;
    if let Some(i) = &idempotency
        && let Some(first) = uow.idempotent_response(SCOPE, i.key, i.request).await?
    {
        return Ok(Created::Replayed(first));
    }
    let done = query(
        "INSERT INTO flights (flight_id, origin, destination, departs_at, seats, seats_left, price, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (flight_id) DO NOTHING",
    )
    .bind(flight.id.as_str())
    .bind(flight.from.as_str())
    .bind(flight.to.as_str())
    .bind(flight.departs_at)
    .bind(flight.seats.get())
    .bind(flight.seats_left)
    .bind(flight.price.won())
    .bind(uow.now())
    .execute(uow.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::FlightExists(flight.id.to_string()));
    }
    if let Some(i) = idempotency {
        uow.save_idempotent_response(SCOPE, i.key, i.request, 201, response)
            .await?;
    }
    uow.commit().await?;
    Ok(Created::New(()))
}

pub async fn find_flight(db: &Db, flight_id: &str) -> Result<Option<Flight>, DbError> {
    fetch_flight(db.reader(), flight_id).await
}

/// Every flight, by departure.
pub async fn list_flights(db: &Db) -> Result<Vec<Flight>, DbError> {
    let rows = query(concat!(
        "SELECT ",
        flight_columns!(),
        " FROM flights ORDER BY departs_at, flight_id"
    ))
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(flight_from_row).collect::<Result<_, _>>()
}

/// A reservation request, parsed at the edge.
pub struct NewReservation {
    pub id: String,
    pub user_id: ClientId,
    pub flight_id: ClientId,
}

/// Holds a seat and stores the reservation holding it, publishes `ReservationRequested` and its
/// first status, and sets the timer that shows it `PENDING` if payment is slow — all or nothing.
/// `respond` renders the response kept for the idempotency key.
pub async fn reserve(
    db: &Db,
    new: NewReservation,
    pending_after: Duration,
    idempotency: Option<Idempotency<'_>>,
    respond: fn(&Reservation) -> Value,
) -> Result<Created<Reservation>, Error> {
    const SCOPE: &str = "POST /reservations";
    let mut uow = db.begin().await?;
    if let Some(i) = &idempotency
        && let Some(first) = uow.idempotent_response(SCOPE, i.key, i.request).await?
    {
        return Ok(Created::Replayed(first));
    }
    let flight = fetch_flight(uow.conn(), new.flight_id.as_str())
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "flight",
            id: new.flight_id.to_string(),
        })?;
    if flight.has_departed(uow.now()) {
        return Err(Error::FlightDeparted(flight.id.to_string()));
    }
    let held = query(
        "UPDATE flights SET seats_left = seats_left - 1 WHERE flight_id = $1 AND seats_left > 0",
    )
    .bind(flight.id.as_str())
    .execute(uow.conn())
    .await?;
    if held.rows_affected() == 0 {
        return Err(Error::SoldOut(flight.id.to_string()));
    }
    let now = uow.now();
    let reservation = Reservation::request(new.id, new.user_id, &flight, now);
    insert(uow.conn(), &reservation).await?;
    let requested = ReservationRequested {
        reservation_id: reservation.id.clone(),
        user_id: reservation.user_id.to_string(),
        flight_id: reservation.flight_id.to_string(),
        price: reservation.price.won(),
        from: reservation.from.as_str().to_owned(),
        to: reservation.to.as_str().to_owned(),
        departs_at: rfc3339(reservation.departs_at),
    };
    uow.publish(&Envelope::new(&requested, &reservation.id, None, now))
        .await?;
    uow.publish(&status_changed(&reservation, None, now))
        .await?;
    let fire_at = now.saturating_add(i64::try_from(pending_after.as_millis()).unwrap_or(i64::MAX));
    let pending = ReservationTimer::Pending {
        reservation_id: reservation.id.clone(),
    };
    uow.set_timer(&pending, fire_at).await?;
    if let Some(i) = idempotency {
        uow.save_idempotent_response(SCOPE, i.key, i.request, 201, &respond(&reservation))
            .await?;
    }
    uow.commit().await?;
    Ok(Created::New(reservation))
}

/// Runs `command` on the stored reservation inside `uow`: reads the current state, decides, and
/// saves the outcome with the events it publishes, the seat it releases and the timer it no
/// longer needs (`cause` is the event being reacted to, if any). `None` if there is no such
/// reservation.
pub async fn execute(
    uow: &mut Uow,
    reservation_id: &str,
    command: Command,
    cause: Option<&Envelope>,
) -> Result<Option<Reservation>, Error> {
    let Some(mut reservation) = fetch(uow.conn(), reservation_id).await? else {
        return Ok(None);
    };
    let now = uow.now();
    let events = domain::decide(&reservation, command, now)?;
    if events.is_empty() {
        return Ok(Some(reservation));
    }
    let before = reservation.status;
    for event in &events {
        domain::apply(&mut reservation, event);
    }
    update(uow.conn(), &reservation).await?;
    reservation.version += 1;
    for event in &events {
        effect(uow, &reservation, event, cause).await?;
    }
    if before == Status::Requested && reservation.status != Status::Requested {
        uow.cancel_timer(PENDING_TIMER, &reservation.id).await?;
    }
    if reservation.status != before {
        uow.publish(&status_changed(&reservation, cause, now))
            .await?;
    }
    Ok(Some(reservation))
}

/// Outside a unit of work: for `GET`s.
pub async fn find(db: &Db, reservation_id: &str) -> Result<Option<Reservation>, DbError> {
    fetch(db.reader(), reservation_id).await
}

/// A user's reservations, newest first.
pub async fn list_for_user(db: &Db, user: &ClientId) -> Result<Vec<Reservation>, DbError> {
    let rows = query(concat!(
        "SELECT ",
        reservation_columns!(),
        " FROM reservations WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
    ))
    .bind(user.as_str())
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(reservation_from_row)
        .collect::<Result<_, _>>()
}

/// What a change does beyond the reservation's row: a cancel is announced to payment and ticket,
/// and a reservation that ended without flying gives its seat back.
async fn effect(
    uow: &mut Uow,
    reservation: &Reservation,
    event: &ReservationEvent,
    cause: Option<&Envelope>,
) -> Result<(), Error> {
    if event.change == Change::CancelRequested {
        let cancel = ReservationCancelRequested {
            reservation_id: reservation.id.clone(),
            user_id: reservation.user_id.to_string(),
            flight_id: reservation.flight_id.to_string(),
        };
        uow.publish(&Envelope::new(&cancel, &reservation.id, cause, event.at))
            .await?;
    }
    if event.change.releases_seat() {
        let released = query("UPDATE flights SET seats_left = seats_left + 1 WHERE flight_id = $1")
            .bind(reservation.flight_id.as_str())
            .execute(uow.conn())
            .await?;
        if released.rows_affected() != 1 {
            return Err(Error::Inconsistent(format!(
                "reservation {} holds a seat on flight {}, which is not stored",
                reservation.id, reservation.flight_id
            )));
        }
    }
    Ok(())
}

fn status_changed(reservation: &Reservation, cause: Option<&Envelope>, at: Timestamp) -> Envelope {
    let changed = ReservationStatusChanged {
        reservation_id: reservation.id.clone(),
        user_id: reservation.user_id.to_string(),
        flight_id: reservation.flight_id.to_string(),
        status: reservation.status.as_str().to_owned(),
    };
    Envelope::new(&changed, &reservation.id, cause, at)
}

async fn fetch_flight<'e, E>(executor: E, flight_id: &str) -> Result<Option<Flight>, DbError>
where
    E: Executor<'e>,
{
    let row = query(concat!(
        "SELECT ",
        flight_columns!(),
        " FROM flights WHERE flight_id = $1"
    ))
    .bind(flight_id)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(flight_from_row).transpose()
}

async fn fetch<'e, E>(executor: E, reservation_id: &str) -> Result<Option<Reservation>, DbError>
where
    E: Executor<'e>,
{
    let row = query(concat!(
        "SELECT ",
        reservation_columns!(),
        " FROM reservations WHERE id = $1"
    ))
    .bind(reservation_id)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(reservation_from_row).transpose()
}

async fn insert(conn: &mut Tx, r: &Reservation) -> Result<(), DbError> {
    query(concat!(
        "INSERT INTO reservations (",
        reservation_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(&r.id)
    .bind(r.user_id.as_str())
    .bind(r.flight_id.as_str())
    .bind(r.from.as_str())
    .bind(r.to.as_str())
    .bind(r.departs_at)
    .bind(r.price.won())
    .bind(r.status.as_str())
    .bind(r.ticket_id.as_deref())
    .bind(r.refunded)
    .bind(i32::from(r.ticket_voided))
    .bind(r.created_at)
    .bind(r.updated_at)
    .bind(r.version)
    .execute(conn)
    .await?;
    Ok(())
}

/// Saves the mutable part of a reservation if nobody changed it since it was read.
async fn update(conn: &mut Tx, r: &Reservation) -> Result<(), DbError> {
    let done = query(
        "UPDATE reservations SET status = $1, ticket_id = $2, refunded = $3, ticket_voided = $4,
             updated_at = $5, version = $6
         WHERE id = $7 AND version = $8",
    )
    .bind(r.status.as_str())
    .bind(r.ticket_id.as_deref())
    .bind(r.refunded)
    .bind(i32::from(r.ticket_voided))
    .bind(r.updated_at)
    .bind(r.version + 1)
    .bind(&r.id)
    .bind(r.version)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(DbError::Conflict(format!("reservation {}", r.id)));
    }
    Ok(())
}

/// Stored rows were parsed on the way in, so a failure here means the table was changed behind
/// the service's back.
fn corrupt(what: &str) -> DbError {
    DbError::Decode(format!("stored row has an invalid {what}"))
}

fn client_id(row: &Row, column: &str) -> Result<ClientId, DbError> {
    ClientId::parse(&row.try_get::<String, _>(column)?).map_err(|_| corrupt(column))
}

fn place(row: &Row, column: &str) -> Result<PlaceName, DbError> {
    PlaceName::parse(&row.try_get::<String, _>(column)?).map_err(|_| corrupt(column))
}

fn price(row: &Row) -> Result<Price, DbError> {
    Price::parse(row.try_get("price")?).map_err(|_| corrupt("price"))
}

fn flight_from_row(row: &Row) -> Result<Flight, DbError> {
    Ok(Flight {
        id: client_id(row, "flight_id")?,
        from: place(row, "origin")?,
        to: place(row, "destination")?,
        departs_at: row.try_get("departs_at")?,
        seats: Seats::parse(row.try_get("seats")?).map_err(|_| corrupt("seats"))?,
        seats_left: row.try_get("seats_left")?,
        price: price(row)?,
    })
}

fn reservation_from_row(row: &Row) -> Result<Reservation, DbError> {
    let status: String = row.try_get("status")?;
    Ok(Reservation {
        id: row.try_get("id")?,
        user_id: client_id(row, "user_id")?,
        flight_id: client_id(row, "flight_id")?,
        from: place(row, "origin")?,
        to: place(row, "destination")?,
        departs_at: row.try_get("departs_at")?,
        price: price(row)?,
        status: Status::parse(&status).ok_or_else(|| corrupt("status"))?,
        ticket_id: row.try_get("ticket_id")?,
        refunded: row.try_get("refunded")?,
        ticket_voided: row.try_get::<i32, _>("ticket_voided")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}
