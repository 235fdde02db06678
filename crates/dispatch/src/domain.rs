//! The dispatch domain as a pure state machine: drivers, dispatches, offers, trips and fares.
//!
//! Book owns the customer's answer: a booking comes with the time it is answered by, dispatch
//! searches no longer than that, and when book says the booking expired dispatch closes whatever
//! it still had open for it. After a declined card the trip stays `IN_TRIP` until the customer's
//! new card is charged or the driver takes the fare in cash.
//!
//! A command touches one dispatch and the drivers around it, so the state is a [`Fleet`]: the store
//! loads the part a command needs, the tests hold all of it. [`decide`] checks a command against
//! that state and says what happens; [`apply`] makes it so. No I/O, no clock: time comes in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use tanda_core::Timestamp;
use tanda_core::geo::LatLng;
use tanda_core::id::ClientId;

/// Names one dispatch. Dispatch makes them; a client only ever hands one back.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct DispatchId(String);

/// Names a booking: book's id, as book's events carry it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct BookId(String);

macro_rules! string_id {
    ($ty:ident) => {
        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl From<String> for $ty {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
        impl From<&str> for $ty {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
        impl From<$ty> for String {
            fn from(id: $ty) -> String {
                id.0
            }
        }
        impl std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}
string_id!(DispatchId);
string_id!(BookId);

/// Seoul-style meter: `base` covers the first `base_distance_m`, then `unit_price` for every full
/// `unit_distance_m` (all in won and metres).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct Fare {
    /// Fare: base fare in won, covering the first --fare-base-distance metres.
    #[arg(
        global = true,
        long = "fare-base",
        env = "TANDA_FARE_BASE",
        default_value_t = 4800
    )]
    pub base: i64,
    /// Fare: metres covered by the base fare.
    #[arg(
        global = true,
        long = "fare-base-distance",
        env = "TANDA_FARE_BASE_DISTANCE",
        default_value_t = 1600
    )]
    pub base_distance_m: i64,
    /// Fare: metres per meter step after the base distance.
    #[arg(
        global = true,
        long = "fare-unit-distance",
        env = "TANDA_FARE_UNIT_DISTANCE",
        default_value_t = 131
    )]
    pub unit_distance_m: i64,
    /// Fare: won per meter step.
    #[arg(
        global = true,
        long = "fare-unit-price",
        env = "TANDA_FARE_UNIT_PRICE",
        default_value_t = 100
    )]
    pub unit_price: i64,
}

impl Default for Fare {
    fn default() -> Self {
        tanda_core::settings::defaults()
    }
}

impl Fare {
    /// `base + unit_price × floor(max(0, d − base_distance_m) / unit_distance_m)`.
    pub fn for_distance(&self, distance_m: i64) -> i64 {
        let beyond = (distance_m - self.base_distance_m).max(0);
        self.base + self.unit_price * (beyond / self.unit_distance_m.max(1))
    }
}

/// The distances a taxi meter could plausibly show at the end of a trip, in metres, built from
/// what dispatch knows rather than from what the driver says: the straight (great-circle) line
/// from pickup to drop-off, `s`, and the path of the locations the driver reported during the
/// trip, `p` (see [`Dispatch::trip_path_m`]). A reported `distanceMeters` outside it is refused.
///
/// - at least `s / 2 − 500 m` (never below 0): a road is never shorter than the straight line, and
///   half of it leaves room for a ride cut short;
/// - at most `max(2 × s, 1.25 × p) + 500 m`: city roads run up to about twice the straight line
///   (river crossings, one-way streets); a detour the driver reported is taken as driven, plus a
///   quarter for the bends a path of sampled points cuts short;
/// - the 500 m either way is slack for GPS noise and for where the passenger really got in and out.
///
/// A 10 km ride on an 8.8 km straight line fits ([3,889 m, 18,056 m]); 1,000 km does not, nor
/// does a 28 km detour unless the locations reported on the way show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistanceBand {
    pub min_m: i64,
    pub max_m: i64,
}

impl DistanceBand {
    /// Share of the straight line a trip drives at least.
    pub const MIN_SHARE: f64 = 0.5;
    /// How many times the straight line city roads may run.
    pub const ROAD_FACTOR: f64 = 2.0;
    /// Margin over the reported path.
    pub const PATH_MARGIN: f64 = 1.25;
    /// Slack either way, for GPS noise and the exact places of boarding and alighting.
    pub const SLACK_M: f64 = 500.0;

    /// The band for a trip whose pickup and drop-off are `straight_m` apart, whose driver
    /// reported a path of `path_m` (if any).
    pub fn around(straight_m: f64, path_m: Option<f64>) -> Self {
        let min = (straight_m * Self::MIN_SHARE - Self::SLACK_M).max(0.0);
        let driven = path_m.unwrap_or(0.0) * Self::PATH_MARGIN;
        let max = (straight_m * Self::ROAD_FACTOR).max(driven) + Self::SLACK_M;
        Self {
            min_m: min.floor() as i64,
            max_m: max.ceil() as i64,
        }
    }

    pub fn contains(self, distance_m: i64) -> bool {
        (self.min_m..=self.max_m).contains(&distance_m)
    }
}

/// The tunable parts of the rules: how long offers and searches last, the meter, and the speed
/// used to promise an arrival time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    pub offer_timeout: Duration,
    pub deadline: Duration,
    pub fare: Fare,
    pub speed_kmh: f64,
}

impl Rules {
    /// Seconds to drive from `from` to `to` in a straight line at the configured speed, rounded up.
    pub fn eta_seconds(&self, from: LatLng, to: LatLng) -> i64 {
        let metres_per_second = self.speed_kmh / 3.6;
        (from.distance_m(to) / metres_per_second).ceil() as i64
    }
}

