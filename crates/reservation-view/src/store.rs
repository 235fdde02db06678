//! The read model's SQL. Each fact is its own `UPDATE` of only the columns it owns, after an upsert
//! that makes sure the reservation's row exists, so facts from different services never overwrite
//! each other and applying one twice changes nothing. Statuses only move forward.

use tanda_core::clock::rfc3339;
use tanda_core::sql::{Row, query};
use tanda_core::{Db, DbError, Uow};

use crate::domain::{Change, Fact, ReservationStats, ReservationView};

/// Records `change`: the reservation's row is created by whichever of its events comes first.
pub async fn apply(uow: &mut Uow, change: &Change) -> Result<(), DbError> {
    let id = change.reservation_id.as_str();
    query(
        "INSERT INTO reservation_views (reservation_id, updated_at) VALUES ($1, $2)
         ON CONFLICT (reservation_id) DO UPDATE SET updated_at = CASE
             WHEN excluded.updated_at > reservation_views.updated_at THEN excluded.updated_at
             ELSE reservation_views.updated_at END",
    )
    .bind(id)
    .bind(change.at)
    .execute(uow.conn())
    .await?;
    for fact in &change.facts {
        let update = match fact {
            Fact::Requested {
                user_id,
                flight_id,
                from,
                to,
                departs_at,
                price,
            } => query(
                "UPDATE reservation_views SET user_id = $2, flight_id = $3, origin = $4,
                     destination = $5, departs_at = $6, price = $7, requested_at = $8
                 WHERE reservation_id = $1",
            )
            .bind(id)
            .bind(user_id)
            .bind(flight_id)
            .bind(from)
            .bind(to)
            .bind(departs_at)
            .bind(*price)
            .bind(change.at),
            // Reservation publishes its statuses in order; the time only guards against replays.
            Fact::Status(status) => query(
                "UPDATE reservation_views SET status = $2, status_at = $3
                 WHERE reservation_id = $1 AND (status_at IS NULL OR status_at <= $3)",
            )
            .bind(id)
            .bind(status)
            .bind(change.at),
            Fact::Payment(status) => query(
                "UPDATE reservation_views SET payment_status = $2, payment_stage = $3
                 WHERE reservation_id = $1 AND (payment_stage IS NULL OR payment_stage < $3)",
            )
            .bind(id)
            .bind(status.as_str())
            .bind(status.stage()),
            Fact::Ticket { ticket_id, status } => query(
                "UPDATE reservation_views SET ticket_id = COALESCE($2, ticket_id),
                     ticket_status = $3, ticket_stage = $4
                 WHERE reservation_id = $1 AND (ticket_stage IS NULL OR ticket_stage < $4)",
            )
            .bind(id)
            .bind(ticket_id.as_deref())
            .bind(status.as_str())
            .bind(status.stage()),
        };
        update.execute(uow.conn()).await?;
    }
    Ok(())
}

/// A reservation is shown once its `ReservationRequested` arrived: before that it has no user.
macro_rules! select_views {
    ($filter:literal) => {
        concat!(
            "SELECT reservation_id, user_id, flight_id, origin, destination, departs_at, price,
                 status, payment_status, ticket_id, ticket_status, requested_at, updated_at
             FROM reservation_views WHERE requested_at IS NOT NULL AND ",
            $filter
        )
    };
}

pub async fn by_reservation(
    db: &Db,
    reservation_id: &str,
) -> Result<Option<ReservationView>, DbError> {
    let row = query(select_views!("reservation_id = $1"))
        .bind(reservation_id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(view).transpose()
}

/// A user's reservations, newest first.
pub async fn by_user(db: &Db, user_id: &str) -> Result<Vec<ReservationView>, DbError> {
    let rows = query(select_views!(
        "user_id = $1 ORDER BY requested_at DESC, reservation_id DESC"
    ))
    .bind(user_id)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(view).collect::<Result<_, _>>()
}

/// Listed reservations counted by status, in SQL.
macro_rules! count_views {
    ($filter:literal) => {
        concat!(
            "SELECT status, COUNT(*) AS reservations FROM reservation_views
             WHERE requested_at IS NOT NULL",
            $filter,
            " GROUP BY status"
        )
    };
}

/// How many reservations are listed, by status: everyone's, or one user's.
pub async fn stats(db: &Db, user_id: Option<&str>) -> Result<ReservationStats, DbError> {
    let rows = match user_id {
        Some(user_id) => {
            query(count_views!(" AND user_id = $1"))
                .bind(user_id)
                .fetch_all(db.reader())
                .await?
        }
        None => query(count_views!("")).fetch_all(db.reader()).await?,
    };
    let mut stats = ReservationStats::default();
    for row in &rows {
        let reservations: i64 = row.try_get("reservations")?;
        stats.total += reservations;
        if let Some(status) = row.try_get::<Option<String>, _>("status")? {
            stats.by_status.insert(status, reservations);
        }
    }
    Ok(stats)
}

fn view(row: &Row) -> Result<ReservationView, DbError> {
    Ok(ReservationView {
        reservation_id: row.try_get("reservation_id")?,
        user_id: row.try_get("user_id")?,
        flight_id: row.try_get("flight_id")?,
        from: row.try_get("origin")?,
        to: row.try_get("destination")?,
        departs_at: row.try_get("departs_at")?,
        price: row.try_get("price")?,
        status: row.try_get("status")?,
        payment_status: row.try_get("payment_status")?,
        ticket_id: row.try_get("ticket_id")?,
        ticket_status: row.try_get("ticket_status")?,
        requested_at: rfc3339(row.try_get("requested_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}
