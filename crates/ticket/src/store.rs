//! Ticket's SQL: its view of each reservation (who, which flight, paid, cancel answered) and the
//! tickets, at most one per reservation (UNIQUE). An event is decided on the view read inside its
//! unit of work, and the view, the ticket and the events it publishes commit together.
//! Runs on SQLite and PostgreSQL alike.

use tanda_catalog::flight::{TicketIssued, TicketVoided};
use tanda_core::db::Migration;
use tanda_core::db::Tx;
use tanda_core::id::{ClientId, new_id};
use tanda_core::sql::{Row, query};
use tanda_core::{Db, DbError, Envelope, Timestamp, Uow};

use crate::domain::{self, Change, Command, Reservation, Ticket, TicketEvent};

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "reservations and tickets",
    sql: "CREATE TABLE reservations (
            reservation_id VARCHAR(200) PRIMARY KEY,
            user_id VARCHAR(64) NOT NULL,
            flight_id VARCHAR(64),
            paid_at BIGINT,
            closed_at BIGINT,
            version BIGINT NOT NULL);
        CREATE TABLE tickets (
            ticket_id VARCHAR(64) PRIMARY KEY,
            reservation_id VARCHAR(200) NOT NULL UNIQUE,
            user_id VARCHAR(64) NOT NULL,
            flight_id VARCHAR(64) NOT NULL,
            issued_at BIGINT NOT NULL,
            voided_at BIGINT);
        CREATE INDEX tickets_by_user ON tickets (user_id, issued_at)",
}];

macro_rules! ticket_columns {
    () => {
        "ticket_id, reservation_id, user_id, flight_id, issued_at, voided_at"
    };
}

/// Runs `command` on ticket's view of the reservation inside `uow`: reads it, decides, and saves
/// the outcome with the ticket and the events it publishes, caused by `cause`. `user` is the
/// reservation's owner, for a reservation heard of for the first time.
pub async fn execute(
    uow: &mut Uow,
    reservation_id: &str,
    user: &ClientId,
    command: Command,
    cause: &Envelope,
) -> Result<(), DbError> {
    let mut r = match fetch(uow.conn(), reservation_id).await? {
        Some(r) => r,
        None => Reservation::unknown(reservation_id.to_owned(), user.clone()),
    };
    let events = domain::decide(&r, command, uow.now(), new_id());
    if events.is_empty() {
        return Ok(());
    }
    for event in &events {
        domain::apply(&mut r, event);
    }
    save(uow.conn(), &r).await?;
    for event in &events {
        record(uow, &r, event, cause).await?;
    }
    Ok(())
}

/// One ticket (for `GET`s).
pub async fn ticket(db: &Db, ticket_id: &str) -> Result<Option<Ticket>, DbError> {
    let row = query(concat!(
        "SELECT ",
        ticket_columns!(),
        " FROM tickets WHERE ticket_id = $1"
    ))
    .bind(ticket_id)
    .fetch_optional(db.reader())
    .await?;
    row.as_ref().map(ticket_from_row).transpose()
}

/// A user's tickets, newest first.
pub async fn tickets_of(db: &Db, user: &ClientId) -> Result<Vec<Ticket>, DbError> {
    let rows = query(concat!(
        "SELECT ",
        ticket_columns!(),
        " FROM tickets WHERE user_id = $1 ORDER BY issued_at DESC, ticket_id DESC"
    ))
    .bind(user.as_str())
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(ticket_from_row).collect::<Result<_, _>>()
}

/// Writes what `event` did to the ticket table and publishes what other services need to know.
async fn record(
    uow: &mut Uow,
    r: &Reservation,
    event: &TicketEvent,
    cause: &Envelope,
) -> Result<(), DbError> {
    let user_id = r.user_id.to_string();
    let reservation_id = r.reservation_id.clone();
    let envelope = match &event.change {
        Change::FlightKnown { .. } | Change::Paid => return Ok(()),
        Change::Issued { .. } => {
            let ticket = r
                .ticket
                .as_ref()
                .expect("an issued change has just put the ticket in place");
            insert_ticket(uow.conn(), ticket).await?;
            let issued = TicketIssued {
                ticket_id: ticket.ticket_id.clone(),
                reservation_id,
                user_id,
                flight_id: ticket.flight_id.to_string(),
            };
            Envelope::new(&issued, &r.reservation_id, Some(cause), event.at)
        }
        Change::Voided { ticket_id } => {
            void_ticket(uow.conn(), ticket_id, event.at).await?;
            let voided = TicketVoided {
                ticket_id: Some(ticket_id.clone()),
                reservation_id,
                user_id,
            };
            Envelope::new(&voided, &r.reservation_id, Some(cause), event.at)
        }
        Change::Closed => {
            let voided = TicketVoided {
                ticket_id: None,
                reservation_id,
                user_id,
            };
            Envelope::new(&voided, &r.reservation_id, Some(cause), event.at)
        }
    };
    uow.publish(&envelope).await
}