fn after(now: Timestamp, d: Duration) -> Timestamp {
    now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverStatus {
    Offline,
    Available,
    Offered,
    Dispatched,
    InTrip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchStatus {
    Searching,
    Dispatched,
    InTrip,
    Ended,
    Cancelled,
    Failed,
}

/// The API names of statuses (`IN_TRIP`), both ways.
macro_rules! status_names {
    ($ty:ident { $($variant:ident = $name:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(Self::$variant),)* _ => None }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
status_names!(DriverStatus {
    Offline = "OFFLINE",
    Available = "AVAILABLE",
    Offered = "OFFERED",
    Dispatched = "DISPATCHED",
    InTrip = "IN_TRIP",
});
status_names!(DispatchStatus {
    Searching = "SEARCHING",
    Dispatched = "DISPATCHED",
    InTrip = "IN_TRIP",
    Ended = "ENDED",
    Cancelled = "CANCELLED",
    Failed = "FAILED",
});

#[derive(Debug, Clone, PartialEq)]
pub struct Driver {
    pub id: ClientId,
    pub name: String,
    pub car_number: String,
    pub phone: String,
    pub location: LatLng,
    pub status: DriverStatus,
    /// The dispatch this driver is offered or assigned (set exactly when `OFFERED`, `DISPATCHED`
    /// or `IN_TRIP`).
    pub dispatch_id: Option<DispatchId>,
    /// Optimistic concurrency; only the store reads it.
    pub version: i64,
}

/// A named place on the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub name: String,
    pub at: LatLng,
}

/// What a booking brought along: where to go and how to pay.
#[derive(Debug, Clone, PartialEq)]
pub struct Booking {
    pub card_token: String,
    pub pickup: Place,
    pub dropoff: Place,
}

/// The one driver a searching dispatch is currently offered to.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub driver_id: ClientId,
    pub expires_at: Timestamp,
}

/// How a trip's fare is paid: charged to the booking's card (the default), or in cash to the
/// driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Settlement {
    #[default]
    Card,
    Cash,
}

impl Settlement {
    pub fn as_str(self) -> &'static str {
        match self {
            Settlement::Card => tanda_catalog::taxi::CARD,
            Settlement::Cash => tanda_catalog::taxi::CASH,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            tanda_catalog::taxi::CARD => Some(Settlement::Card),
            tanda_catalog::taxi::CASH => Some(Settlement::Cash),
            _ => None,
        }
    }
}

/// What a paid trip was charged, and how it was paid.
#[derive(Debug, Clone, PartialEq)]
pub struct PaidTrip {
    pub distance_meters: i64,
    pub fare: i64,
    pub pay_id: String,
    pub method: Settlement,
}

/// The card charge last declined for a trip, and when: the customer is told once per card, not
/// at every retry of the driver's.
#[derive(Debug, Clone, PartialEq)]
pub struct Decline {
    pub card_token: String,
    pub at: Timestamp,
}

/// How long a declined card is not told about again.
pub const DECLINE_QUIET_MS: i64 = 60_000;

/// Why a dispatch was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The customer asked.
    Customer,
    /// The booking's answer came due before book heard of a taxi (`BookExpired`).
    Expired,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    pub id: DispatchId,
    pub book_id: BookId,
    pub customer_id: String,
    /// `None` only for a booking whose cancel arrived before the booking itself.
    pub booking: Option<Booking>,
    /// Where it is, with what it has there.
    pub stage: Stage,
    /// Drivers who declined or let an offer of this dispatch expire: never offered it again.
    pub refused: BTreeSet<ClientId>,
    /// When the search gives up: when the booking's answer is due.
    pub deadline_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Optimistic concurrency; only the store reads it.
    pub version: i64,
}

/// Where a dispatch is, carrying what it has there and nothing it cannot have: a search holds
/// at most an offer and no driver; a trip has its driver; only an ended one has been paid.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Looking for a driver; `offer` while one is considering it.
    Searching { offer: Option<Offer> },
    /// A driver accepted and is on the way to the pickup.
    Dispatched(Ride),
    /// The customer is on board.
    InTrip(Ride),
    /// Paid, by card or in cash.
    Ended { ride: Ride, trip: PaidTrip },
    /// Called off (by the customer, or its answer came due); `ride` when a driver had accepted.
    Cancelled { ride: Option<Ride> },
    /// Nobody accepted by the deadline.
    Failed,
}

/// A dispatch's ride, from the moment its driver accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Ride {
    pub driver_id: ClientId,
    /// The arrival time promised when the driver accepted.
    pub eta_seconds: i64,
    /// Metres along the locations the driver reported during the trip: from the pickup through
    /// each location reported while `IN_TRIP`, in straight lines. `None` until the first such
    /// report. What the server knows of the road actually driven (see [`DistanceBand`]).
    pub trip_path_m: Option<f64>,
    /// The card charge last declined while `IN_TRIP`.
    pub declined: Option<Decline>,
}

impl Ride {
    fn accepted(driver_id: ClientId, eta_seconds: i64) -> Self {
        Self {
            driver_id,
            eta_seconds,
            trip_path_m: None,
            declined: None,
        }
    }
}

impl Stage {
    pub fn status(&self) -> DispatchStatus {
        match self {
            Stage::Searching { .. } => DispatchStatus::Searching,
            Stage::Dispatched(_) => DispatchStatus::Dispatched,
            Stage::InTrip(_) => DispatchStatus::InTrip,
            Stage::Ended { .. } => DispatchStatus::Ended,
            Stage::Cancelled { .. } => DispatchStatus::Cancelled,
            Stage::Failed => DispatchStatus::Failed,
        }
    }

    /// The ride, once a driver accepted (kept when it is cancelled).
    pub fn ride(&self) -> Option<&Ride> {
        match self {
            Stage::Dispatched(ride) | Stage::InTrip(ride) | Stage::Ended { ride, .. } => Some(ride),
            Stage::Cancelled { ride } => ride.as_ref(),
            Stage::Searching { .. } | Stage::Failed => None,
        }
    }

