//! The driver's page: pick or register a driver, go online or offline, take offers before they
//! expire, start and end trips, and today's trips and earnings.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::json;
use tanda_core::SystemClock;
use tanda_core::clock::Clock;
use tanda_core::geo::LatLng;

use crate::api::{Api, ApiError, enc};
use crate::model::{Dispatch, Driver, Offer};
use crate::notifications;
use crate::places::{self, Place, SEOUL};
use crate::view::{self, api_error_in, badge, client_id, done, error_in, html, render};

pub(crate) fn routes() -> Router<Api> {
    Router::new()
        .route("/driver", get(page))
        .route("/ui/drivers", post(register))
        .route("/ui/driver/{id}/panel", get(panel_fragment))
        .route("/ui/driver/{id}/trips", get(trips_fragment))
        .route("/ui/driver/{id}/online", post(go_online))
        .route("/ui/driver/{id}/offline", post(go_offline))
        .route("/ui/driver/{id}/move", post(move_to))
        .route(
            "/ui/driver/{id}/dispatches/{dispatch_id}/{action}",
            post(act),
        )
}

/// A trip's distance is estimated as the straight line between pickup and drop-off times this.
const ROAD_FACTOR: f64 = 1.3;

// ---- choosing a driver --------------------------------------------------------------------

struct DriverRow {
    id: String,
    id_q: String,
    name: String,
    car: String,
    badge: &'static str,
    badge_class: &'static str,
}

#[derive(Template)]
#[template(path = "drivers.html")]
struct DriversPage<'a> {
    title: &'a str,
    nav: &'a str,
    drivers: Vec<DriverRow>,
    error: Option<String>,
    suggestion: String,
    places: &'a [Place],
}

#[derive(Template)]
#[template(path = "driver.html")]
struct DriverPage<'a> {
    title: &'a str,
    nav: &'a str,
    id: String,
    name: String,
    car: String,
    receiver_q: String,
    panel: String,
    trips: String,
    notifications: String,
}

async fn page(State(api): State<Api>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(raw) = q.get("driverId") else {
        return choose(&api, None).await;
    };
    let id = match client_id("A driver id", raw) {
        Ok(id) => id,
        Err(e) => return choose(&api, Some(e)).await,
    };
    let driver = match api.get::<Driver>(&format!("/drivers/{}", enc(&id))).await {
        Ok(d) => d,
        Err(e) => return choose(&api, Some(e.detail)).await,
    };
    let receiver = format!("driver:{id}");
    html(&DriverPage {
        title: "Drive",
        nav: "driver",
        name: driver.name.clone(),
        car: driver.car_number.clone(),
        receiver_q: enc(&receiver),
        panel: match panel(&api, driver).await {
            Ok(p) => render(&p),
            Err(e) => render(&view::Alert { message: &e.detail }),
        },
        trips: render(&trips(&api, &id).await),
        notifications: notifications::panel(&api, &receiver).await,
        id,
    })
}

async fn choose(api: &Api, error: Option<String>) -> Response {
    let (drivers, load_error) = api.list::<Driver>("/drivers").await;
    let status = if error.is_some() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    let page = DriversPage {
        title: "Drive",
        nav: "driver",
        drivers: drivers
            .into_iter()
            .map(|d| {
                let (badge, badge_class) = badge(&d.status);
                DriverRow {
                    id_q: enc(&d.driver_id),
                    id: d.driver_id,
                    name: d.name,
                    car: d.car_number,
                    badge,
                    badge_class,
                }
            })
            .collect(),
        error: error.or(load_error),
        suggestion: format!("driver-{}", &tanda_core::id::new_id()[9..13]),
        places: &SEOUL,
    };
    (status, html(&page)).into_response()
}

async fn register(State(api): State<Api>, Form(form): Form<HashMap<String, String>>) -> Response {
    let field = |name: &str| form.get(name).map(|v| v.trim()).unwrap_or_default();
    let id = match client_id("The driver id", field("driverId")) {
        Ok(id) => id,
        Err(e) => return error_in("register-error", StatusCode::BAD_REQUEST, &e),
    };
    let place = places::by_key(field("place")).unwrap_or(&SEOUL[0]);
    let body = json!({
        "driverId": id,
        "name": field("name"),
        "carNumber": field("carNumber"),
        "phone": field("phone"),
        "location": {"lat": place.lat, "lng": place.lng},
    });
    match api.post::<Driver>("/drivers", &body).await {
        Ok(_) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let to = format!("/driver?driverId={}", enc(&id));
            if let Ok(to) = HeaderValue::from_str(&to) {
                response.headers_mut().insert("hx-redirect", to);
            }
            response
        }
        Err(e) => api_error_in("register-error", &e),
    }
}

// ---- status, offer and trip ---------------------------------------------------------------

