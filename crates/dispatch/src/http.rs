//! The HTTP edge (API.md "Drivers" and "Dispatches"): each request is parsed into domain types,
//! run as one command, and answered with the resource or a problem.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tanda_core::auth::{Caller, Role};
use tanda_core::clock::rfc3339;
use tanda_core::geo::{InvalidLatLng, LatLng};
use tanda_core::http::{IdempotencyKey, Json, Path, Query};
use tanda_core::id::ClientId;
use tanda_core::phone::Phone;
use tanda_core::sql::Conn;
use tanda_core::{Db, Problem};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{
    self, Command, Dispatch, Driver, DriverStatus, Fleet, NewDriver, Rejection, Settlement,
};
use crate::error::Error;
use crate::payment::Payments;
use crate::store::{self, Store};
use crate::trip_end::{TripEnd, end_trip};

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
    routes().with_state(Arc::new(app)).into()
}

/// The operations `router` serves, documented.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(list_drivers, register_driver))
        .routes(routes!(get_driver))
        .routes(routes!(move_driver))
        .routes(routes!(go_online))
        .routes(routes!(go_offline))
        .routes(routes!(offers))
        .routes(routes!(list_dispatches))
        .routes(routes!(get_dispatch))
        .routes(routes!(accept))
        .routes(routes!(decline))
        .routes(routes!(start))
        .routes(routes!(end))
}

type AppState = State<Arc<App>>;

impl App {
    /// Runs a command in its own unit of work, again if it lost a race.
    async fn run(&self, command: impl Fn() -> Command) -> Result<Fleet, Error> {
        self.store.run(&self.db, command).await
    }

    fn read(&self) -> Conn<'_> {
        self.db.reader().into()
    }
}

// ---- requests -----------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RegisterDriverBody {
    /// The driver registering (a driver registers only themselves; an operator names whom).
    driver_id: Option<String>,
    /// 1–100 characters.
    name: String,
    /// 1–20 characters.
    car_number: String,
    /// 3–15 digits, optionally with spaces, `+`, `-`, `(` and `)`.
    phone: String,
    /// Where the driver is now.
    location: LatLngBody,
}