    /// The offer a driver is considering, while searching.
    pub fn offer(&self) -> Option<&Offer> {
        match self {
            Stage::Searching { offer } => offer.as_ref(),
            _ => None,
        }
    }
}

impl Dispatch {
    /// A dispatch of `book_id` as first stored at `now`: searching, for no booking yet, due now.
    fn new(id: String, book_id: BookId, customer_id: String, now: Timestamp) -> Self {
        Self {
            id: id.into(),
            book_id,
            customer_id,
            booking: None,
            stage: Stage::Searching { offer: None },
            refused: BTreeSet::new(),
            deadline_at: now,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    pub fn status(&self) -> DispatchStatus {
        self.stage.status()
    }

    pub fn offer(&self) -> Option<&Offer> {
        self.stage.offer()
    }

    /// The driver who accepted.
    pub fn driver_id(&self) -> Option<&ClientId> {
        self.stage.ride().map(|r| &r.driver_id)
    }

    pub fn eta_seconds(&self) -> Option<i64> {
        self.stage.ride().map(|r| r.eta_seconds)
    }

    pub fn trip_path_m(&self) -> Option<f64> {
        self.stage.ride().and_then(|r| r.trip_path_m)
    }

    pub fn declined(&self) -> Option<&Decline> {
        self.stage.ride().and_then(|r| r.declined.as_ref())
    }

    /// How the trip was paid, once it ended.
    pub fn trip(&self) -> Option<&PaidTrip> {
        match &self.stage {
            Stage::Ended { trip, .. } => Some(trip),
            _ => None,
        }
    }

    /// Searching, nobody holds its offer, and there is still time to find someone.
    pub fn wants_driver(&self, now: Timestamp) -> bool {
        matches!(self.stage, Stage::Searching { offer: None })
            && self.booking.is_some()
            && now < self.deadline_at
    }

    fn offered_to(&self, driver_id: &ClientId) -> bool {
        self.offer().is_some_and(|o| o.driver_id == *driver_id)
    }

    /// Moves to the stage `next` makes of the present one.
    fn advance(&mut self, next: impl FnOnce(Stage) -> Stage) {
        let present = std::mem::replace(&mut self.stage, Stage::Failed);
        self.stage = next(present);
    }
}

/// The drivers and dispatches a command works on (all of them in tests, the loaded few in the
/// service).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fleet {
    pub drivers: BTreeMap<ClientId, Driver>,
    pub dispatches: BTreeMap<DispatchId, Dispatch>,
}

impl Fleet {
    pub fn dispatch_for_book(&self, book_id: &str) -> Option<&Dispatch> {
        self.dispatches
            .values()
            .find(|d| d.book_id.as_str() == book_id)
    }

    fn driver(&self, id: &ClientId) -> Result<&Driver, Rejection> {
        self.drivers
            .get(id)
            .ok_or_else(|| Rejection::UnknownDriver(id.clone()))
    }