struct OfferCard {
    dispatch_q: String,
    pickup: String,
    dropoff: String,
    length: String,
    expires_at: String,
}

struct TripCard {
    dispatch_q: String,
    status: String,
    badge: &'static str,
    badge_class: &'static str,
    pickup: String,
    dropoff: String,
    eta: Option<String>,
    estimate_m: i64,
}

#[derive(Template)]
#[template(path = "driver_panel.html")]
struct Panel<'a> {
    id_q: String,
    status: String,
    badge: &'static str,
    badge_class: &'static str,
    near: &'static str,
    polling: bool,
    places: &'a [Place],
    offer: Option<OfferCard>,
    trip: Option<TripCard>,
}

/// The driver's status with the offer they hold and the trip they are on, if any.
async fn panel(api: &Api, driver: Driver) -> Result<Panel<'static>, ApiError> {
    let id_q = enc(&driver.driver_id);
    let offer = match driver.status.as_str() {
        "OFFERED" => api
            .get::<Vec<Offer>>(&format!("/drivers/{id_q}/offers"))
            .await?
            .into_iter()
            .next()
            .map(|o| OfferCard {
                dispatch_q: enc(&o.dispatch_id),
                length: view::distance(estimate_m(&o.pickup, &o.dropoff)),
                pickup: o.pickup.name,
                dropoff: o.dropoff.name,
                expires_at: o.expires_at,
            }),
        _ => None,
    };
    let trip = match driver.status.as_str() {
        "DISPATCHED" | "IN_TRIP" => dispatches(api, &driver.driver_id)
            .await?
            .into_iter()
            .find(|d| matches!(d.status.as_str(), "DISPATCHED" | "IN_TRIP"))
            .map(trip_card),
        _ => None,
    };
    let (badge, badge_class) = badge(&driver.status);
    Ok(Panel {
        id_q,
        polling: driver.status != "OFFLINE",
        near: nearest_place(driver.location.lat, driver.location.lng).name,
        status: driver.status,
        badge,
        badge_class,
        places: &SEOUL,
        offer,
        trip,
    })
}

fn trip_card(d: Dispatch) -> TripCard {
    let (badge, badge_class) = badge(&d.status);
    let name =
        |p: &Option<crate::model::Place>| p.as_ref().map(|p| p.name.clone()).unwrap_or_default();
    TripCard {
        dispatch_q: enc(&d.dispatch_id),
        badge,
        badge_class,
        pickup: name(&d.pickup),
        dropoff: name(&d.dropoff),
        eta: d.eta_seconds.map(view::minutes),
        estimate_m: match (&d.pickup, &d.dropoff) {
            (Some(p), Some(q)) => estimate_m(p, q),
            _ => 0,
        },
        status: d.status,
    }
}

fn estimate_m(from: &crate::model::Place, to: &crate::model::Place) -> i64 {
    match (
        LatLng::parse(from.lat, from.lng),
        LatLng::parse(to.lat, to.lng),
    ) {
        (Ok(a), Ok(b)) => (a.distance_m(b) * ROAD_FACTOR).round() as i64,
        _ => 0,
    }
}

fn nearest_place(lat: f64, lng: f64) -> &'static Place {
    let Ok(here) = LatLng::parse(lat, lng) else {
        return &SEOUL[0];
    };
    SEOUL
        .iter()
        .min_by(|a, b| {
            let d =
                |p: &Place| LatLng::parse(p.lat, p.lng).map_or(f64::MAX, |p| here.distance_m(p));
            d(a).total_cmp(&d(b))
        })
        .unwrap_or(&SEOUL[0])
}

async fn dispatches(api: &Api, driver_id: &str) -> Result<Vec<Dispatch>, ApiError> {
    api.get(&format!("/dispatches?driverId={}", enc(driver_id)))
        .await
}

/// The panel after an action, or the action's error under it.
async fn panel_after(api: &Api, id: &str, outcome: Result<(), ApiError>) -> Response {
    if let Err(e) = outcome {
        return api_error_in("driver-error", &e);
    }
    let refreshed = async {
        let driver = api.get::<Driver>(&format!("/drivers/{}", enc(id))).await?;
        panel(api, driver).await
    };
    match refreshed.await {
        Ok(p) => done("driver-error", render(&p) + &oob_trips(api, id).await),
        Err(e) => api_error_in("driver-error", &e),
    }
}

async fn panel_fragment(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let driver = match api.get::<Driver>(&format!("/drivers/{}", enc(&id))).await {
        Ok(d) => d,
        Err(e) => return api_error_in("driver-error", &e),
    };
    match panel(&api, driver).await {
        Ok(p) => html(&p),
        Err(e) => api_error_in("driver-error", &e),
    }
}

async fn go_online(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let outcome = api
        .post_empty::<Driver>(&format!("/drivers/{}/online", enc(&id)))
        .await;
    panel_after(&api, &id, outcome.map(drop)).await
}

