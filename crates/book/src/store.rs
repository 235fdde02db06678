//! The book service's SQL: bookings (loaded, decided on and saved with the events they publish
//! and the answer timer in one unit of work) and the projection of where available drivers are,
//! behind the no-taxi breaker. Runs on SQLite and PostgreSQL alike.

use tanda_cardnet::Token;
use tanda_catalog::taxi::{
    AREA_CELL_SLACK_M, BookCancelRequested, BookCardReplaced, BookExpired, BookRequested,
    BookStatusChanged,
};
use tanda_core::clock::rfc3339;
use tanda_core::db::Tx;
use tanda_core::db::{Migration, StoredResponse};
use tanda_core::geo::{EARTH_RADIUS_M, LatLng};
use tanda_core::id::ClientId;
use tanda_core::sql::{Executor, Row, query, query_scalar};
use tanda_core::{Db, DbError, Envelope, Timestamp, Uow};

use crate::Error;
use crate::domain::{
    self, Book, BookEvent, Change, Command, CustomerName, Phone, Place, PlaceName, Status, Taxi,
};

/// The timer that answers the customer when no taxi came in time; its key is the book id.
pub const ANSWER_TIMER: &str = "book.answer";

tanda_core::timers! {
    /// Book's timers.
    pub enum BookTimer {
        /// The booking's answer is due (`answerBy`).
        Answer(ANSWER_TIMER) { book_id: String },
    }
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "books and available drivers",
        sql: "CREATE TABLE books (
            id VARCHAR(64) PRIMARY KEY,
            customer_id VARCHAR(64) NOT NULL,
            customer_name VARCHAR(100) NOT NULL,
            phone VARCHAR(20) NOT NULL,
            card_token VARCHAR(200) NOT NULL,
            card_last4 VARCHAR(4) NOT NULL,
            pickup_name VARCHAR(200) NOT NULL,
            pickup_lat DOUBLE PRECISION NOT NULL,
            pickup_lng DOUBLE PRECISION NOT NULL,
            dropoff_name VARCHAR(200) NOT NULL,
            dropoff_lat DOUBLE PRECISION NOT NULL,
            dropoff_lng DOUBLE PRECISION NOT NULL,
            status VARCHAR(32) NOT NULL,
            cancel_from VARCHAR(32),
            dispatch_id VARCHAR(200),
            driver_id VARCHAR(64),
            driver_name TEXT,
            car_number TEXT,
            driver_phone TEXT,
            eta_seconds BIGINT,
            fare BIGINT,
            pay_id VARCHAR(200),
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            version BIGINT NOT NULL);
        CREATE INDEX books_by_customer ON books (customer_id, created_at);
        CREATE TABLE drivers (
            driver_id VARCHAR(64) PRIMARY KEY,
            available INTEGER NOT NULL,
            as_of BIGINT NOT NULL);
        CREATE INDEX drivers_available ON drivers (available)",
    },
    // When each booking's answer is due (NULL for bookings of before: dispatch answered those),
    // and where each driver is, as dispatch last announced it (NULL: not known, anywhere).
    Migration {
        version: 2,
        name: "answer deadlines and drivers' places",
        sql: "ALTER TABLE books ADD COLUMN answer_by BIGINT;
            ALTER TABLE drivers ADD COLUMN lat DOUBLE PRECISION;
            ALTER TABLE drivers ADD COLUMN lng DOUBLE PRECISION;
            CREATE INDEX drivers_available_at ON drivers (available, lat)",
    },
];

macro_rules! book_columns {
    () => {
        "id, customer_id, customer_name, phone, card_token, card_last4,
         pickup_name, pickup_lat, pickup_lng, dropoff_name, dropoff_lat, dropoff_lng,
         status, cancel_from, dispatch_id, driver_id, driver_name, car_number, driver_phone,
         eta_seconds, fare, pay_id, created_at, updated_at, answer_by, version"
    };
}

/// Idempotency-Key scope of `POST /books`.
const IDEMPOTENCY_SCOPE: &str = "POST /books";

/// A creating request's Idempotency-Key, the request it names and the response to keep for it.
pub struct Idempotency<'a> {
    pub key: &'a str,
    pub request: &'a serde_json::Value,
    pub response: &'a serde_json::Value,
}