    fn dispatch(&self, id: &str) -> Result<&Dispatch, Rejection> {
        self.dispatches
            .get(id)
            .ok_or_else(|| Rejection::UnknownDispatch(id.to_owned()))
    }
}

#[derive(Debug, Clone)]
pub struct NewDriver {
    pub id: ClientId,
    pub name: String,
    pub car_number: String,
    pub phone: String,
    pub location: LatLng,
}

pub struct NewDispatch {
    pub id: DispatchId,
    pub book_id: BookId,
    pub customer_id: String,
    pub booking: Booking,
    /// When book answers the customer; `None` for a booking of before book set it (dispatch then
    /// searches for its own deadline from now).
    pub answer_by: Option<Timestamp>,
}

pub enum Command {
    RegisterDriver(NewDriver),
    MoveDriver {
        driver_id: ClientId,
        location: LatLng,
    },
    GoOnline {
        driver_id: ClientId,
    },
    GoOffline {
        driver_id: ClientId,
    },
    /// A booking came in (a second one for the same booking changes nothing).
    Open(NewDispatch),
    /// Matching picked this driver for this dispatch.
    Offer {
        dispatch_id: DispatchId,
        driver_id: ClientId,
    },
    Accept {
        dispatch_id: DispatchId,
        driver_id: ClientId,
    },
    Decline {
        dispatch_id: DispatchId,
        driver_id: ClientId,
    },
    /// The offer timer of the offer to `driver_id` fired.
    ExpireOffer {
        dispatch_id: DispatchId,
        driver_id: ClientId,
    },
    /// The dispatch deadline timer fired.
    Deadline {
        dispatch_id: DispatchId,
    },
    Start {
        dispatch_id: DispatchId,
        driver_id: ClientId,
    },
    /// The trip was paid (see [`meter`]); record it.
    End {
        dispatch_id: DispatchId,
        driver_id: ClientId,
        trip: PaidTrip,
    },
    /// The customer cancelled. `unseen_id` names the dispatch recorded if the booking itself
    /// has not arrived yet.
    Cancel {
        book_id: BookId,
        customer_id: String,
        unseen_id: String,
    },
    /// Book answered the customer "no taxi" (`BookExpired`): nothing may stay open for it.
    Expire {
        book_id: BookId,
    },
    /// The customer replaced the booking's card.
    ReplaceCard {
        book_id: BookId,
        card_token: String,
    },
    /// Charging `card_token` the trip's `fare` was declined for `reason`.
    RecordDecline {
        dispatch_id: DispatchId,
        driver_id: ClientId,
        card_token: String,
        fare: i64,
        reason: String,
    },
}

/// How a command names the dispatch it touches.
pub enum DispatchRef<'a> {
    Id(&'a str),
    Book(&'a str),
}

impl Command {
    /// The dispatch and the driver the store must load for this command (the drivers and the
    /// dispatch those point at come along).
    pub fn targets(&self) -> (Option<DispatchRef<'_>>, Option<&ClientId>) {
        use Command::*;
        match self {
            RegisterDriver(d) => (None, Some(&d.id)),
            MoveDriver { driver_id, .. } | GoOnline { driver_id } | GoOffline { driver_id } => {
                (None, Some(driver_id))
            }
            Open(d) => (Some(DispatchRef::Book(d.book_id.as_str())), None),
            Cancel { book_id, .. } | Expire { book_id } | ReplaceCard { book_id, .. } => {
                (Some(DispatchRef::Book(book_id.as_str())), None)
            }
            Deadline { dispatch_id } => (Some(DispatchRef::Id(dispatch_id.as_str())), None),
            Offer {
                dispatch_id,
                driver_id,
            }
            | Accept {
                dispatch_id,
                driver_id,
            }
            | Decline {
                dispatch_id,
                driver_id,
            }
            | ExpireOffer {
                dispatch_id,
                driver_id,
            }
            | Start {
                dispatch_id,
                driver_id,
            }
            | End {
                dispatch_id,
                driver_id,
                ..
            }
            | RecordDecline {
                dispatch_id,
                driver_id,
                ..
            } => (Some(DispatchRef::Id(dispatch_id.as_str())), Some(driver_id)),
        }
    }
}

/// What happened. Each event changes the dispatch and the drivers it names, together.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    DriverRegistered(Driver),
    DriverMoved {
        driver_id: ClientId,
        location: LatLng,
    },
    DriverOnline {
        driver_id: ClientId,
    },
    DriverOffline {
        driver_id: ClientId,
    },
    DispatchOpened(Dispatch),
    Offered {
        dispatch_id: DispatchId,
        driver_id: ClientId,
        expires_at: Timestamp,
    },
    OfferDeclined {
        dispatch_id: DispatchId,
        driver_id: ClientId,
    },
    OfferExpired {
        dispatch_id: DispatchId,
        driver_id: ClientId,
    },
    Dispatched {
        dispatch_id: DispatchId,
        driver_id: ClientId,
        eta_seconds: i64,
    },
    TripStarted {
        dispatch_id: DispatchId,
        driver_id: ClientId,
    },
    /// The driver reported a location during the trip: its path is now `path_m` metres long.
    TripPathExtended {
        dispatch_id: DispatchId,
        path_m: f64,
    },
    TripEnded {
        dispatch_id: DispatchId,
        driver_id: ClientId,
        trip: PaidTrip,
    },
    /// Cancelled (`reason`); `driver_id` is the driver set free, if any.
    Cancelled {
        dispatch_id: DispatchId,
        driver_id: Option<ClientId>,
        reason: CancelReason,
    },
    /// The booking's card was replaced: the trip is charged to this token from now on.
    CardReplaced {
        dispatch_id: DispatchId,
        card_token: String,
    },
    /// Charging the trip was declined; the customer is told.
    PaymentDeclined {
        dispatch_id: DispatchId,
        driver_id: ClientId,
        fare: i64,
        reason: String,
        decline: Decline,
    },
    /// A cancel arrived before its booking: the booking is recorded as cancelled.
    CancelledUnseen(Dispatch),
    CancelRejected {
        dispatch_id: DispatchId,
    },
    /// Nobody accepted before the deadline; `driver_id` is the driver whose offer lapsed with it.
    Failed {
        dispatch_id: DispatchId,
        driver_id: Option<ClientId>,
    },
}

/// Why a command was refused. Nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("no driver {0}")]
    UnknownDriver(ClientId),
    #[error("no dispatch {0}")]
    UnknownDispatch(String),
    #[error("driver {0} is already registered")]
    DriverExists(ClientId),
    #[error("driver {0} is {1}: finish the ride first")]
    DriverBusy(ClientId, DriverStatus),
    #[error("dispatch {0} is not offered to driver {1}")]
    NotOffered(String, ClientId),
    #[error("the offer of dispatch {0} to driver {1} has expired")]
    OfferExpired(String, ClientId),
    #[error("dispatch {0} is {1}")]
    DispatchClosed(String, DispatchStatus),
    #[error("driver {1} is not the driver of dispatch {0}")]
    NotAssigned(String, ClientId),
    #[error("dispatch {0} is {1}: a trip starts only once its taxi is dispatched")]
    NotDispatched(String, DispatchStatus),
    #[error("dispatch {0} is {1}: only a trip in progress can end")]
    NotInTrip(String, DispatchStatus),
    #[error("the trip of dispatch {0} has already ended")]
    AlreadyEnded(String),
    #[error("dispatch {0} is not looking for a driver")]
    NotSearching(String),
    #[error("driver {0} is not available")]
    DriverUnavailable(ClientId),
    #[error("driver {1} already turned down dispatch {0}")]
    AlreadyRefused(String, ClientId),
    #[error("{}", implausible(*reported, *straight_m, *path_m, *band))]
    ImplausibleDistance {
        reported: i64,
        straight_m: i64,
        path_m: Option<i64>,
        band: DistanceBand,
    },
}

fn implausible(reported: i64, straight_m: i64, path_m: Option<i64>, band: DistanceBand) -> String {
    let driven = path_m
        .map(|p| format!(" and {p} m along the locations reported on the way"))
        .unwrap_or_default();
    format!(
        "distanceMeters {reported} is implausible for this trip ({straight_m} m from pickup to \
         drop-off in a straight line{driven}): it can be {} to {} m",
        band.min_m, band.max_m
    )
}

impl Rejection {
    /// The problem `code` clients see.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownDriver(_) | Self::UnknownDispatch(_) => "not_found",
            Self::DriverExists(_) => "driver_exists",
            Self::DriverBusy(..) => "driver_busy",
            Self::NotOffered(..) => "not_offered",
            Self::OfferExpired(..) => "offer_expired",
            Self::DispatchClosed(..) => "dispatch_closed",
            Self::NotAssigned(..) => "not_assigned",
            Self::NotDispatched(..) => "not_dispatched",
            Self::NotInTrip(..) => "not_in_trip",
            Self::AlreadyEnded(_) => "already_ended",
            Self::NotSearching(_) => "not_searching",
            Self::DriverUnavailable(_) => "driver_unavailable",
            Self::AlreadyRefused(..) => "already_refused",
            Self::ImplausibleDistance { .. } => "implausible_distance",
        }
    }
}