/// A WGS84 position.
#[derive(Deserialize, ToSchema)]
#[schema(as = LatLng)]
struct LatLngBody {
    #[schema(minimum = -90, maximum = 90)]
    lat: f64,
    #[schema(minimum = -180, maximum = 180)]
    lng: f64,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DriverBody {
    /// Omitted or the caller: a driver acts only as themselves; an operator names the driver.
    driver_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EndBody {
    /// Omitted or the caller: a driver acts only as themselves; an operator names the driver.
    driver_id: Option<String>,
    /// The distance driven, in metres. Omitted: the straight line from pickup to drop-off.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 1000000)]
    distance_meters: Option<serde_json::Number>,
    /// How the fare is paid: `CARD` (omitted: charged to the booking's card) or `CASH` (the
    /// customer paid the driver; nothing is charged). Any JSON value here, so that anything else
    /// gets its own problem.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "CARD")]
    settlement: Option<serde_json::Value>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DriversQuery {
    /// Only drivers in this status: `OFFLINE`, `AVAILABLE`, `OFFERED`, `DISPATCHED` or `IN_TRIP`.
    status: Option<String>,
}

/// Exactly one of `bookId` and `driverId` (an empty one counts as not given).
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct DispatchesQuery {
    /// The booking whose dispatch to answer with.
    book_id: Option<String>,
    /// The driver whose latest dispatches (at most 100, newest first) to answer with; a driver
    /// names only themselves.
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
        || dispatch.driver_id().is_some_and(is_driver)
        || dispatch.offer().is_some_and(|o| is_driver(&o.driver_id))
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
    Phone::parse(raw)
        .map(Phone::into_string)
        .map_err(|e| Problem::bad_request("invalid_phone", format!("phone {e}")))
}

fn settlement(raw: &serde_json::Value) -> Result<Settlement, Problem> {
    raw.as_str().and_then(Settlement::parse).ok_or_else(|| {
        Problem::bad_request(
            "invalid_settlement",
            "settlement must be CARD (the default) or CASH",
        )
    })
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

/// A driver.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DriverView {
    driver_id: String,
    name: String,
    car_number: String,
    phone: String,
    #[schema(value_type = LatLngBody)]
    location: LatLng,
    /// `OFFLINE`, `AVAILABLE`, `OFFERED`, `DISPATCHED` or `IN_TRIP`.
    #[schema(example = "AVAILABLE")]
    status: &'static str,
    /// The dispatch offered to or assigned to the driver (when `OFFERED`, `DISPATCHED` or
    /// `IN_TRIP`).
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
            dispatch_id: d.dispatch_id.clone().map(String::from),
        }
    }
}

/// A booking's search for a taxi, and then its trip.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DispatchView {
    dispatch_id: String,
    book_id: String,
    customer_id: String,
    /// The driver who accepted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    driver_id: Option<String>,
    /// `SEARCHING`, `DISPATCHED`, `IN_TRIP`, `ENDED`, `CANCELLED` or `FAILED`.
    #[schema(example = "DISPATCHED")]
    status: &'static str,
    /// The promised time for the taxi to reach the pickup, once dispatched.
    #[serde(skip_serializing_if = "Option::is_none")]
    eta_seconds: Option<i64>,
    /// Won, once the trip ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    fare: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pay_id: Option<String>,
    /// How the fare was paid, once the trip ended: `CARD` or `CASH`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "CARD")]
    payment_method: Option<&'static str>,
    /// The distance charged, once the trip ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    distance_meters: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pickup: Option<PlaceView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dropoff: Option<PlaceView>,
    /// The offer open now, while `SEARCHING`.
    #[serde(skip_serializing_if = "Option::is_none")]
    offer: Option<OfferHolder>,
    /// Where the taxi is now, while it drives to the pickup and during the trip (`DISPATCHED`
    /// or `IN_TRIP`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<LatLngBody>)]
    taxi_location: Option<LatLng>,
    /// When the search for a driver gives up.
    #[schema(format = DateTime)]
    deadline_at: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// Whom a dispatch is offered to now, and until when.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct OfferHolder {
    driver_id: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

#[derive(Serialize, ToSchema)]
struct PlaceView {
    name: String,
    lat: f64,
    lng: f64,
}

impl From<&domain::Place> for PlaceView {
    fn from(place: &domain::Place) -> Self {
        Self {
            name: place.name.clone(),
            lat: place.at.lat,
            lng: place.at.lng,
        }
    }
}

impl From<&Dispatch> for DispatchView {
    fn from(d: &Dispatch) -> Self {
        let trip = d.trip();
        Self {
            dispatch_id: d.id.clone().into(),
            book_id: d.book_id.clone().into(),
            customer_id: d.customer_id.clone(),
            driver_id: d.driver_id().map(ClientId::to_string),
            status: d.status().as_str(),
            eta_seconds: d.eta_seconds(),
            fare: trip.map(|t| t.fare),
            pay_id: trip.map(|t| t.pay_id.clone()),
            payment_method: trip.map(|t| t.method.as_str()),
            distance_meters: trip.map(|t| t.distance_meters),
            pickup: d.booking.as_ref().map(|b| PlaceView::from(&b.pickup)),
            dropoff: d.booking.as_ref().map(|b| PlaceView::from(&b.dropoff)),
            offer: d.offer().map(|o| OfferHolder {
                driver_id: o.driver_id.to_string(),
                expires_at: rfc3339(o.expires_at),
            }),
            taxi_location: None,
            deadline_at: rfc3339(d.deadline_at),
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

/// An offer as the driver holding it sees it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct OfferView {
    dispatch_id: String,
    book_id: String,
    pickup: PlaceView,
    dropoff: PlaceView,
    /// Accept before then, or the offer goes to the next driver.
    #[schema(format = DateTime)]
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
        .map(|d| {
            let mut view = DispatchView::from(d);
            view.taxi_location = taxi_of(d)
                .and_then(|driver| fleet.drivers.get(driver))
                .map(|driver| driver.location);
            Json(view)
        })
        .ok_or_else(|| Problem::not_found("dispatch", id))
}

/// The driver whose position a dispatch shows: its taxi, on the way to the pickup or on the trip.
fn taxi_of(d: &Dispatch) -> Option<&ClientId> {
    matches!(
        d.status(),
        domain::DispatchStatus::Dispatched | domain::DispatchStatus::InTrip
    )
    .then_some(d.driver_id())
    .flatten()
}

/// A dispatch as answered, with where its taxi is now (read from the driver's row).
async fn view_with_taxi(conn: &mut Conn<'_>, d: &Dispatch) -> Result<DispatchView, Error> {
    let mut view = DispatchView::from(d);
    if let Some(driver) = taxi_of(d) {
        view.taxi_location = store::driver_by_id(conn, driver).await?.map(|t| t.location);
    }
    Ok(view)
}

// ---- drivers ------------------------------------------------------------------------------

/// Registers a driver, `OFFLINE`.
///
/// A driver registers themselves; an operator names whom.
#[utoipa::path(post, path = "/drivers",
    security(("bearer" = ["driver"])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "The same key again returns the first answer and registers nothing new")),
    request_body(content = RegisterDriverBody, example = json!({
        "name": "Park Jisoo", "carNumber": "12가3456", "phone": "010-9876-5432",
        "location": {"lat": 37.4979, "lng": 127.0276}
    })),
    responses(
        (status = CREATED, description = "Registered (or the first answer to this Idempotency-Key)",
            body = DriverView),
        (status = CONFLICT, description = "`driver_exists`: this driver is already registered",
            body = Problem, content_type = "application/problem+json"),
    ))]
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