pub enum Created {
    New,
    /// The key was used before: its first response, and nothing new was stored.
    Replayed(StoredResponse),
    /// No driver is available near the pickup: nothing was stored.
    NoTaxi,
}

/// Stores a new booking, its answer timer, and publishes `BookRequested` and its first status,
/// unless the idempotency key was already used or no driver is available within `radius_m` of
/// the pickup.
pub async fn create(
    db: &Db,
    book: &Book,
    radius_m: f64,
    idempotency: Option<Idempotency<'_>>,
) -> Result<Created, DbError> {
    let mut uow = db.begin().await?;
    if let Some(i) = &idempotency
        && let Some(first) = uow
            .idempotent_response(IDEMPOTENCY_SCOPE, i.key, i.request)
            .await?
    {
        return Ok(Created::Replayed(first));
    }
    if !any_driver_near(uow.conn(), book.pickup.location, radius_m).await? {
        return Ok(Created::NoTaxi);
    }
    insert(uow.conn(), book).await?;
    if let Some(answer_by) = book.answer_by {
        let answer = BookTimer::Answer {
            book_id: book.id.clone(),
        };
        uow.set_timer(&answer, answer_by).await?;
    }
    let requested = BookRequested {
        book_id: book.id.clone(),
        customer_id: book.customer_id.to_string(),
        customer_name: book.customer_name.as_str().to_owned(),
        phone: book.phone.as_str().to_owned(),
        card_token: book.card.token.clone(),
        card_last4: book.card.last4.clone(),
        pickup: catalog_place(&book.pickup),
        dropoff: catalog_place(&book.dropoff),
        answer_by: book.answer_by.map(rfc3339),
    };
    let at = book.created_at;
    uow.publish(&Envelope::new(&requested, &book.id, None, at))
        .await?;
    uow.publish(&status_changed(book, None, at)).await?;
    if let Some(i) = idempotency {
        uow.save_idempotent_response(IDEMPOTENCY_SCOPE, i.key, i.request, 201, i.response)
            .await?;
    }
    uow.commit().await?;
    Ok(Created::New)
}

/// Runs `command` on the stored booking inside `uow`: reads the current state, decides, and saves
/// the outcome with the events it publishes (`cause` is the event being reacted to, if any).
/// `None` if there is no such booking.
pub async fn execute(
    uow: &mut Uow,
    book_id: &str,
    command: Command,
    cause: Option<&Envelope>,
) -> Result<Option<Book>, Error> {
    let Some(mut book) = fetch(uow.conn(), book_id).await? else {
        return Ok(None);
    };
    let now = uow.now();
    let events = domain::decide(&book, command, now)?;
    if events.is_empty() {
        return Ok(Some(book));
    }
    let before = book.status;
    for event in &events {
        domain::apply(&mut book, event);
    }
    update(uow.conn(), &book).await?;
    book.version += 1;
    if before.waiting() && !book.status.waiting() {
        uow.cancel_timer(ANSWER_TIMER, &book.id).await?;
    }
    for event in &events {
        publish_change(uow, &book, event, cause).await?;
    }
    if book.status.as_str() != before.as_str() {
        uow.publish(&status_changed(&book, cause, now)).await?;
    }
    Ok(Some(book))
}

/// Outside a unit of work: for `GET`s.
pub async fn find(db: &Db, book_id: &str) -> Result<Option<Book>, DbError> {
    fetch(db.reader(), book_id).await
}

/// A customer's bookings, newest first.
pub async fn list_for_customer(db: &Db, customer: &ClientId) -> Result<Vec<Book>, DbError> {
    let rows = query(concat!(
        "SELECT ",
        book_columns!(),
        " FROM books WHERE customer_id = $1 ORDER BY created_at DESC, id DESC"
    ))
    .bind(customer.as_str())
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(book_from_row).collect::<Result<_, _>>()
}