/// Checks `command` against `fleet` at `now`. Reactions to events and timers that no longer apply
/// decide nothing (an empty list); a client's command that does not apply is a [`Rejection`].
pub fn decide(
    fleet: &Fleet,
    rules: &Rules,
    command: Command,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    match command {
        Command::RegisterDriver(new) => register(fleet, new),
        Command::MoveDriver {
            driver_id,
            location,
        } => move_driver(fleet, driver_id, location),
        Command::GoOnline { driver_id } => match fleet.driver(&driver_id)?.status {
            DriverStatus::Offline => Ok(vec![Event::DriverOnline { driver_id }]),
            _ => Ok(vec![]),
        },
        Command::GoOffline { driver_id } => go_offline(fleet, driver_id),
        Command::Open(new) => Ok(open(fleet, rules, new, now)),
        Command::Offer {
            dispatch_id,
            driver_id,
        } => offer(fleet, rules, dispatch_id, driver_id, now),
        Command::Accept {
            dispatch_id,
            driver_id,
        } => accept(fleet, rules, dispatch_id, driver_id, now),
        Command::Decline {
            dispatch_id,
            driver_id,
        } => decline(fleet, dispatch_id, driver_id),
        Command::ExpireOffer {
            dispatch_id,
            driver_id,
        } => match fleet.dispatches.get(&dispatch_id) {
            Some(d) if d.offered_to(&driver_id) => Ok(vec![Event::OfferExpired {
                dispatch_id,
                driver_id,
            }]),
            _ => Ok(vec![]),
        },
        Command::Deadline { dispatch_id } => match fleet.dispatches.get(&dispatch_id) {
            Some(d) if d.status() == DispatchStatus::Searching => Ok(vec![Event::Failed {
                driver_id: d.offer().map(|o| o.driver_id.clone()),
                dispatch_id,
            }]),
            _ => Ok(vec![]),
        },
        Command::Start {
            dispatch_id,
            driver_id,
        } => start(fleet, dispatch_id, driver_id),
        Command::End {
            dispatch_id,
            driver_id,
            trip,
        } => end(fleet, dispatch_id, driver_id, trip),
        Command::Cancel {
            book_id,
            customer_id,
            unseen_id,
        } => Ok(cancel_booking(fleet, book_id, customer_id, unseen_id, now)),
        Command::Expire { book_id } => Ok(expire(fleet, book_id.as_str())),
        Command::ReplaceCard {
            book_id,
            card_token,
        } => Ok(replace_card(fleet, book_id.as_str(), card_token)),
        Command::RecordDecline {
            dispatch_id,
            driver_id,
            card_token,
            fare,
            reason,
        } => Ok(record_decline(
            fleet,
            (dispatch_id, driver_id),
            (card_token, fare, reason),
            now,
        )),
    }
}

/// The driver turns the offer down.
fn decline(
    fleet: &Fleet,
    dispatch_id: DispatchId,
    driver_id: ClientId,
) -> Result<Vec<Event>, Rejection> {
    if !open_dispatch(fleet, dispatch_id.as_str())?.offered_to(&driver_id) {
        return Err(Rejection::NotOffered(dispatch_id.into(), driver_id));
    }
    Ok(vec![Event::OfferDeclined {
        dispatch_id,
        driver_id,
    }])
}

/// The trip ends, paid as `trip` says.
fn end(
    fleet: &Fleet,
    dispatch_id: DispatchId,
    driver_id: ClientId,
    trip: PaidTrip,
) -> Result<Vec<Event>, Rejection> {
    check_can_end(fleet, dispatch_id.as_str(), &driver_id)?;
    Ok(vec![Event::TripEnded {
        dispatch_id,
        driver_id,
        trip,
    }])
}

/// Charging the card (its token, the fare, the reason) was declined: the customer is told,
/// unless the trip cannot end now, the card is no longer the trip's, or they were just told.
fn record_decline(
    fleet: &Fleet,
    (dispatch_id, driver_id): (DispatchId, ClientId),
    (card_token, fare, reason): (String, i64, String),
    now: Timestamp,
) -> Vec<Event> {
    let Ok(dispatch) = check_can_end(fleet, dispatch_id.as_str(), &driver_id) else {
        return vec![];
    };
    if !worth_telling(dispatch, &card_token, now) {
        return vec![];
    }
    let decline = Decline {
        card_token,
        at: now,
    };
    vec![Event::PaymentDeclined {
        dispatch_id,
        driver_id,
        fare,
        reason,
        decline,
    }]
}

fn register(fleet: &Fleet, new: NewDriver) -> Result<Vec<Event>, Rejection> {
    if fleet.drivers.contains_key(&new.id) {
        return Err(Rejection::DriverExists(new.id));
    }
    Ok(vec![Event::DriverRegistered(Driver {
        id: new.id,
        name: new.name,
        car_number: new.car_number,
        phone: new.phone,
        location: new.location,
        status: DriverStatus::Offline,
        dispatch_id: None,
        version: 0,
    })])
}

fn move_driver(
    fleet: &Fleet,
    driver_id: ClientId,
    location: LatLng,
) -> Result<Vec<Event>, Rejection> {
    let extended = trip_path_to(fleet, fleet.driver(&driver_id)?, location);
    let moved = Event::DriverMoved {
        driver_id,
        location,
    };
    Ok(std::iter::once(moved).chain(extended).collect())
}