async fn fetch(conn: &mut Tx, reservation_id: &str) -> Result<Option<Reservation>, DbError> {
    let row = query(
        "SELECT reservation_id, user_id, flight_id, paid_at, closed_at, version FROM reservations
         WHERE reservation_id = $1",
    )
    .bind(reservation_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let ticket = query(concat!(
        "SELECT ",
        ticket_columns!(),
        " FROM tickets WHERE reservation_id = $1"
    ))
    .bind(reservation_id)
    .fetch_optional(&mut *conn)
    .await?;
    let flight_id: Option<String> = row.try_get("flight_id")?;
    Ok(Some(Reservation {
        reservation_id: row.try_get("reservation_id")?,
        user_id: client_id(&row, "user_id")?,
        flight_id: flight_id
            .map(|f| ClientId::parse(&f).map_err(|_| corrupt("flight id")))
            .transpose()?,
        paid_at: row.try_get("paid_at")?,
        ticket: ticket.as_ref().map(ticket_from_row).transpose()?,
        closed_at: row.try_get("closed_at")?,
        version: row.try_get("version")?,
    }))
}

/// Stores a reservation heard of for the first time, or updates one nobody changed since it was
/// read.
async fn save(conn: &mut Tx, r: &Reservation) -> Result<(), DbError> {
    let flight_id = r.flight_id.as_ref().map(ClientId::as_str);
    let done = if r.version == 0 {
        query(
            "INSERT INTO reservations
                 (reservation_id, user_id, flight_id, paid_at, closed_at, version)
             VALUES ($1, $2, $3, $4, $5, 1) ON CONFLICT (reservation_id) DO NOTHING",
        )
        .bind(&r.reservation_id)
        .bind(r.user_id.as_str())
        .bind(flight_id)
        .bind(r.paid_at)
        .bind(r.closed_at)
        .execute(conn)
        .await?
    } else {
        query(
            "UPDATE reservations SET flight_id = $1, paid_at = $2, closed_at = $3,
                 version = version + 1
             WHERE reservation_id = $4 AND version = $5",
        )
        .bind(flight_id)
        .bind(r.paid_at)
        .bind(r.closed_at)
        .bind(&r.reservation_id)
        .bind(r.version)
        .execute(conn)
        .await?
    };
    if done.rows_affected() == 0 {
        return Err(DbError::Conflict(format!(
            "reservation {}",
            r.reservation_id
        )));
    }
    Ok(())
}

/// Stores a new ticket; the reservation's unique key refuses a second one.
async fn insert_ticket(conn: &mut Tx, t: &Ticket) -> Result<(), DbError> {
    let done = query(
        "INSERT INTO tickets (ticket_id, reservation_id, user_id, flight_id, issued_at, voided_at)
         VALUES ($1, $2, $3, $4, $5, NULL) ON CONFLICT (reservation_id) DO NOTHING",
    )
    .bind(&t.ticket_id)
    .bind(&t.reservation_id)
    .bind(t.user_id.as_str())
    .bind(t.flight_id.as_str())
    .bind(t.issued_at)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(DbError::Conflict(format!(
            "ticket of reservation {}",
            t.reservation_id
        )));
    }
    Ok(())
}

async fn void_ticket(conn: &mut Tx, ticket_id: &str, at: Timestamp) -> Result<(), DbError> {
    let done =
        query("UPDATE tickets SET voided_at = $1 WHERE ticket_id = $2 AND voided_at IS NULL")
            .bind(at)
            .bind(ticket_id)
            .execute(conn)
            .await?;
    if done.rows_affected() == 0 {
        return Err(DbError::Conflict(format!("ticket {ticket_id}")));
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

fn ticket_from_row(row: &Row) -> Result<Ticket, DbError> {
    Ok(Ticket {
        ticket_id: row.try_get("ticket_id")?,
        reservation_id: row.try_get("reservation_id")?,
        user_id: client_id(row, "user_id")?,
        flight_id: client_id(row, "flight_id")?,
        issued_at: row.try_get("issued_at")?,
        voided_at: row.try_get("voided_at")?,
    })
}