/// Keeps the projection of which drivers are available and where (`None`: not known). An event
/// older than the one already applied for that driver (a reordered delivery) changes nothing.
pub async fn record_driver_status(
    uow: &mut Uow,
    driver_id: &str,
    available: bool,
    location: Option<LatLng>,
    as_of: Timestamp,
) -> Result<(), DbError> {
    query(
        "INSERT INTO drivers (driver_id, available, lat, lng, as_of) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (driver_id) DO UPDATE SET available = excluded.available,
             lat = excluded.lat, lng = excluded.lng, as_of = excluded.as_of
         WHERE drivers.as_of <= excluded.as_of",
    )
    .bind(driver_id)
    .bind(i32::from(available))
    .bind(location.map(|l| l.lat))
    .bind(location.map(|l| l.lng))
    .bind(as_of)
    .execute(uow.conn())
    .await?;
    Ok(())
}

/// Whether some driver is available within `radius_m` of `pickup` as far as the projection
/// knows, allowing for the area cell a driver may have moved within since dispatch last said
/// where they are, and counting drivers of unknown place. It may say yes for a driver a little
/// farther (dispatch's deadline answers that booking), never no for one within the radius.
async fn any_driver_near(conn: &mut Tx, pickup: LatLng, radius_m: f64) -> Result<bool, DbError> {
    let area = Area::around(pickup, radius_m + AREA_CELL_SLACK_M);
    let found: Option<String> = query_scalar(
        "SELECT driver_id FROM drivers WHERE available = 1
           AND (lat IS NULL OR (lat BETWEEN $1 AND $2 AND lng BETWEEN $3 AND $4))
         LIMIT 1",
    )
    .bind(area.lat.0)
    .bind(area.lat.1)
    .bind(area.lng.0)
    .bind(area.lng.1)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// The latitudes and longitudes (each a closed range, in degrees) of a box holding every point
/// within some distance of a centre: cheap to look up, never too small.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Area {
    lat: (f64, f64),
    lng: (f64, f64),
}

impl Area {
    fn around(centre: LatLng, radius_m: f64) -> Self {
        let metres_per_degree = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
        let dlat = radius_m / metres_per_degree;
        let lat = (centre.lat - dlat, centre.lat + dlat);
        let everywhere = (-180.0, 180.0);
        if lat.0 <= -90.0 || lat.1 >= 90.0 {
            return Self {
                lat,
                lng: everywhere,
            };
        }
        // A degree of longitude is shortest on the box's edge nearest a pole.
        let widest = lat.0.abs().max(lat.1.abs()).to_radians().cos();
        let dlng = radius_m / (metres_per_degree * widest);
        let lng = (centre.lng - dlng, centre.lng + dlng);
        // Across the antimeridian: every longitude, rather than two ranges.
        if lng.0 < -180.0 || lng.1 > 180.0 {
            return Self {
                lat,
                lng: everywhere,
            };
        }
        Self { lat, lng }
    }
}

/// Publishes what a change tells other services beyond the status (which `execute` announces).
async fn publish_change(
    uow: &mut Uow,
    book: &Book,
    event: &BookEvent,
    cause: Option<&Envelope>,
) -> Result<(), DbError> {
    let customer_id = book.customer_id.to_string();
    let envelope = match &event.change {
        Change::CancelRequested => {
            let cancel = BookCancelRequested {
                book_id: book.id.clone(),
                customer_id,
            };
            Envelope::new(&cancel, &book.id, cause, event.at)
        }
        Change::CardReplaced(card) => {
            let replaced = BookCardReplaced {
                book_id: book.id.clone(),
                customer_id,
                driver_id: book.taxi.as_ref().map(|t| t.driver_id.clone()),
                card_token: card.token.clone(),
                card_last4: card.last4.clone(),
            };
            Envelope::new(&replaced, &book.id, cause, event.at)
        }
        // However the system came to cancel (book's own answer deadline, or dispatch's failure
        // heard first), the customer is answered by this one event.
        Change::CancelledBySystem => {
            let expired = BookExpired {
                book_id: book.id.clone(),
                customer_id,
            };
            Envelope::new(&expired, &book.id, cause, event.at)
        }
        _ => return Ok(()),
    };
    uow.publish(&envelope).await
}

fn status_changed(book: &Book, cause: Option<&Envelope>, at: Timestamp) -> Envelope {
    let changed = BookStatusChanged {
        book_id: book.id.clone(),
        customer_id: book.customer_id.to_string(),
        status: book.status.as_str().to_owned(),
    };
    Envelope::new(&changed, &book.id, cause, at)
}