fn go_offline(fleet: &Fleet, driver_id: ClientId) -> Result<Vec<Event>, Rejection> {
    let driver = fleet.driver(&driver_id)?;
    match (driver.status, &driver.dispatch_id) {
        (DriverStatus::Offline, _) => Ok(vec![]),
        (DriverStatus::Available, _) => Ok(vec![Event::DriverOffline { driver_id }]),
        // Going offline with an offer in hand turns it down.
        (DriverStatus::Offered, Some(dispatch_id)) => Ok(vec![
            Event::OfferDeclined {
                dispatch_id: dispatch_id.clone(),
                driver_id: driver_id.clone(),
            },
            Event::DriverOffline { driver_id },
        ]),
        (status, _) => Err(Rejection::DriverBusy(driver_id, status)),
    }
}

/// A booking heard of opens its dispatch, searching until the booking's answer is due (once per
/// booking: a redelivered one opens nothing).
fn open(fleet: &Fleet, rules: &Rules, new: NewDispatch, now: Timestamp) -> Vec<Event> {
    if fleet.dispatch_for_book(new.book_id.as_str()).is_some() {
        return vec![];
    }
    let deadline_at = new.answer_by.unwrap_or_else(|| after(now, rules.deadline));
    let mut dispatch = Dispatch::new(new.id.clone().into(), new.book_id, new.customer_id, now);
    dispatch.booking = Some(new.booking);
    dispatch.deadline_at = deadline_at;
    let opened = Event::DispatchOpened(dispatch);
    // Heard of after the customer's answer was due (book has said "no taxi"): recorded as failed
    // at once, offered to nobody.
    if now >= deadline_at {
        let failed = Event::Failed {
            dispatch_id: new.id,
            driver_id: None,
        };
        return vec![opened, failed];
    }
    vec![opened]
}

fn offer(
    fleet: &Fleet,
    rules: &Rules,
    dispatch_id: DispatchId,
    driver_id: ClientId,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    let dispatch = fleet.dispatch(dispatch_id.as_str())?;
    if !dispatch.wants_driver(now) {
        return Err(Rejection::NotSearching(dispatch_id.into()));
    }
    if fleet.driver(&driver_id)?.status != DriverStatus::Available {
        return Err(Rejection::DriverUnavailable(driver_id));
    }
    if dispatch.refused.contains(&driver_id) {
        return Err(Rejection::AlreadyRefused(dispatch_id.into(), driver_id));
    }
    // An offer never outlives the search it belongs to.
    let expires_at = after(now, rules.offer_timeout).min(dispatch.deadline_at);
    Ok(vec![Event::Offered {
        dispatch_id,
        driver_id,
        expires_at,
    }])
}

fn accept(
    fleet: &Fleet,
    rules: &Rules,
    dispatch_id: DispatchId,
    driver_id: ClientId,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    let dispatch = open_dispatch(fleet, dispatch_id.as_str())?;
    let (Some(offer), Some(booking)) = (dispatch.offer(), &dispatch.booking) else {
        return Err(Rejection::NotOffered(dispatch_id.into(), driver_id));
    };
    if offer.driver_id != driver_id {
        return Err(Rejection::NotOffered(dispatch_id.into(), driver_id));
    }
    if now >= offer.expires_at {
        return Err(Rejection::OfferExpired(dispatch_id.into(), driver_id));
    }
    let eta_seconds = rules.eta_seconds(fleet.driver(&driver_id)?.location, booking.pickup.at);
    Ok(vec![Event::Dispatched {
        dispatch_id,
        driver_id,
        eta_seconds,
    }])
}

fn start(
    fleet: &Fleet,
    dispatch_id: DispatchId,
    driver_id: ClientId,
) -> Result<Vec<Event>, Rejection> {
    let dispatch = open_dispatch(fleet, dispatch_id.as_str())?;
    if dispatch.status() == DispatchStatus::Searching {
        return Err(Rejection::NotDispatched(
            dispatch_id.into(),
            dispatch.status(),
        ));
    }
    if dispatch.driver_id() != Some(&driver_id) {
        return Err(Rejection::NotAssigned(dispatch_id.into(), driver_id));
    }
    if dispatch.status() != DispatchStatus::Dispatched {
        return Err(Rejection::NotDispatched(
            dispatch_id.into(),
            dispatch.status(),
        ));
    }
    Ok(vec![Event::TripStarted {
        dispatch_id,
        driver_id,
    }])
}

/// The customer cancels: a search or a taxi on its way is called off, a trip under way or done
/// is not, and a cancel heard before its booking is recorded (`unseen_id`) so the booking, when
/// it comes, opens nothing.
fn cancel_booking(
    fleet: &Fleet,
    book_id: BookId,
    customer_id: String,
    unseen_id: String,
    now: Timestamp,
) -> Vec<Event> {
    let Some(dispatch) = fleet.dispatch_for_book(book_id.as_str()) else {
        let mut unseen = Dispatch::new(unseen_id, book_id, customer_id, now);
        unseen.stage = Stage::Cancelled { ride: None };
        return vec![Event::CancelledUnseen(unseen)];
    };
    let dispatch_id = dispatch.id.clone();
    match dispatch.status() {
        DispatchStatus::Searching | DispatchStatus::Dispatched => {
            vec![cancel(dispatch, CancelReason::Customer)]
        }
        DispatchStatus::InTrip | DispatchStatus::Ended => {
            vec![Event::CancelRejected { dispatch_id }]
        }
        DispatchStatus::Cancelled | DispatchStatus::Failed => vec![],
    }
}

/// Whether the customer is told that `card_token` was declined: it is still the trip's card (not
/// one replaced meanwhile), and they were not just told of it.
fn worth_telling(dispatch: &Dispatch, card_token: &str, now: Timestamp) -> bool {
    let current = dispatch.booking.as_ref().map(|b| b.card_token.as_str());
    let told = dispatch
        .declined()
        .is_some_and(|d| d.card_token == card_token && now - d.at < DECLINE_QUIET_MS);
    current == Some(card_token) && !told
}

