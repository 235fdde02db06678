//! The HTTP edge (API.md "Drivers" and "Dispatches"): each request is parsed into domain types,
//! run as one command, and answered with the resource or a problem.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use tanda_catalog::taxi::pay::PayRequest;
use tanda_core::auth::{Caller, Role};
use tanda_core::clock::rfc3339;
use tanda_core::geo::{InvalidLatLng, LatLng};
use tanda_core::http::{IdempotencyKey, Json, Path, Query};
use tanda_core::id::ClientId;
use tanda_core::sql::Conn;
use tanda_core::{Db, Problem};

use crate::domain::{
    self, Command, Dispatch, Driver, DriverStatus, Fleet, NewDriver, PaidTrip, Rejection,
};
use crate::error::Error;
use crate::payment::Payments;
use crate::store::{self, Store, catalog_place};

/// Where `POST /drivers` keeps its `Idempotency-Key` responses.
const REGISTER_SCOPE: &str = "dispatch.drivers";
const MAX_DISTANCE_M: i64 = 1_000_000;
/// The most dispatches `GET /dispatches?driverId=` answers with.
const DRIVER_DISPATCHES: i64 = 100;

pub struct App {
    pub db: Db,
    pub store: Arc<Store>,
    pub payments: Payments,
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/drivers", get(list_drivers).post(register_driver))
        .route("/drivers/{driver_id}", get(get_driver))
        .route("/drivers/{driver_id}/location", put(move_driver))
        .route("/drivers/{driver_id}/online", post(go_online))
        .route("/drivers/{driver_id}/offline", post(go_offline))
        .route("/drivers/{driver_id}/offers", get(offers))
        .route("/dispatches", get(list_dispatches))
        .route("/dispatches/{dispatch_id}", get(get_dispatch))
        .route("/dispatches/{dispatch_id}/accept", post(accept))
        .route("/dispatches/{dispatch_id}/decline", post(decline))
        .route("/dispatches/{dispatch_id}/start", post(start))
        .route("/dispatches/{dispatch_id}/end", post(end))
        .with_state(Arc::new(app))
}

type AppState = State<Arc<App>>;

impl App {
    /// Runs a command in its own unit of work, again if it lost a race.
    async fn run(&self, command: impl Fn() -> Command) -> Result<Fleet, Error> {
        let command = &command;
        Db::retry_on_conflict(|| async move {
            let mut uow = self.db.begin().await?;
            let fleet = self.store.execute(&mut uow, command(), None).await?;
            uow.commit().await?;
            Ok(fleet)
        })
        .await
    }

    fn read(&self) -> Conn<'_> {
        self.db.reader().into()
    }
}

// ---- requests -----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterDriverBody {
    /// The driver registering (a driver registers only themselves; an operator names whom).
    driver_id: Option<String>,
    name: String,
    car_number: String,
    phone: String,
    location: LatLngBody,
}