fn catalog_place(place: &Place) -> tanda_catalog::Place {
    tanda_catalog::Place {
        name: place.name.as_str().to_owned(),
        lat: place.location.lat,
        lng: place.location.lng,
    }
}

async fn fetch<'e, E>(executor: E, book_id: &str) -> Result<Option<Book>, DbError>
where
    E: Executor<'e>,
{
    let row = query(concat!(
        "SELECT ",
        book_columns!(),
        " FROM books WHERE id = $1"
    ))
    .bind(book_id)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(book_from_row).transpose()
}

async fn insert(conn: &mut Tx, book: &Book) -> Result<(), DbError> {
    query(concat!(
        "INSERT INTO books (",
        book_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                   $18, $19, $20, $21, $22, $23, $24, $25, $26)"
    ))
    .bind(&book.id)
    .bind(book.customer_id.as_str())
    .bind(book.customer_name.as_str())
    .bind(book.phone.as_str())
    .bind(&book.card.token)
    .bind(&book.card.last4)
    .bind(book.pickup.name.as_str())
    .bind(book.pickup.location.lat)
    .bind(book.pickup.location.lng)
    .bind(book.dropoff.name.as_str())
    .bind(book.dropoff.location.lat)
    .bind(book.dropoff.location.lng)
    .bind(book.status.as_str())
    .bind(cancel_from(book.status))
    .bind(book.dispatch_id.as_deref())
    .bind(book.taxi.as_ref().map(|t| t.driver_id.as_str()))
    .bind(book.taxi.as_ref().map(|t| t.driver_name.as_str()))
    .bind(book.taxi.as_ref().map(|t| t.car_number.as_str()))
    .bind(book.taxi.as_ref().map(|t| t.phone.as_str()))
    .bind(book.taxi.as_ref().map(|t| t.eta_seconds))
    .bind(book.fare)
    .bind(book.pay_id.as_deref())
    .bind(book.created_at)
    .bind(book.updated_at)
    .bind(book.answer_by)
    .bind(book.version)
    .execute(conn)
    .await?;
    Ok(())
}

/// Saves the mutable part of `book` if nobody changed it since it was read.
async fn update(conn: &mut Tx, book: &Book) -> Result<(), DbError> {
    let done = query(
        "UPDATE books SET status = $1, cancel_from = $2, dispatch_id = $3, driver_id = $4,
             driver_name = $5, car_number = $6, driver_phone = $7, eta_seconds = $8, fare = $9,
             pay_id = $10, updated_at = $11, version = $12, card_token = $13, card_last4 = $14
         WHERE id = $15 AND version = $16",
    )
    .bind(book.status.as_str())
    .bind(cancel_from(book.status))
    .bind(book.dispatch_id.as_deref())
    .bind(book.taxi.as_ref().map(|t| t.driver_id.as_str()))
    .bind(book.taxi.as_ref().map(|t| t.driver_name.as_str()))
    .bind(book.taxi.as_ref().map(|t| t.car_number.as_str()))
    .bind(book.taxi.as_ref().map(|t| t.phone.as_str()))
    .bind(book.taxi.as_ref().map(|t| t.eta_seconds))
    .bind(book.fare)
    .bind(book.pay_id.as_deref())
    .bind(book.updated_at)
    .bind(book.version + 1)
    .bind(&book.card.token)
    .bind(&book.card.last4)
    .bind(&book.id)
    .bind(book.version)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(DbError::Conflict(format!("book {}", book.id)));
    }
    Ok(())
}

fn cancel_from(status: Status) -> Option<&'static str> {
    match status {
        Status::CancelRequested { from } => Some(from.as_str()),
        _ => None,
    }
}