/// Cancels a searching or dispatched `dispatch`, freeing whoever holds its offer or drives it.
fn cancel(dispatch: &Dispatch, reason: CancelReason) -> Event {
    let driver_id = match &dispatch.stage {
        Stage::Searching { offer } => offer.as_ref().map(|o| o.driver_id.clone()),
        stage => stage.ride().map(|r| r.driver_id.clone()),
    };
    Event::Cancelled {
        dispatch_id: dispatch.id.clone(),
        driver_id,
        reason,
    }
}

/// Book answered "no taxi": a search is called off, and a taxi that accepted too late for book
/// to hear of it is called back. A trip already under way (its driver started before this was
/// heard) is left to finish: a customer on board is never cancelled.
fn expire(fleet: &Fleet, book_id: &str) -> Vec<Event> {
    match fleet.dispatch_for_book(book_id) {
        Some(d)
            if matches!(
                d.status(),
                DispatchStatus::Searching | DispatchStatus::Dispatched
            ) =>
        {
            vec![cancel(d, CancelReason::Expired)]
        }
        _ => vec![],
    }
}

/// The booking's new card, for a trip that has yet to be paid.
fn replace_card(fleet: &Fleet, book_id: &str, card_token: String) -> Vec<Event> {
    let Some(d) = fleet.dispatch_for_book(book_id) else {
        return vec![];
    };
    let open = matches!(
        d.status(),
        DispatchStatus::Searching | DispatchStatus::Dispatched | DispatchStatus::InTrip
    );
    match &d.booking {
        Some(b) if open && b.card_token != card_token => vec![Event::CardReplaced {
            dispatch_id: d.id.clone(),
            card_token,
        }],
        _ => vec![],
    }
}

/// A driver in a trip reported `to`: the trip's path, extended by the straight line from where
/// it last was (the pickup, before the first report) to `to`. `None` for a driver in no trip.
fn trip_path_to(fleet: &Fleet, driver: &Driver, to: LatLng) -> Option<Event> {
    if driver.status != DriverStatus::InTrip {
        return None;
    }
    let dispatch = fleet
        .dispatches
        .get(driver.dispatch_id.as_ref()?.as_str())?;
    if dispatch.status() != DispatchStatus::InTrip || dispatch.driver_id() != Some(&driver.id) {
        return None;
    }
    let (from, so_far) = match dispatch.trip_path_m() {
        Some(path_m) => (driver.location, path_m),
        None => (dispatch.booking.as_ref()?.pickup.at, 0.0),
    };
    Some(Event::TripPathExtended {
        dispatch_id: dispatch.id.clone(),
        path_m: so_far + from.distance_m(to),
    })
}

/// The dispatch, unless it was cancelled or failed.
fn open_dispatch<'f>(fleet: &'f Fleet, dispatch_id: &str) -> Result<&'f Dispatch, Rejection> {
    let dispatch = fleet.dispatch(dispatch_id)?;
    match dispatch.status() {
        DispatchStatus::Cancelled | DispatchStatus::Failed => Err(Rejection::DispatchClosed(
            dispatch_id.to_owned(),
            dispatch.status(),
        )),
        _ => Ok(dispatch),
    }
}

fn check_can_end<'f>(
    fleet: &'f Fleet,
    dispatch_id: &str,
    driver_id: &ClientId,
) -> Result<&'f Dispatch, Rejection> {
    let dispatch = open_dispatch(fleet, dispatch_id)?;
    let id = || dispatch_id.to_owned();
    if dispatch.status() == DispatchStatus::Searching {
        return Err(Rejection::NotInTrip(id(), dispatch.status()));
    }
    if dispatch.driver_id() != Some(driver_id) {
        return Err(Rejection::NotAssigned(id(), driver_id.clone()));
    }
    match dispatch.status() {
        DispatchStatus::InTrip => Ok(dispatch),
        DispatchStatus::Ended => Err(Rejection::AlreadyEnded(id())),
        status => Err(Rejection::NotInTrip(id(), status)),
    }
}

/// What ending a trip will charge, and to which card: priced before the card is charged, on the
/// driver's reported distance if it is plausible ([`DistanceBand`]), else the great-circle
/// distance from pickup to drop-off. Without a reported distance the reported path is not used,
/// even when longer: it keeps growing while the driver reports locations, and a trip's fare must
/// come out the same on every attempt to end it (pay refuses a second amount for a paid trip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub book_id: BookId,
    pub customer_id: String,
    pub distance_meters: i64,
    pub amount: i64,
    pub card_token: String,
}

pub fn charge(
    fleet: &Fleet,
    rules: &Rules,
    dispatch_id: &str,
    driver_id: &ClientId,
    reported_distance_m: Option<i64>,
) -> Result<Charge, Rejection> {
    let dispatch = check_can_end(fleet, dispatch_id, driver_id)?;
    let Some(booking) = &dispatch.booking else {
        return Err(Rejection::NotInTrip(
            dispatch_id.to_owned(),
            dispatch.status(),
        ));
    };
    let straight_m = booking.pickup.at.distance_m(booking.dropoff.at);
    let distance_meters = match reported_distance_m {
        Some(reported) => {
            let band = DistanceBand::around(straight_m, dispatch.trip_path_m());
            if !band.contains(reported) {
                return Err(Rejection::ImplausibleDistance {
                    reported,
                    straight_m: straight_m.round() as i64,
                    path_m: dispatch.trip_path_m().map(|p| p.round() as i64),
                    band,
                });
            }
            reported
        }
        None => straight_m.round() as i64,
    };
    Ok(Charge {
        book_id: dispatch.book_id.clone(),
        customer_id: dispatch.customer_id.clone(),
        distance_meters,
        amount: rules.fare.for_distance(distance_meters),
        card_token: booking.card_token.clone(),
    })
}

/// Makes `event` so. Total: an event about something not in `fleet` changes nothing there.
pub fn apply(fleet: &mut Fleet, event: &Event) {
    apply_to_drivers(&mut fleet.drivers, event);
    apply_to_dispatches(&mut fleet.dispatches, event);
}