/// Every driver, optionally only those in one status.
#[utoipa::path(get, path = "/drivers", params(DriversQuery),
    responses((status = OK, description = "The drivers", body = Vec<DriverView>)))]
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

/// A driver.
#[utoipa::path(get, path = "/drivers/{driverId}", security(("bearer" = ["driver"])),
    params(("driverId" = String, Path)),
    responses((status = OK, description = "The driver", body = DriverView)))]
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

/// Reports where the driver is now.
#[utoipa::path(put, path = "/drivers/{driverId}/location", security(("bearer" = ["driver"])),
    params(("driverId" = String, Path)),
    request_body(content = LatLngBody, example = json!({"lat": 37.5665, "lng": 126.9780})),
    responses((status = OK, description = "The driver, moved", body = DriverView)))]
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

/// Goes on line: `AVAILABLE` for offers (already on line: no change).
#[utoipa::path(post, path = "/drivers/{driverId}/online", security(("bearer" = ["driver"])),
    params(("driverId" = String, Path)),
    responses((status = OK, description = "The driver", body = DriverView)))]
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

/// Goes off line, turning down an offer in hand; not during a trip.
#[utoipa::path(post, path = "/drivers/{driverId}/offline", security(("bearer" = ["driver"])),
    params(("driverId" = String, Path)),
    responses(
        (status = OK, description = "The driver, `OFFLINE`", body = DriverView),
        (status = CONFLICT, description = "`driver_busy`: the driver is on a dispatch or a trip",
            body = Problem, content_type = "application/problem+json"),
    ))]
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
#[utoipa::path(get, path = "/drivers/{driverId}/offers", security(("bearer" = ["driver"])),
    params(("driverId" = String, Path)),
    responses((status = OK, description = "At most one offer", body = Vec<OfferView>)))]
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
            store::dispatch_by_id(&mut conn, dispatch_id.as_str()).await?
        }
        _ => None,
    };
    let now = app.db.now();
    let offer = dispatch.and_then(|d| {
        let (offer, booking) = (d.offer()?, d.booking.as_ref()?);
        (offer.driver_id == id && now < offer.expires_at).then(|| OfferView {
            dispatch_id: d.id.clone().into(),
            book_id: d.book_id.clone().into(),
            pickup: PlaceView::from(&booking.pickup),
            dropoff: PlaceView::from(&booking.dropoff),
            expires_at: rfc3339(offer.expires_at),
        })
    });
    Ok(Json(offer.into_iter().collect()))
}

// ---- dispatches ---------------------------------------------------------------------------

/// A dispatch: its customer's, or the driver's it is offered to or assigned to.
#[utoipa::path(get, path = "/dispatches/{dispatchId}", security(("bearer" = ["customer", "driver"])),
    params(("dispatchId" = String, Path)),
    responses((status = OK, description = "The dispatch", body = DispatchView)))]
async fn get_dispatch(
    caller: Caller,
    State(app): AppState,
    Path(id): Path<String>,
) -> Result<Json<DispatchView>, Problem> {
    let mut conn = app.read();
    let dispatch = store::dispatch_by_id(&mut conn, &id).await?;
    match dispatch.filter(|d| may_see(&caller, d)) {
        Some(d) => Ok(Json(view_with_taxi(&mut conn, &d).await?)),
        None => Err(Problem::not_found("dispatch", &id)),
    }
}

/// A booking's dispatch, or the latest dispatches a driver was assigned to: exactly one filter.
///
/// An empty parameter counts as not given. Only the dispatches the caller may see are listed.
#[utoipa::path(get, path = "/dispatches", security(("bearer" = ["customer", "driver"])),
    params(DispatchesQuery),
    responses((status = OK, description = "The dispatches, newest first", body = Vec<DispatchView>)))]
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
    let mut views = Vec::with_capacity(dispatches.len());
    for d in dispatches.iter().filter(|d| may_see(&caller, d)) {
        views.push(view_with_taxi(&mut conn, d).await?);
    }
    Ok(Json(views))
}