#[derive(Deserialize)]
struct LatLngBody {
    lat: f64,
    lng: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DriverBody {
    /// Omitted or the caller: a driver acts only as themselves; an operator names the driver.
    driver_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndBody {
    driver_id: Option<String>,
    #[serde(default)]
    distance_meters: Option<serde_json::Number>,
}

#[derive(Deserialize)]
struct DriversQuery {
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DispatchesQuery {
    book_id: Option<String>,
    driver_id: Option<String>,
}

fn driver_id(raw: &str) -> Result<ClientId, Problem> {
    ClientId::parse(raw)
        .map_err(|e| Problem::bad_request("invalid_driver_id", format!("driverId {e}")))
}

/// The driver a command is done as: the caller, or whom an operator names (403 otherwise).
fn acting_driver(caller: &Caller, named: Option<&str>) -> Result<ClientId, Problem> {
    let named = named.map(driver_id).transpose()?;
    caller.act_as(Role::Driver, named.as_ref())
}

/// The driver of a path a driver acts on (403 when it is someone else).
fn own_driver(caller: &Caller, raw: &str) -> Result<ClientId, Problem> {
    acting_driver(caller, Some(raw))
}

/// The driver of a path a driver reads: someone else's is as good as unknown (404).
fn readable_driver(caller: &Caller, raw: &str) -> Result<ClientId, Problem> {
    let id = driver_id(raw)?;
    if caller.may_read(Role::Driver, id.as_str()) {
        Ok(id)
    } else {
        Err(Problem::not_found("driver", id.as_str()))
    }
}

/// Who may see a dispatch: the customer whose booking it serves, the driver it is offered to or
/// assigned to, and operators.
fn may_see(caller: &Caller, dispatch: &Dispatch) -> bool {
    let is_driver = |id: &ClientId| caller.may_read(Role::Driver, id.as_str());
    caller.may_read(Role::Customer, &dispatch.customer_id)
        || dispatch.driver_id.as_ref().is_some_and(is_driver)
        || dispatch
            .offer
            .as_ref()
            .is_some_and(|o| is_driver(&o.driver_id))
}

fn driver_status(raw: &str) -> Result<DriverStatus, Problem> {
    DriverStatus::parse(raw).ok_or_else(|| {
        Problem::bad_request(
            "invalid_status",
            "status must be one of OFFLINE, AVAILABLE, OFFERED, DISPATCHED, IN_TRIP",
        )
    })
}

fn location(body: &LatLngBody) -> Result<LatLng, Problem> {
    LatLng::parse(body.lat, body.lng).map_err(|e| {
        let code = match e {
            InvalidLatLng::Lat => "invalid_lat",
            InvalidLatLng::Lng => "invalid_lng",
        };
        Problem::bad_request(code, e.to_string())
    })
}

/// Trimmed free text of 1..=`max` characters without control characters.
fn text(field: &str, code: &str, raw: &str, max: usize) -> Result<String, Problem> {
    let value = raw.trim();
    let len = value.chars().count();
    if len == 0 || len > max || value.chars().any(char::is_control) {
        return Err(Problem::bad_request(
            code,
            format!("{field} must be 1-{max} characters of text"),
        ));
    }
    Ok(value.to_owned())
}

fn phone(raw: &str) -> Result<String, Problem> {
    let value = raw.trim();
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let allowed = |c: char| c.is_ascii_digit() || " +-()".contains(c);
    if !(3..=15).contains(&digits) || value.len() > 20 || !value.chars().all(allowed) {
        return Err(Problem::bad_request(
            "invalid_phone",
            "phone must be 3-15 digits, optionally with spaces, '+', '-', '(' and ')'",
        ));
    }
    Ok(value.to_owned())
}

fn distance(raw: &serde_json::Number) -> Result<i64, Problem> {
    raw.as_i64()
        .filter(|d| (0..=MAX_DISTANCE_M).contains(d))
        .ok_or_else(|| {
            Problem::bad_request(
                "invalid_distance_meters",
                format!(
                    "distanceMeters must be a whole number of metres from 0 to {MAX_DISTANCE_M}"
                ),
            )
        })
}

// ---- responses ----------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DriverView {
    driver_id: String,
    name: String,
    car_number: String,
    phone: String,
    location: LatLng,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dispatch_id: Option<String>,
}

impl From<&Driver> for DriverView {
    fn from(d: &Driver) -> Self {
        Self {
            driver_id: d.id.to_string(),
            name: d.name.clone(),
            car_number: d.car_number.clone(),
            phone: d.phone.clone(),
            location: d.location,
            status: d.status.as_str(),
            dispatch_id: d.dispatch_id.clone(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DispatchView {
    dispatch_id: String,
    book_id: String,
    customer_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    driver_id: Option<String>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    eta_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fare: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pay_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    distance_meters: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pickup: Option<tanda_catalog::Place>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dropoff: Option<tanda_catalog::Place>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offer: Option<OfferHolder>,
    deadline_at: String,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OfferHolder {
    driver_id: String,
    expires_at: String,
}

impl From<&Dispatch> for DispatchView {
    fn from(d: &Dispatch) -> Self {
        let trip = d.trip.as_ref();
        Self {
            dispatch_id: d.id.clone(),
            book_id: d.book_id.clone(),
            customer_id: d.customer_id.clone(),
            driver_id: d.driver_id.as_ref().map(ClientId::to_string),
            status: d.status.as_str(),
            eta_seconds: d.eta_seconds,
            fare: trip.map(|t| t.fare),
            pay_id: trip.map(|t| t.pay_id.clone()),
            distance_meters: trip.map(|t| t.distance_meters),
            pickup: d.booking.as_ref().map(|b| catalog_place(&b.pickup)),
            dropoff: d.booking.as_ref().map(|b| catalog_place(&b.dropoff)),
            offer: d.offer.as_ref().map(|o| OfferHolder {
                driver_id: o.driver_id.to_string(),
                expires_at: rfc3339(o.expires_at),
            }),
            deadline_at: rfc3339(d.deadline_at),
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

/// An offer as the driver holding it sees it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OfferView {
    dispatch_id: String,
    book_id: String,
    pickup: tanda_catalog::Place,
    dropoff: tanda_catalog::Place,
    expires_at: String,
}

fn driver_in(fleet: &Fleet, id: &ClientId) -> Result<Json<DriverView>, Problem> {
    fleet
        .drivers
        .get(id)
        .map(|d| Json(d.into()))
        .ok_or_else(|| Problem::not_found("driver", id.as_str()))
}

fn dispatch_in(fleet: &Fleet, id: &str) -> Result<Json<DispatchView>, Problem> {
    fleet
        .dispatches
        .get(id)
        .map(|d| Json(d.into()))
        .ok_or_else(|| Problem::not_found("dispatch", id))
}

// ---- drivers ------------------------------------------------------------------------------

async fn register_driver(
    caller: Caller,
    State(app): AppState,
    IdempotencyKey(key): IdempotencyKey,
    Json(request): Json<serde_json::Value>,
) -> Result<Response, Problem> {
    let body: RegisterDriverBody = serde_json::from_value(request.clone())
        .map_err(|e| Problem::bad_request("invalid_body", e.to_string()))?;
    let new = NewDriver {
        id: acting_driver(&caller, body.driver_id.as_deref())?,
        name: text("name", "invalid_name", &body.name, 100)?,
        car_number: text("carNumber", "invalid_car_number", &body.car_number, 20)?,
        phone: phone(&body.phone)?,
        location: location(&body.location)?,
    };
    let (app, key, request, new) = (&app, &key, &request, &new);
    let response = Db::retry_on_conflict(|| async move {
        let mut uow = app.db.begin().await?;
        if let Some(key) = key
            && let Some(stored) = uow
                .idempotent_response(REGISTER_SCOPE, key, request)
                .await?
        {
            return Ok(stored.into_response());
        }
        let fleet = app
            .store
            .execute(&mut uow, Command::RegisterDriver(new.clone()), None)
            .await?;
        let driver = fleet
            .drivers
            .get(&new.id)
            .ok_or_else(|| Rejection::UnknownDriver(new.id.clone()))?;
        let body =
            serde_json::to_value(DriverView::from(driver)).expect("a driver view serializes");
        if let Some(key) = key {
            uow.save_idempotent_response(REGISTER_SCOPE, key, request, 201, &body)
                .await?;
        }
        uow.commit().await?;
        Ok::<_, Error>((StatusCode::CREATED, Json(body)).into_response())
    })
    .await?;
    Ok(response)
}

async fn list_drivers(
    caller: Caller,
    State(app): AppState,
    Query(query): Query<DriversQuery>,
) -> Result<Json<Vec<DriverView>>, Problem> {
    caller.require_operator()?;
    let status = query.status.as_deref().map(driver_status).transpose()?;
    let drivers = store::drivers(&mut app.read(), status).await?;
    Ok(Json(drivers.iter().map(DriverView::from).collect()))
}

async fn get_driver(
    caller: Caller,
    State(app): AppState,
    Path(id): Path<String>,
) -> Result<Json<DriverView>, Problem> {
    let id = readable_driver(&caller, &id)?;
    let driver = store::driver_by_id(&mut app.read(), &id).await?;
    driver
        .map(|d| Json((&d).into()))
        .ok_or_else(|| Problem::not_found("driver", id.as_str()))
}

async fn move_driver(
    caller: Caller,
    State(app): AppState,
    Path(id): Path<String>,
    Json(body): Json<LatLngBody>,
) -> Result<Json<DriverView>, Problem> {
    let driver_id = own_driver(&caller, &id)?;
    let location = location(&body)?;
    let fleet = app
        .run(|| Command::MoveDriver {
            driver_id: driver_id.clone(),
            location,
        })
        .await?;
    driver_in(&fleet, &driver_id)
}

async fn go_online(
    caller: Caller,
    State(app): AppState,
    Path(id): Path<String>,
) -> Result<Json<DriverView>, Problem> {
    let driver_id = own_driver(&caller, &id)?;
    let fleet = app
        .run(|| Command::GoOnline {
            driver_id: driver_id.clone(),
        })
        .await?;
    driver_in(&fleet, &driver_id)
}

async fn go_offline(
    caller: Caller,
    State(app): AppState,
    Path(id): Path<String>,
) -> Result<Json<DriverView>, Problem> {
    let driver_id = own_driver(&caller, &id)?;
    let fleet = app
        .run(|| Command::GoOffline {
            driver_id: driver_id.clone(),
        })
        .await?;
    driver_in(&fleet, &driver_id)
}

/// The offer the driver holds now: none, or one that has not expired yet.
async fn offers(
    caller: Caller,
    State(app): AppState,
    Path(id): Path<String>,
) -> Result<Json<Vec<OfferView>>, Problem> {
    let id = readable_driver(&caller, &id)?;
    let mut conn = app.read();
    let driver = store::driver_by_id(&mut conn, &id)
        .await?
        .ok_or_else(|| Problem::not_found("driver", id.as_str()))?;
    let dispatch = match (&driver.status, &driver.dispatch_id) {
        (DriverStatus::Offered, Some(dispatch_id)) => {
            store::dispatch_by_id(&mut conn, dispatch_id).await?
        }
        _ => None,
    };
    let now = app.db.now();
    let offer = dispatch.and_then(|d| {
        let (offer, booking) = (d.offer.as_ref()?, d.booking.as_ref()?);
        (offer.driver_id == id && now < offer.expires_at).then(|| OfferView {
            dispatch_id: d.id.clone(),
            book_id: d.book_id.clone(),
            pickup: catalog_place(&booking.pickup),
            dropoff: catalog_place(&booking.dropoff),
            expires_at: rfc3339(offer.expires_at),
        })
    });
    Ok(Json(offer.into_iter().collect()))
}

// ---- dispatches ---------------------------------------------------------------------------

async fn get_dispatch(
    caller: Caller,
    State(app): AppState,
    Path(id): Path<String>,
) -> Result<Json<DispatchView>, Problem> {
    let dispatch = store::dispatch_by_id(&mut app.read(), &id).await?;
    dispatch
        .filter(|d| may_see(&caller, d))
        .map(|d| Json((&d).into()))
        .ok_or_else(|| Problem::not_found("dispatch", &id))
}

/// A booking's dispatch, or the latest dispatches a driver was assigned to: exactly one filter.
/// An empty parameter counts as not given.
async fn list_dispatches(
    caller: Caller,
    State(app): AppState,
    Query(query): Query<DispatchesQuery>,
) -> Result<Json<Vec<DispatchView>>, Problem> {
    let given = |value: Option<String>| value.filter(|v| !v.is_empty());
    let mut conn = app.read();
    let dispatches = match (given(query.book_id), given(query.driver_id)) {
        (Some(book_id), None) => store::dispatch_for_book(&mut conn, &book_id)
            .await?
            .into_iter()
            .collect(),
        (None, Some(raw)) => {
            let id = own_driver(&caller, &raw)?;
            store::dispatches_for_driver(&mut conn, &id, DRIVER_DISPATCHES).await?
        }
        // The code predates `driverId`; clients already match on it.
        (None, None) => {
            return Err(Problem::bad_request(
                "missing_book_id",
                "give bookId or driverId",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(Problem::bad_request(
                "ambiguous_filter",
                "give bookId or driverId, not both",
            ));
        }
    };
    let visible = dispatches.iter().filter(|d| may_see(&caller, d));
    Ok(Json(visible.map(DispatchView::from).collect()))
}

async fn accept(
    caller: Caller,
    State(app): AppState,
    Path(dispatch_id): Path<String>,
    Json(body): Json<DriverBody>,
) -> Result<Json<DispatchView>, Problem> {
    let driver_id = acting_driver(&caller, body.driver_id.as_deref())?;
    let fleet = app
        .run(|| Command::Accept {
            dispatch_id: dispatch_id.clone(),
            driver_id: driver_id.clone(),
        })
        .await?;
    dispatch_in(&fleet, &dispatch_id)
}

async fn decline(
    caller: Caller,
    State(app): AppState,
    Path(dispatch_id): Path<String>,
    Json(body): Json<DriverBody>,
) -> Result<Json<DispatchView>, Problem> {
    let driver_id = acting_driver(&caller, body.driver_id.as_deref())?;
    let fleet = app
        .run(|| Command::Decline {
            dispatch_id: dispatch_id.clone(),
            driver_id: driver_id.clone(),
        })
        .await?;
    dispatch_in(&fleet, &dispatch_id)
}

async fn start(
    caller: Caller,
    State(app): AppState,
    Path(dispatch_id): Path<String>,
    Json(body): Json<DriverBody>,
) -> Result<Json<DispatchView>, Problem> {
    let driver_id = acting_driver(&caller, body.driver_id.as_deref())?;
    let fleet = app
        .run(|| Command::Start {
            dispatch_id: dispatch_id.clone(),
            driver_id: driver_id.clone(),
        })
        .await?;
    dispatch_in(&fleet, &dispatch_id)
}

/// Prices the trip on committed state, charges it outside any transaction (a slow pay never
/// holds the database), and only then records the trip as ended — if it still is in progress.
async fn end(
    caller: Caller,
    State(app): AppState,
    Path(dispatch_id): Path<String>,
    Json(body): Json<EndBody>,
) -> Result<Json<DispatchView>, Problem> {
    let driver_id = acting_driver(&caller, body.driver_id.as_deref())?;
    let reported = body.distance_meters.as_ref().map(distance).transpose()?;
    let mut fleet = Fleet::default();
    if let Some(d) = store::dispatch_by_id(&mut app.read(), &dispatch_id).await? {
        fleet.dispatches.insert(d.id.clone(), d);
    }
    let charge = domain::charge(
        &fleet,
        app.store.rules(),
        &dispatch_id,
        &driver_id,
        reported,
    )
    .map_err(Error::from)?;
    let pay = app
        .payments
        .pay(&PayRequest {
            book_id: charge.book_id,
            customer_id: charge.customer_id,
            dispatch_id: dispatch_id.clone(),
            amount: charge.amount,
            card_token: charge.card_token,
        })
        .await?;
    // The fare is the one computed here; `Payments::pay` returns only a payment of that amount.
    let trip = PaidTrip {
        distance_meters: charge.distance_meters,
        fare: charge.amount,
        pay_id: pay.pay_id,
    };
    let fleet = app
        .run(|| Command::End {
            dispatch_id: dispatch_id.clone(),
            driver_id: driver_id.clone(),
            trip: trip.clone(),
        })
        .await?;
    dispatch_in(&fleet, &dispatch_id)
}