/// What an event does to the driver it names: where they are, or their status and the dispatch
/// they are on.
fn apply_to_drivers(drivers: &mut BTreeMap<ClientId, Driver>, event: &Event) {
    use DriverStatus::{Available, Dispatched, InTrip, Offered, Offline};
    let (driver_id, status, dispatch_id) = match event {
        Event::DriverRegistered(driver) => {
            drivers.insert(driver.id.clone(), driver.clone());
            return;
        }
        Event::DriverMoved {
            driver_id,
            location,
        } => {
            if let Some(d) = drivers.get_mut(driver_id) {
                d.location = *location;
            }
            return;
        }
        Event::DriverOnline { driver_id } => (driver_id, Available, None),
        Event::DriverOffline { driver_id } => (driver_id, Offline, None),
        Event::Offered {
            dispatch_id,
            driver_id,
            ..
        } => (driver_id, Offered, Some(dispatch_id)),
        Event::OfferDeclined { driver_id, .. }
        | Event::OfferExpired { driver_id, .. }
        | Event::TripEnded { driver_id, .. } => (driver_id, Available, None),
        Event::Dispatched {
            dispatch_id,
            driver_id,
            ..
        } => (driver_id, Dispatched, Some(dispatch_id)),
        Event::TripStarted {
            dispatch_id,
            driver_id,
        } => (driver_id, InTrip, Some(dispatch_id)),
        // The driver set free, if there was one.
        Event::Cancelled {
            driver_id: Some(driver_id),
            ..
        }
        | Event::Failed {
            driver_id: Some(driver_id),
            ..
        } => (driver_id, Available, None),
        _ => return,
    };
    if let Some(d) = drivers.get_mut(driver_id) {
        d.status = status;
        d.dispatch_id = dispatch_id.cloned();
    }
}

/// What an event does to the dispatch it names.
fn apply_to_dispatches(dispatches: &mut BTreeMap<DispatchId, Dispatch>, event: &Event) {
    let id = match event {
        Event::DispatchOpened(dispatch) | Event::CancelledUnseen(dispatch) => {
            dispatches.insert(dispatch.id.clone(), dispatch.clone());
            return;
        }
        Event::Offered { dispatch_id, .. }
        | Event::OfferDeclined { dispatch_id, .. }
        | Event::OfferExpired { dispatch_id, .. }
        | Event::Dispatched { dispatch_id, .. }
        | Event::TripStarted { dispatch_id, .. }
        | Event::TripPathExtended { dispatch_id, .. }
        | Event::TripEnded { dispatch_id, .. }
        | Event::Cancelled { dispatch_id, .. }
        | Event::Failed { dispatch_id, .. }
        | Event::CardReplaced { dispatch_id, .. }
        | Event::PaymentDeclined { dispatch_id, .. } => dispatch_id,
        Event::DriverRegistered(_)
        | Event::DriverMoved { .. }
        | Event::DriverOnline { .. }
        | Event::DriverOffline { .. }
        | Event::CancelRejected { .. } => return,
    };
    let Some(d) = dispatches.get_mut(id) else {
        return;
    };
    match event {
        Event::Offered {
            driver_id,
            expires_at,
            ..
        } => {
            if let Stage::Searching { offer } = &mut d.stage {
                *offer = Some(Offer {
                    driver_id: driver_id.clone(),
                    expires_at: *expires_at,
                });
            }
        }
        Event::OfferDeclined { driver_id, .. } | Event::OfferExpired { driver_id, .. } => {
            if let Stage::Searching { offer } = &mut d.stage {
                *offer = None;
            }
            d.refused.insert(driver_id.clone());
        }
        Event::Dispatched {
            driver_id,
            eta_seconds,
            ..
        } => d.stage = Stage::Dispatched(Ride::accepted(driver_id.clone(), *eta_seconds)),
        Event::TripStarted { .. } => d.advance(|stage| match stage {
            Stage::Dispatched(ride) => Stage::InTrip(ride),
            other => other,
        }),
        Event::TripPathExtended { path_m, .. } => {
            if let Stage::InTrip(ride) = &mut d.stage {
                ride.trip_path_m = Some(*path_m);
            }
        }
        Event::TripEnded { trip, .. } => d.advance(|stage| match stage {
            Stage::InTrip(ride) => Stage::Ended {
                ride,
                trip: trip.clone(),
            },
            other => other,
        }),
        Event::Cancelled { .. } => d.advance(|stage| Stage::Cancelled {
            ride: stage.ride().cloned(),
        }),
        Event::Failed { .. } => d.stage = Stage::Failed,
        Event::CardReplaced { card_token, .. } => {
            if let Some(b) = d.booking.as_mut() {
                b.card_token = card_token.clone();
            }
        }
        Event::PaymentDeclined { decline, .. } => {
            if let Stage::InTrip(ride) = &mut d.stage {
                ride.declined = Some(decline.clone());
            }
        }
        _ => {}
    }
}

/// Who needs matching after a change from `before` to `after`: dispatches left looking for a
/// driver (offer them to the nearest available driver who has not refused them), and drivers who
/// just became available (offer them the oldest waiting dispatch they have not refused).
#[derive(Debug, Default, PartialEq)]
pub struct ToMatch {
    pub dispatches: Vec<DispatchId>,
    pub drivers: Vec<ClientId>,
}

pub fn to_match(before: &Fleet, after: &Fleet, now: Timestamp) -> ToMatch {
    let dispatches = after
        .dispatches
        .values()
        .filter(|d| d.wants_driver(now) && before.dispatches.get(&d.id) != Some(*d))
        .map(|d| d.id.clone())
        .collect();
    let drivers = after
        .drivers
        .values()
        .filter(|d| {
            d.status == DriverStatus::Available
                && before.drivers.get(&d.id).map(|b| b.status) != Some(DriverStatus::Available)
        })
        .map(|d| d.id.clone())
        .collect();
    ToMatch {
        dispatches,
        drivers,
    }
}

#[cfg(test)]
mod tests;