/// Accepts the offer: the taxi is dispatched.
#[utoipa::path(post, path = "/dispatches/{dispatchId}/accept", security(("bearer" = ["driver"])),
    params(("dispatchId" = String, Path)),
    request_body(content = DriverBody, example = json!({})),
    responses(
        (status = OK, description = "The dispatch, `DISPATCHED` with `etaSeconds`", body = DispatchView),
        (status = CONFLICT, description = "`not_offered` to this driver, `offer_expired`, or `dispatch_closed` (cancelled or failed)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn accept(
    caller: Caller,
    State(app): AppState,
    Path(dispatch_id): Path<String>,
    Json(body): Json<DriverBody>,
) -> Result<Json<DispatchView>, Problem> {
    let driver_id = acting_driver(&caller, body.driver_id.as_deref())?;
    let fleet = app
        .run(|| Command::Accept {
            dispatch_id: dispatch_id.clone().into(),
            driver_id: driver_id.clone(),
        })
        .await?;
    dispatch_in(&fleet, &dispatch_id)
}

/// Turns the offer down: it goes to the next driver.
#[utoipa::path(post, path = "/dispatches/{dispatchId}/decline", security(("bearer" = ["driver"])),
    params(("dispatchId" = String, Path)),
    request_body(content = DriverBody, example = json!({})),
    responses(
        (status = OK, description = "The dispatch", body = DispatchView),
        (status = CONFLICT, description = "`not_offered` to this driver, or `dispatch_closed` (cancelled or failed)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn decline(
    caller: Caller,
    State(app): AppState,
    Path(dispatch_id): Path<String>,
    Json(body): Json<DriverBody>,
) -> Result<Json<DispatchView>, Problem> {
    let driver_id = acting_driver(&caller, body.driver_id.as_deref())?;
    let fleet = app
        .run(|| Command::Decline {
            dispatch_id: dispatch_id.clone().into(),
            driver_id: driver_id.clone(),
        })
        .await?;
    dispatch_in(&fleet, &dispatch_id)
}

/// Starts the trip: the customer is on board.
#[utoipa::path(post, path = "/dispatches/{dispatchId}/start", security(("bearer" = ["driver"])),
    params(("dispatchId" = String, Path)),
    request_body(content = DriverBody, example = json!({})),
    responses(
        (status = OK, description = "The dispatch, `IN_TRIP`", body = DispatchView),
        (status = CONFLICT, description = "`not_dispatched`, `not_assigned` to this driver, or `dispatch_closed` (cancelled or failed)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn start(
    caller: Caller,
    State(app): AppState,
    Path(dispatch_id): Path<String>,
    Json(body): Json<DriverBody>,
) -> Result<Json<DispatchView>, Problem> {
    let driver_id = acting_driver(&caller, body.driver_id.as_deref())?;
    let fleet = app
        .run(|| Command::Start {
            dispatch_id: dispatch_id.clone().into(),
            driver_id: driver_id.clone(),
        })
        .await?;
    dispatch_in(&fleet, &dispatch_id)
}

/// Ends the trip and charges the fare to the customer's card, or records it as paid in cash.
///
/// The fare is on `distanceMeters` when it is plausible for the trip (400 `implausible_distance`
/// otherwise). When the charge fails the dispatch stays `IN_TRIP`, and ending it again is safe.
/// After a declined card the customer is told at once: ending again charges the card they put
/// in its place, or `settlement: "CASH"` ends the trip with the fare paid to the driver.
// Prices the trip on committed state, charges it outside any transaction (a slow pay never
// holds the database), and only then records the trip as ended — if it still is in progress.
#[utoipa::path(post, path = "/dispatches/{dispatchId}/end", security(("bearer" = ["driver"])),
    params(("dispatchId" = String, Path)),
    request_body(content = EndBody, example = json!({"distanceMeters": 8200})),
    responses(
        (status = OK, description = "The dispatch, `ENDED` with `fare`, `payId` and \
            `paymentMethod`", body = DispatchView),
        (status = PAYMENT_REQUIRED, description = "`card_declined`: the trip stays `IN_TRIP` \
            and the customer is told; end it again once they replaced the card, or in cash",
            body = Problem, content_type = "application/problem+json"),
        (status = CONFLICT, description = "`not_in_trip`, `already_ended`, `not_assigned` to this \
            driver, `dispatch_closed`, or `amount_mismatch` (charged another fare already)",
            body = Problem, content_type = "application/problem+json"),
        (status = SERVICE_UNAVAILABLE, description = "`payment_unavailable`: the trip stays \
            `IN_TRIP`; end it again after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
async fn end(
    caller: Caller,
    State(app): AppState,
    Path(dispatch_id): Path<String>,
    Json(body): Json<EndBody>,
) -> Result<Json<DispatchView>, Problem> {
    let driver_id = acting_driver(&caller, body.driver_id.as_deref())?;
    let reported_m = body.distance_meters.as_ref().map(distance).transpose()?;
    let settled = body.settlement.as_ref().map(settlement).transpose()?;
    let end = TripEnd {
        dispatch_id: dispatch_id.clone(),
        driver_id,
        reported_m,
        settled: settled.unwrap_or_default(),
    };
    let fleet = end_trip(&app.db, &app.store, &app.payments, end).await?;
    dispatch_in(&fleet, &dispatch_id)
}
