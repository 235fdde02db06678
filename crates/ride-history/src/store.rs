//! The read model's SQL. Each fact is its own `UPDATE` of only the columns it owns, after an upsert
//! that makes sure the ride's row exists, so facts from different services never overwrite each
//! other and applying one twice changes nothing. Statuses only move to a later event's.

use tanda_catalog::Place;
use tanda_core::clock::rfc3339;
use tanda_core::sql::{Query, Row, query};
use tanda_core::{Db, DbError, Timestamp, Uow};

use crate::domain::{Change, Fact, RideHistory, RideStats, Taxi};

/// Records `change`: the ride's row is created by whichever of its events comes first.
pub async fn apply(uow: &mut Uow, change: &Change) -> Result<(), DbError> {
    let book_id = change.book_id.as_str();
    query(
        "INSERT INTO ride_histories (book_id, updated_at) VALUES ($1, $2)
         ON CONFLICT (book_id) DO UPDATE SET updated_at = CASE
             WHEN excluded.updated_at > ride_histories.updated_at THEN excluded.updated_at
             ELSE ride_histories.updated_at END",
    )
    .bind(book_id)
    .bind(change.at)
    .execute(uow.conn())
    .await?;
    for fact in &change.facts {
        update(book_id, change.at, fact).execute(uow.conn()).await?;
    }
    Ok(())
}

/// The `UPDATE` that records `fact`, learnt at `at`, of the ride `book_id`: only its own columns.
fn update<'q>(book_id: &'q str, at: Timestamp, fact: &'q Fact) -> Query<'q> {
    match fact {
        Fact::Requested {
            customer_id,
            customer_name,
            pickup,
            dropoff,
        } => query(
            "UPDATE ride_histories SET customer_id = $2, customer_name = $3,
                 pickup_name = $4, pickup_lat = $5, pickup_lng = $6,
                 dropoff_name = $7, dropoff_lat = $8, dropoff_lng = $9, requested_at = $10
             WHERE book_id = $1",
        )
        .bind(book_id)
        .bind(customer_id)
        .bind(customer_name)
        .bind(&pickup.name)
        .bind(pickup.lat)
        .bind(pickup.lng)
        .bind(&dropoff.name)
        .bind(dropoff.lat)
        .bind(dropoff.lng)
        .bind(at),
        Fact::BookStatus(status) => query(
            "UPDATE ride_histories SET book_status = $2, book_status_at = $3
             WHERE book_id = $1 AND (book_status_at IS NULL OR book_status_at <= $3)",
        )
        .bind(book_id)
        .bind(status)
        .bind(at),
        Fact::DispatchStatus {
            dispatch_id,
            status,
        } => query(
            "UPDATE ride_histories SET dispatch_id = $2, dispatch_status = $3,
                 dispatch_status_at = $4
             WHERE book_id = $1 AND (dispatch_status_at IS NULL OR dispatch_status_at <= $4)",
        )
        .bind(book_id)
        .bind(dispatch_id)
        .bind(*status)
        .bind(at),
        Fact::Taxi(taxi) => query(
            "UPDATE ride_histories SET driver_id = $2, driver_name = $3, car_number = $4,
                 driver_phone = $5, eta_seconds = $6
             WHERE book_id = $1",
        )
        .bind(book_id)
        .bind(&taxi.driver_id)
        .bind(&taxi.driver_name)
        .bind(&taxi.car_number)
        .bind(&taxi.phone)
        .bind(taxi.eta_seconds),
        Fact::Distance(meters) => {
            query("UPDATE ride_histories SET distance_meters = $2 WHERE book_id = $1")
                .bind(book_id)
                .bind(*meters)
        }
        Fact::Paid {
            pay_id,
            fare,
            method,
        } => query(
            "UPDATE ride_histories SET pay_id = $2, fare = $3, payment_method = $4
             WHERE book_id = $1",
        )
        .bind(book_id)
        .bind(pay_id)
        .bind(*fare)
        .bind(method),
    }
}

/// A ride is shown once its `BookRequested` arrived: before that it has no customer.
macro_rules! select_rides {
    ($filter:literal) => {
        concat!(
            "SELECT book_id, dispatch_id, customer_id, customer_name,
                 pickup_name, pickup_lat, pickup_lng, dropoff_name, dropoff_lat, dropoff_lng,
                 driver_id, driver_name, car_number, driver_phone, eta_seconds,
                 book_status, dispatch_status, fare, pay_id, payment_method, distance_meters,
                 requested_at, updated_at
             FROM ride_histories WHERE customer_id IS NOT NULL AND ",
            $filter
        )
    };
}

pub async fn by_book(db: &Db, book_id: &str) -> Result<Option<RideHistory>, DbError> {
    let row = query(select_rides!("book_id = $1"))
        .bind(book_id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(ride).transpose()
}

/// A customer's rides, newest request first.
pub async fn by_customer(db: &Db, customer_id: &str) -> Result<Vec<RideHistory>, DbError> {
    let rows = query(select_rides!(
        "customer_id = $1 ORDER BY requested_at DESC, book_id DESC"
    ))
    .bind(customer_id)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(ride).collect::<Result<_, _>>()
}

/// Listed rides counted by book status, in SQL.
macro_rules! count_rides {
    ($filter:literal) => {
        concat!(
            "SELECT book_status, COUNT(*) AS rides FROM ride_histories
             WHERE customer_id IS NOT NULL",
            $filter,
            " GROUP BY book_status"
        )
    };
}

/// How many rides are listed, by book status: all of them, or one customer's.
pub async fn stats(db: &Db, customer_id: Option<&str>) -> Result<RideStats, DbError> {
    let rows = match customer_id {
        Some(customer_id) => {
            query(count_rides!(" AND customer_id = $1"))
                .bind(customer_id)
                .fetch_all(db.reader())
                .await?
        }
        None => query(count_rides!("")).fetch_all(db.reader()).await?,
    };
    let mut stats = RideStats::default();
    for row in &rows {
        let rides: i64 = row.try_get("rides")?;
        stats.total += rides;
        if let Some(status) = row.try_get::<Option<String>, _>("book_status")? {
            stats.by_status.insert(status, rides);
        }
    }
    Ok(stats)
}

fn ride(row: &Row) -> Result<RideHistory, DbError> {
    let place = |prefix: &str| -> Result<Place, DbError> {
        Ok(Place {
            name: row.try_get(format!("{prefix}_name").as_str())?,
            lat: row.try_get(format!("{prefix}_lat").as_str())?,
            lng: row.try_get(format!("{prefix}_lng").as_str())?,
        })
    };
    let taxi = match row.try_get::<Option<String>, _>("driver_id")? {
        Some(driver_id) => Some(Taxi {
            driver_id,
            driver_name: row.try_get("driver_name")?,
            car_number: row.try_get("car_number")?,
            phone: row.try_get("driver_phone")?,
            eta_seconds: row.try_get("eta_seconds")?,
        }),
        None => None,
    };
    Ok(RideHistory {
        book_id: row.try_get("book_id")?,
        dispatch_id: row.try_get("dispatch_id")?,
        customer_id: row.try_get("customer_id")?,
        customer_name: row.try_get("customer_name")?,
        pickup: place("pickup")?,
        dropoff: place("dropoff")?,
        taxi,
        book_status: row.try_get("book_status")?,
        dispatch_status: row.try_get("dispatch_status")?,
        fare: row.try_get("fare")?,
        pay_id: row.try_get("pay_id")?,
        payment_method: row.try_get("payment_method")?,
        distance_meters: row.try_get("distance_meters")?,
        requested_at: rfc3339(row.try_get("requested_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}