/// A stored row back into a `Book`; the row was parsed on the way in, so a failure here means
/// the table was changed behind the service's back.
fn book_from_row(row: &Row) -> Result<Book, DbError> {
    let corrupt = |what: &str| DbError::Decode(format!("stored book has an invalid {what}"));
    let place = |prefix: &str| -> Result<Place, DbError> {
        let name: String = row.try_get(format!("{prefix}_name").as_str())?;
        let lat: f64 = row.try_get(format!("{prefix}_lat").as_str())?;
        let lng: f64 = row.try_get(format!("{prefix}_lng").as_str())?;
        Ok(Place {
            name: PlaceName::parse(&name).map_err(|_| corrupt("place name"))?,
            location: LatLng::parse(lat, lng).map_err(|_| corrupt("location"))?,
        })
    };
    let status: String = row.try_get("status")?;
    let from: Option<String> = row.try_get("cancel_from")?;
    let driver_id: Option<String> = row.try_get("driver_id")?;
    let taxi = match driver_id {
        Some(driver_id) => Some(Taxi {
            driver_id,
            driver_name: row
                .try_get::<Option<String>, _>("driver_name")?
                .unwrap_or_default(),
            car_number: row
                .try_get::<Option<String>, _>("car_number")?
                .unwrap_or_default(),
            phone: row
                .try_get::<Option<String>, _>("driver_phone")?
                .unwrap_or_default(),
            eta_seconds: row
                .try_get::<Option<i64>, _>("eta_seconds")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(Book {
        id: row.try_get("id")?,
        customer_id: ClientId::parse(&row.try_get::<String, _>("customer_id")?)
            .map_err(|_| corrupt("customer id"))?,
        customer_name: CustomerName::parse(&row.try_get::<String, _>("customer_name")?)
            .map_err(|_| corrupt("customer name"))?,
        phone: Phone::stored(row.try_get("phone")?),
        card: Token {
            token: row.try_get("card_token")?,
            last4: row.try_get("card_last4")?,
        },
        pickup: place("pickup")?,
        dropoff: place("dropoff")?,
        status: Status::from_parts(&status, from.as_deref()).ok_or_else(|| corrupt("status"))?,
        dispatch_id: row.try_get("dispatch_id")?,
        taxi,
        fare: row.try_get("fare")?,
        pay_id: row.try_get("pay_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        answer_by: row.try_get("answer_by")?,
        version: row.try_get("version")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lat: f64, lng: f64) -> LatLng {
        LatLng::parse(lat, lng).unwrap()
    }

    fn holds(area: Area, p: LatLng) -> bool {
        (area.lat.0..=area.lat.1).contains(&p.lat) && (area.lng.0..=area.lng.1).contains(&p.lng)
    }

    /// The point `metres` from `from` on `bearing` (degrees from north), on the sphere.
    fn towards(from: LatLng, bearing: f64, metres: f64) -> LatLng {
        let d = metres / EARTH_RADIUS_M;
        let (p1, l1, b) = (
            from.lat.to_radians(),
            from.lng.to_radians(),
            bearing.to_radians(),
        );
        let p2 = (p1.sin() * d.cos() + p1.cos() * d.sin() * b.cos()).asin();
        let l2 = l1 + (b.sin() * d.sin() * p1.cos()).atan2(d.cos() - p1.sin() * p2.sin());
        let lng = (l2.to_degrees() + 540.0) % 360.0 - 180.0;
        at(p2.to_degrees(), lng)
    }

    #[test]
    fn the_area_holds_every_point_within_the_distance() {
        for centre in [
            at(37.5663, 126.9779),
            at(0.0, 0.0),
            at(-33.87, 151.21),
            at(69.65, 18.96),
            at(89.99, 0.0),
            at(0.0, 179.99),
            at(0.0, -179.99),
        ] {
            let area = Area::around(centre, 6_573.0);
            for bearing in (0..360).step_by(5) {
                let p = towards(centre, f64::from(bearing), 6_572.0);
                assert!(holds(area, p), "{centre:?} {bearing}° {p:?} {area:?}");
            }
        }
    }

    #[test]
    fn the_area_leaves_out_what_is_far() {
        let city_hall = at(37.5663, 126.9779);
        let area = Area::around(city_hall, 5_000.0 + AREA_CELL_SLACK_M);
        assert!(!holds(area, towards(city_hall, 0.0, 30_000.0)));
        assert!(!holds(area, towards(city_hall, 90.0, 8_000.0)));
        assert!(holds(area, towards(city_hall, 0.0, 6_000.0)));
    }
}