async fn go_offline(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let outcome = api
        .post_empty::<Driver>(&format!("/drivers/{}/offline", enc(&id)))
        .await;
    panel_after(&api, &id, outcome.map(drop)).await
}

async fn move_to(
    State(api): State<Api>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let key = form.get("place").map(String::as_str).unwrap_or_default();
    let Some(place) = places::by_key(key) else {
        return error_in(
            "driver-error",
            StatusCode::BAD_REQUEST,
            "Choose a place to move to.",
        );
    };
    let outcome = api
        .put::<Driver>(
            &format!("/drivers/{}/location", enc(&id)),
            &json!({"lat": place.lat, "lng": place.lng}),
        )
        .await;
    panel_after(&api, &id, outcome.map(drop)).await
}

/// Accept, decline, start or end: the dispatch commands a driver gives.
async fn act(
    State(api): State<Api>,
    Path((id, dispatch_id, action)): Path<(String, String, String)>,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let mut body = json!({"driverId": id});
    match action.as_str() {
        "accept" | "decline" | "start" => {}
        "end" => {
            let raw = form
                .as_ref()
                .ok()
                .and_then(|Form(f)| f.get("distanceMeters"))
                .map(|v| v.trim().replace([',', '_'], ""))
                .unwrap_or_default();
            match raw.parse::<i64>() {
                Ok(m) if m >= 0 => body["distanceMeters"] = json!(m),
                _ => {
                    return error_in(
                        "driver-error",
                        StatusCode::BAD_REQUEST,
                        &format!("The distance \"{raw}\" is not a whole number of meters."),
                    );
                }
            }
        }
        other => {
            return error_in(
                "driver-error",
                StatusCode::NOT_FOUND,
                &format!("There is no \"{other}\" action on a dispatch."),
            );
        }
    }
    let outcome = api
        .post::<Dispatch>(
            &format!("/dispatches/{}/{action}", enc(&dispatch_id)),
            &body,
        )
        .await;
    panel_after(&api, &id, outcome.map(drop)).await
}

// ---- today ------------------------------------------------------------------------------

struct TripRow {
    route: String,
    at: String,
    distance: String,
    fare: String,
}

#[derive(Template)]
#[template(path = "driver_trips.html")]
struct Trips {
    /// Sent beside another fragment, to replace the panel already on the page.
    oob: bool,
    id_q: String,
    earnings: String,
    rows: Vec<TripRow>,
    error: Option<String>,
}

/// The trips the driver ended today (Seoul time) and what they earned.
async fn trips(api: &Api, id: &str) -> Trips {
    let today = view::seoul_day(SystemClock.now());
    let (list, error) = api
        .list::<Dispatch>(&format!("/dispatches?driverId={}", enc(id)))
        .await;
    let ended: Vec<Dispatch> = list
        .into_iter()
        .filter(|d| d.status == "ENDED" && view::seoul_day_of(&d.updated_at) == Some(today))
        .collect();
    let earned: i64 = ended.iter().filter_map(|d| d.fare).sum();
    let rows = ended
        .into_iter()
        .map(|d| {
            let name = |p: Option<crate::model::Place>| p.map(|p| p.name).unwrap_or_default();
            TripRow {
                route: format!("{} → {}", name(d.pickup), name(d.dropoff)),
                distance: view::distance(d.distance_meters.unwrap_or(0)),
                fare: view::won(d.fare.unwrap_or(0)),
                at: d.updated_at,
            }
        })
        .collect();
    Trips {
        oob: false,
        id_q: enc(id),
        earnings: view::won(earned),
        rows,
        error,
    }
}

/// Today's trips, swapped in beside an action's answer.
async fn oob_trips(api: &Api, id: &str) -> String {
    render(&Trips {
        oob: true,
        ..trips(api, id).await
    })
}

async fn trips_fragment(State(api): State<Api>, Path(id): Path<String>) -> Response {
    html(&trips(&api, &id).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_named_place_is_found() {
        let gangnam = places::by_key("gangnam-station").unwrap();
        assert_eq!(
            nearest_place(gangnam.lat + 0.001, gangnam.lng).key,
            "gangnam-station"
        );
        assert_eq!(nearest_place(99.0, 0.0).key, SEOUL[0].key);
    }

    #[test]
    fn trip_estimates_follow_the_road_factor() {
        let p = |k| {
            let p = places::by_key(k).unwrap();
            crate::model::Place {
                name: p.name.into(),
                lat: p.lat,
                lng: p.lng,
            }
        };
        let m = estimate_m(&p("seoul-station"), &p("gangnam-station"));
        // About 8 km as the crow flies between the two stations.
        assert!((9_000..12_000).contains(&m), "{m}");
    }
}
