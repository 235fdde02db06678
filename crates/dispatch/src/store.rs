//! SQL for drivers and dispatches, and the one way their state changes: [`Store::execute`] loads
//! what a command touches, decides, saves what changed with the events and timers it causes, then
//! matches — a dispatch left looking for a driver is offered to the nearest available one, a driver
//! who just became available is offered the oldest waiting dispatch. All of it in the caller's unit
//! of work, so it commits (or not) as one.

use std::collections::{BTreeSet, HashSet};

use tanda_core::geo::LatLng;
use tanda_core::id::ClientId;
use tanda_core::sql::{Conn, Row, query, query_scalar};
use tanda_core::{Db, DbError, Envelope, Timestamp, Uow};

use crate::announce::{announce, driver_status_changed};
use crate::domain::{
    Booking, Command, Decline, Dispatch, DispatchId, DispatchRef, DispatchStatus, Driver,
    DriverStatus, Fleet, Offer, PaidTrip, Place, Rejection, Ride, Rules, Settlement, Stage,
    ToMatch, apply, decide, to_match,
};
use crate::error::Error;
use crate::nearby::nearest_available;

/// Timer kinds, as stored.
pub const OFFER_TIMER: &str = "dispatch.offer";
pub const DEADLINE_TIMER: &str = "dispatch.deadline";

tanda_core::timers! {
    /// Dispatch's timers, each keyed by its dispatch.
    pub enum DispatchTimer {
        /// The offer to `driver_id` runs out.
        Offer(OFFER_TIMER) { dispatch_id: String, driver_id: ClientId },
        /// The search runs out of time.
        Deadline(DEADLINE_TIMER) { dispatch_id: String },
    }
}
/// Candidates taken at a time; more only when all of them turned out to be taken meanwhile.
const CANDIDATES: usize = 8;

pub struct Store {
    rules: Rules,
    /// Only drivers this close to the pickup are offered its ride.
    max_pickup_m: f64,
}

impl Store {
    pub fn new(rules: Rules, max_pickup_m: f64) -> Self {
        Self {
            rules,
            max_pickup_m,
        }
    }

    /// Runs `command` in a unit of work of its own on `db`, again if it lost a race with another
    /// instance (`Db::retry_on_conflict`); returns what it changed.
    pub async fn run(&self, db: &Db, command: impl Fn() -> Command) -> Result<Fleet, Error> {
        let command = &command;
        Db::retry_on_conflict(|| async move {
            let mut uow = db.begin().await?;
            let fleet = self.execute(&mut uow, command(), None).await?;
            uow.commit().await?;
            Ok(fleet)
        })
        .await
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Runs `command` in `uow` and returns the fleet it touched, as it is now. `cause` is the
    /// event that led to it, if any.
    pub async fn execute(
        &self,
        uow: &mut Uow,
        command: Command,
        cause: Option<&Envelope>,
    ) -> Result<Fleet, Error> {
        let now = uow.now();
        let mut fleet = Fleet::default();
        let (dispatch, driver) = command.targets();
        if let Some(dispatch) = match dispatch {
            Some(DispatchRef::Id(id)) => dispatch_by_id(&mut uow.conn().into(), id).await?,
            Some(DispatchRef::Book(book_id)) => {
                dispatch_for_book(&mut uow.conn().into(), book_id).await?
            }
            None => None,
        } {
            fleet.dispatches.insert(dispatch.id.clone(), dispatch);
        }
        if let Some(driver) = match driver {
            Some(id) => driver_by_id(&mut uow.conn().into(), id).await?,
            None => None,
        } {
            fleet.drivers.insert(driver.id.clone(), driver);
        }
        load_neighbours(&mut uow.conn().into(), &mut fleet).await?;

        let mut work = self.step(uow, &mut fleet, command, now, cause).await?;
        loop {
            let more = if let Some(id) = work.dispatches.pop() {
                self.offer_nearest_driver(uow, &mut fleet, id.as_str(), now, cause)
                    .await?
            } else if let Some(id) = work.drivers.pop() {
                self.offer_waiting_dispatch(uow, &mut fleet, &id, now, cause)
                    .await?
            } else {
                return Ok(fleet);
            };
            work.dispatches.extend(more.dispatches);
            work.drivers.extend(more.drivers);
        }
    }

    /// Decides and applies one command, saves what changed and announces it.
    async fn step(
        &self,
        uow: &mut Uow,
        fleet: &mut Fleet,
        command: Command,
        now: Timestamp,
        cause: Option<&Envelope>,
    ) -> Result<ToMatch, Error> {
        let before = fleet.clone();
        let events = decide(fleet, &self.rules, command, now)?;
        for event in &events {
            apply(fleet, event);
        }
        self.save(uow, &before, fleet, now, cause).await?;
        for event in &events {
            announce(uow, fleet, event, now, cause).await?;
        }
        Ok(to_match(&before, fleet, now))
    }

    /// Offers the dispatch to the nearest available driver who has not turned it down; without
    /// one it waits, searching, for a driver to become available.
    async fn offer_nearest_driver(
        &self,
        uow: &mut Uow,
        fleet: &mut Fleet,
        dispatch_id: &str,
        now: Timestamp,
        cause: Option<&Envelope>,
    ) -> Result<ToMatch, Error> {
        let Some(dispatch) = fleet.dispatches.get(dispatch_id) else {
            return Ok(ToMatch::default());
        };
        let Some(pickup) = dispatch.booking.as_ref().map(|b| b.pickup.at) else {
            return Ok(ToMatch::default());
        };
        let refused = dispatch.refused.clone();
        let mut tried = HashSet::new();
        loop {
            let candidates = nearest_available(
                &mut uow.conn().into(),
                pickup,
                self.max_pickup_m,
                CANDIDATES,
                |d| refused.contains(d) || tried.contains(d),
            )
            .await?;
            if candidates.is_empty() {
                return Ok(ToMatch::default());
            }
            for driver_id in candidates {
                tried.insert(driver_id.clone());
                if !fleet.drivers.contains_key(&driver_id)
                    && let Some(driver) = driver_by_id(&mut uow.conn().into(), &driver_id).await?
                {
                    fleet.drivers.insert(driver_id.clone(), driver);
                }
                let offer = Command::Offer {
                    dispatch_id: dispatch_id.to_owned().into(),
                    driver_id,
                };
                match self.step(uow, fleet, offer, now, cause).await {
                    // Taken by a unit of work that committed after the search read: the next.
                    Err(Error::Rejected(
                        Rejection::DriverUnavailable(_) | Rejection::UnknownDriver(_),
                    )) => continue,
                    Err(Error::Rejected(_)) => return Ok(ToMatch::default()),
                    outcome => return outcome,
                }
            }
        }
    }

    /// Offers a driver who just became available the oldest waiting dispatch they have not
    /// turned down.
    async fn offer_waiting_dispatch(
        &self,
        uow: &mut Uow,
        fleet: &mut Fleet,
        driver_id: &ClientId,
        now: Timestamp,
        cause: Option<&Envelope>,
    ) -> Result<ToMatch, Error> {
        if fleet.drivers.get(driver_id).map(|d| d.status) != Some(DriverStatus::Available) {
            return Ok(ToMatch::default());
        }
        let waiting: Option<String> = query_scalar(
            "SELECT d.id FROM dispatches d
             WHERE d.status = $1 AND d.offer_driver_id IS NULL AND d.deadline_at > $2
               AND NOT EXISTS (SELECT 1 FROM dispatch_refusals r
                               WHERE r.dispatch_id = d.id AND r.driver_id = $3)
             ORDER BY d.created_at, d.id LIMIT 1",
        )
        .bind(DispatchStatus::Searching.as_str())
        .bind(now)
        .bind(driver_id.as_str())
        .fetch_optional(uow.conn())
        .await?;
        let Some(dispatch_id) = waiting else {
            return Ok(ToMatch::default());
        };
        if !fleet.dispatches.contains_key(dispatch_id.as_str())
            && let Some(dispatch) = dispatch_by_id(&mut uow.conn().into(), &dispatch_id).await?
        {
            fleet
                .dispatches
                .insert(dispatch_id.clone().into(), dispatch);
        }
        let offer = Command::Offer {
            dispatch_id: dispatch_id.into(),
            driver_id: driver_id.clone(),
        };
        match self.step(uow, fleet, offer, now, cause).await {
            Err(Error::Rejected(_)) => Ok(ToMatch::default()),
            outcome => outcome,
        }
    }

    /// Writes every driver and dispatch that differs from `before` (version-checked), and
    /// publishes driver status changes.
    async fn save(
        &self,
        uow: &mut Uow,
        before: &Fleet,
        fleet: &mut Fleet,
        now: Timestamp,
        cause: Option<&Envelope>,
    ) -> Result<(), Error> {
        let Fleet {
            drivers,
            dispatches,
        } = fleet;
        for dispatch in dispatches.values_mut() {
            let old = before.dispatches.get(&dispatch.id);
            if old == Some(&*dispatch) {
                continue;
            }
            dispatch.updated_at = now;
            match old {
                None => insert_dispatch(&mut uow.conn().into(), dispatch).await?,
                Some(_) => update_dispatch(&mut uow.conn().into(), dispatch).await?,
            }
            let no_refusals = BTreeSet::new();
            let refused_before = old.map_or(&no_refusals, |o| &o.refused);
            for driver_id in dispatch.refused.difference(refused_before) {
                query(
                    "INSERT INTO dispatch_refusals (dispatch_id, driver_id) VALUES ($1, $2)
                     ON CONFLICT (dispatch_id, driver_id) DO NOTHING",
                )
                .bind(dispatch.id.as_str())
                .bind(driver_id.as_str())
                .execute(uow.conn())
                .await?;
            }
        }
        for driver in drivers.values_mut() {
            let old = before.drivers.get(&driver.id);
            if old == Some(&*driver) {
                continue;
            }
            match old {
                None => insert_driver(&mut uow.conn().into(), driver, now).await?,
                Some(_) => update_driver(&mut uow.conn().into(), driver, now).await?,
            }
            let ride = driver
                .dispatch_id
                .as_ref()
                .or(old.and_then(|o| o.dispatch_id.as_ref()))
                .and_then(|id| dispatches.get(id.as_str()));
            if let Some(changed) = driver_status_changed(old, driver, ride, now, cause) {
                uow.publish(&changed).await?;
            }
        }
        Ok(())
    }
}

/// Adds the drivers the loaded dispatches point at, and the dispatches the loaded drivers are on.
async fn load_neighbours(conn: &mut Conn<'_>, fleet: &mut Fleet) -> Result<(), Error> {
    let driver_ids: Vec<ClientId> = fleet
        .dispatches
        .values()
        .flat_map(|d| [d.offer().map(|o| &o.driver_id), d.driver_id()])
        .flatten()
        .filter(|id| !fleet.drivers.contains_key(*id))
        .cloned()
        .collect();
    let dispatch_ids: Vec<DispatchId> = fleet
        .drivers
        .values()
        .filter_map(|d| d.dispatch_id.clone())
        .filter(|id| !fleet.dispatches.contains_key(id.as_str()))
        .collect();
    for id in driver_ids {
        if let Some(driver) = driver_by_id(conn, &id).await? {
            fleet.drivers.insert(id, driver);
        }
    }
    for id in dispatch_ids {
        if let Some(dispatch) = dispatch_by_id(conn, id.as_str()).await? {
            fleet.dispatches.insert(id, dispatch);
        }
    }
    Ok(())
}

// ---- drivers ------------------------------------------------------------------------------

macro_rules! driver_columns {
    () => {
        "id, name, car_number, phone, lat, lng, status, dispatch_id, version"
    };
}

pub async fn driver_by_id(conn: &mut Conn<'_>, id: &ClientId) -> Result<Option<Driver>, Error> {
    let row = query(concat!(
        "SELECT ",
        driver_columns!(),
        " FROM drivers WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(driver_from_row).transpose()
}

/// Every registered driver, or only those in `status`, ordered by id.
pub async fn drivers(
    conn: &mut Conn<'_>,
    status: Option<DriverStatus>,
) -> Result<Vec<Driver>, Error> {
    let rows = match status {
        Some(status) => {
            query(concat!(
                "SELECT ",
                driver_columns!(),
                " FROM drivers WHERE status = $1"
            ))
            .bind(status.as_str())
            .fetch_all(conn)
            .await?
        }
        None => {
            query(concat!("SELECT ", driver_columns!(), " FROM drivers"))
                .fetch_all(conn)
                .await?
        }
    };
    let mut drivers = rows
        .iter()
        .map(driver_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    // Sorted here rather than in SQL: PostgreSQL orders text by its collation, SQLite by bytes.
    drivers.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    Ok(drivers)
}

fn driver_from_row(row: &Row) -> Result<Driver, Error> {
    let id: String = row.try_get("id")?;
    let corrupt = || Error::Corrupt(format!("driver {id}"));
    Ok(Driver {
        id: ClientId::parse(&id).map_err(|_| corrupt())?,
        name: row.try_get("name")?,
        car_number: row.try_get("car_number")?,
        phone: row.try_get("phone")?,
        location: LatLng::parse(row.try_get("lat")?, row.try_get("lng")?).map_err(|_| corrupt())?,
        status: DriverStatus::parse(&row.try_get::<String, _>("status")?).ok_or_else(corrupt)?,
        dispatch_id: row
            .try_get::<Option<String>, _>("dispatch_id")?
            .map(DispatchId::from),
        version: row.try_get("version")?,
    })
}

async fn insert_driver(conn: &mut Conn<'_>, d: &Driver, now: Timestamp) -> Result<(), Error> {
    let done = query(
        "INSERT INTO drivers (id, name, car_number, phone, lat, lng, status, dispatch_id,
                              created_at, updated_at, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(d.id.as_str())
    .bind(&d.name)
    .bind(&d.car_number)
    .bind(&d.phone)
    .bind(d.location.lat)
    .bind(d.location.lng)
    .bind(d.status.as_str())
    .bind(d.dispatch_id.as_ref().map(DispatchId::as_str))
    .bind(now)
    .bind(now)
    .bind(d.version)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(DbError::Conflict(format!("driver {}", d.id)).into());
    }
    Ok(())
}

async fn update_driver(conn: &mut Conn<'_>, d: &mut Driver, now: Timestamp) -> Result<(), Error> {
    let done = query(
        "UPDATE drivers SET lat = $1, lng = $2, status = $3, dispatch_id = $4, updated_at = $5,
                            version = version + 1
         WHERE id = $6 AND version = $7",
    )
    .bind(d.location.lat)
    .bind(d.location.lng)
    .bind(d.status.as_str())
    .bind(d.dispatch_id.as_ref().map(DispatchId::as_str))
    .bind(now)
    .bind(d.id.as_str())
    .bind(d.version)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(DbError::Conflict(format!("driver {}", d.id)).into());
    }
    d.version += 1;
    Ok(())
}

// ---- dispatches ---------------------------------------------------------------------------

macro_rules! dispatch_columns {
    () => {
        "id, book_id, customer_id, card_token, pickup_name, pickup_lat, pickup_lng,
         dropoff_name, dropoff_lat, dropoff_lng, status, driver_id, offer_driver_id,
         offer_expires_at, eta_seconds, trip_path_m, distance_meters, fare, pay_id, pay_method,
         declined_card_token, declined_at, deadline_at, created_at, updated_at, version"
    };
}

pub async fn dispatch_by_id(conn: &mut Conn<'_>, id: &str) -> Result<Option<Dispatch>, Error> {
    let row = query(concat!(
        "SELECT ",
        dispatch_columns!(),
        " FROM dispatches WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(Some(dispatch_from_row(conn, &row).await?)),
        None => Ok(None),
    }
}

/// A booking has at most one dispatch.
pub async fn dispatch_for_book(
    conn: &mut Conn<'_>,
    book_id: &str,
) -> Result<Option<Dispatch>, Error> {
    let row = query(concat!(
        "SELECT ",
        dispatch_columns!(),
        " FROM dispatches WHERE book_id = $1"
    ))
    .bind(book_id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(Some(dispatch_from_row(conn, &row).await?)),
        None => Ok(None),
    }
}

/// The latest `limit` dispatches assigned to a driver, newest first.
pub async fn dispatches_for_driver(
    conn: &mut Conn<'_>,
    driver_id: &ClientId,
    limit: i64,
) -> Result<Vec<Dispatch>, Error> {
    let rows = query(concat!(
        "SELECT ",
        dispatch_columns!(),
        " FROM dispatches WHERE driver_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(driver_id.as_str())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut dispatches = Vec::with_capacity(rows.len());
    for row in &rows {
        dispatches.push(dispatch_from_row(conn, row).await?);
    }
    Ok(dispatches)
}

async fn dispatch_from_row(conn: &mut Conn<'_>, row: &Row) -> Result<Dispatch, Error> {
    let id: String = row.try_get("id")?;
    let columns = Columns { row, id: &id };
    let refused: Vec<String> =
        query_scalar("SELECT driver_id FROM dispatch_refusals WHERE dispatch_id = $1")
            .bind(&id)
            .fetch_all(&mut *conn)
            .await?;
    let refused = refused
        .iter()
        .map(|s| ClientId::parse(s).map_err(|_| columns.corrupt()))
        .collect::<Result<_, _>>()?;
    let status = row.try_get::<String, _>("status")?;
    let status = DispatchStatus::parse(&status).ok_or_else(|| columns.corrupt())?;
    Ok(Dispatch {
        book_id: row.try_get::<String, _>("book_id")?.into(),
        customer_id: row.try_get("customer_id")?,
        booking: columns.booking()?,
        stage: columns.stage(status)?,
        refused,
        deadline_at: row.try_get("deadline_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
        id: id.into(),
    })
}

/// A dispatch's row, read column group by column group: a group is there whole or not at all.
struct Columns<'r> {
    row: &'r Row,
    id: &'r str,
}

impl Columns<'_> {
    fn corrupt(&self) -> Error {
        Error::Corrupt(format!("dispatch {}", self.id))
    }

    fn client_id(&self, s: Option<&str>) -> Result<Option<ClientId>, Error> {
        s.map(|s| ClientId::parse(s).map_err(|_| self.corrupt()))
            .transpose()
    }

    fn place(&self, prefix: &str) -> Result<Option<Place>, Error> {
        let name: Option<String> = self.row.try_get(format!("{prefix}_name").as_str())?;
        let lat: Option<f64> = self.row.try_get(format!("{prefix}_lat").as_str())?;
        let lng: Option<f64> = self.row.try_get(format!("{prefix}_lng").as_str())?;
        let (Some(name), Some(lat), Some(lng)) = (name, lat, lng) else {
            return Ok(None);
        };
        let at = LatLng::parse(lat, lng).map_err(|_| self.corrupt())?;
        Ok(Some(Place { name, at }))
    }

    /// The stage `status` names, with what the row holds for it; a stage without what it must
    /// have (a trip without its driver, an ended one unpaid) is a corrupt row.
    fn stage(&self, status: DispatchStatus) -> Result<Stage, Error> {
        let ride = self.ride()?;
        let needed = |ride: Option<Ride>| ride.ok_or_else(|| self.corrupt());
        Ok(match status {
            DispatchStatus::Searching => Stage::Searching {
                offer: self.offer()?,
            },
            DispatchStatus::Dispatched => Stage::Dispatched(needed(ride)?),
            DispatchStatus::InTrip => Stage::InTrip(needed(ride)?),
            DispatchStatus::Ended => Stage::Ended {
                ride: needed(ride)?,
                trip: self.trip()?.ok_or_else(|| self.corrupt())?,
            },
            DispatchStatus::Cancelled => Stage::Cancelled { ride },
            DispatchStatus::Failed => Stage::Failed,
        })
    }

    /// The ride, when a driver accepted: their id and the promised arrival.
    fn ride(&self) -> Result<Option<Ride>, Error> {
        let driver = self.row.try_get::<Option<String>, _>("driver_id")?;
        let parts = (
            self.client_id(driver.as_deref())?,
            self.row.try_get::<Option<i64>, _>("eta_seconds")?,
        );
        let (Some(driver_id), Some(eta_seconds)) = parts else {
            return Ok(None);
        };
        Ok(Some(Ride {
            driver_id,
            eta_seconds,
            trip_path_m: self.row.try_get("trip_path_m")?,
            declined: self.declined()?,
        }))
    }

    fn booking(&self) -> Result<Option<Booking>, Error> {
        let parts = (
            self.row.try_get("card_token")?,
            self.place("pickup")?,
            self.place("dropoff")?,
        );
        Ok(match parts {
            (Some(card_token), Some(pickup), Some(dropoff)) => Some(Booking {
                card_token,
                pickup,
                dropoff,
            }),
            _ => None,
        })
    }

    fn offer(&self) -> Result<Option<Offer>, Error> {
        let driver = self.row.try_get::<Option<String>, _>("offer_driver_id")?;
        let parts = (
            self.client_id(driver.as_deref())?,
            self.row.try_get::<Option<i64>, _>("offer_expires_at")?,
        );
        Ok(match parts {
            (Some(driver_id), Some(expires_at)) => Some(Offer {
                driver_id,
                expires_at,
            }),
            _ => None,
        })
    }

    fn trip(&self) -> Result<Option<PaidTrip>, Error> {
        // Trips paid before the method was kept were all paid by card.
        let method = match self.row.try_get::<Option<String>, _>("pay_method")? {
            Some(m) => Settlement::parse(&m).ok_or_else(|| self.corrupt())?,
            None => Settlement::Card,
        };
        let parts = (
            self.row.try_get("distance_meters")?,
            self.row.try_get("fare")?,
            self.row.try_get("pay_id")?,
        );
        Ok(match parts {
            (Some(distance_meters), Some(fare), Some(pay_id)) => Some(PaidTrip {
                distance_meters,
                fare,
                pay_id,
                method,
            }),
            _ => None,
        })
    }

    fn declined(&self) -> Result<Option<Decline>, Error> {
        let parts = (
            self.row
                .try_get::<Option<String>, _>("declined_card_token")?,
            self.row.try_get::<Option<i64>, _>("declined_at")?,
        );
        Ok(match parts {
            (Some(card_token), Some(at)) => Some(Decline { card_token, at }),
            _ => None,
        })
    }
}

async fn insert_dispatch(conn: &mut Conn<'_>, d: &Dispatch) -> Result<(), Error> {
    let booking = d.booking.as_ref();
    let place = |pick: fn(&Booking) -> &Place| booking.map(pick);
    let (pickup, dropoff) = (place(|b| &b.pickup), place(|b| &b.dropoff));
    // A second dispatch for the same booking (a race) conflicts on book_id: retried, then ignored.
    let done = query(
        "INSERT INTO dispatches (id, book_id, customer_id, card_token, pickup_name, pickup_lat,
                                 pickup_lng, dropoff_name, dropoff_lat, dropoff_lng, status,
                                 deadline_at, created_at, updated_at, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT DO NOTHING",
    )
    .bind(d.id.as_str())
    .bind(d.book_id.as_str())
    .bind(&d.customer_id)
    .bind(booking.map(|b| b.card_token.as_str()))
    .bind(pickup.map(|p| p.name.as_str()))
    .bind(pickup.map(|p| p.at.lat))
    .bind(pickup.map(|p| p.at.lng))
    .bind(dropoff.map(|p| p.name.as_str()))
    .bind(dropoff.map(|p| p.at.lat))
    .bind(dropoff.map(|p| p.at.lng))
    .bind(d.status().as_str())
    .bind(d.deadline_at)
    .bind(d.created_at)
    .bind(d.updated_at)
    .bind(d.version)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(DbError::Conflict(format!("dispatch for booking {}", d.book_id)).into());
    }
    Ok(())
}

async fn update_dispatch(conn: &mut Conn<'_>, d: &mut Dispatch) -> Result<(), Error> {
    let trip = d.trip();
    let offer = d.offer();
    let declined = d.declined();
    let done = query(
        "UPDATE dispatches SET status = $1, driver_id = $2, offer_driver_id = $3,
                               offer_expires_at = $4, eta_seconds = $5, trip_path_m = $6,
                               distance_meters = $7, fare = $8, pay_id = $9, updated_at = $10,
                               card_token = $11, pay_method = $12, declined_card_token = $13,
                               declined_at = $14, version = version + 1
         WHERE id = $15 AND version = $16",
    )
    .bind(d.status().as_str())
    .bind(d.driver_id().map(ClientId::as_str))
    .bind(offer.map(|o| o.driver_id.as_str()))
    .bind(offer.map(|o| o.expires_at))
    .bind(d.eta_seconds())
    .bind(d.trip_path_m())
    .bind(trip.map(|t| t.distance_meters))
    .bind(trip.map(|t| t.fare))
    .bind(trip.map(|t| t.pay_id.as_str()))
    .bind(d.updated_at)
    .bind(d.booking.as_ref().map(|b| b.card_token.as_str()))
    .bind(trip.map(|t| t.method.as_str()))
    .bind(declined.map(|x| x.card_token.as_str()))
    .bind(declined.map(|x| x.at))
    .bind(d.id.as_str())
    .bind(d.version)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(DbError::Conflict(format!("dispatch {}", d.id)).into());
    }
    d.version += 1;
    Ok(())
}
