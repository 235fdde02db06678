//! The driver's page: pick or register a driver, go online or offline, take offers before they
//! expire, start and end trips, and today's trips and earnings.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::json;
use tanda_core::SystemClock;
use tanda_core::auth::Role;
use tanda_core::clock::Clock;
use tanda_core::geo::LatLng;

use crate::api::{Api, ApiError, enc};
use crate::i18n::Tr;
use crate::model::{Dispatch, Driver, Offer};
use crate::notifications;
use crate::places::{self, Place, PlaceOption, SEOUL};
use crate::session::{Acting, Pages, Refusal, User};
use crate::view::{self, Frame, api_error_in, badge, done, error_in, html, render};

pub(crate) fn routes() -> Router<Pages> {
    Router::new()
        .route("/driver", get(page))
        .route("/ui/drivers", post(register))
        .route("/ui/driver/panel", get(panel_fragment))
        .route("/ui/driver/trips", get(trips_fragment))
        .route("/ui/driver/online", post(go_online))
        .route("/ui/driver/offline", post(go_offline))
        .route("/ui/driver/move", post(move_to))
        .route("/ui/driver/dispatches/{dispatch_id}/{action}", post(act))
}

type Params = Query<HashMap<String, String>>;

/// The driver the page or action is for: the user, or whom an operator names.
fn driver(user: &User, named: Option<&str>) -> Result<Acting, Refusal> {
    user.acting(Role::Driver, "driverId", named)
}

fn driver_in(user: &User, q: &HashMap<String, String>) -> Result<Acting, Refusal> {
    driver(user, q.get("driverId").map(String::as_str))
}

/// A trip's distance is estimated as the straight line between pickup and drop-off times this.
const ROAD_FACTOR: f64 = 1.3;

// ---- registering, and the operator's choice of driver -------------------------------------

struct DriverRow {
    id: String,
    id_q: String,
    name: String,
    car: String,
    badge: String,
    badge_class: &'static str,
}

#[derive(Template)]
#[template(path = "drivers.html")]
struct DriversPage {
    frame: Frame,
    tr: Tr,
    /// The operator's page: every driver to choose from, and registering names the driver.
    operator: bool,
    drivers: Vec<DriverRow>,
    error: Option<String>,
    suggestion: String,
    places: Vec<PlaceOption>,
}

#[derive(Template)]
#[template(path = "driver.html")]
struct DriverPage {
    frame: Frame,
    tr: Tr,
    id: String,
    for_someone: bool,
    name: String,
    car: String,
    receiver_q: String,
    panel: String,
    trips: String,
    notifications: String,
}

async fn page(user: User, Query(q): Params) -> Response {
    let frame = Frame::of(&user, "title-drive", "driver");
    let tr = user.tr;
    let acting = match driver_in(&user, &q) {
        Ok(acting) => acting,
        Err(Refusal::ChooseWho) => return choose(&user, frame, None).await,
        Err(Refusal::Invalid(named)) => {
            return choose(&user, frame, Some(tr.t1("not-an-id", "id", &named))).await;
        }
        Err(refusal) => {
            return crate::refused_page(&user, refusal, frame, "/driver", "driverId", "");
        }
    };
    let api = &user.api;
    let id = acting.id;
    let driver = match api.get::<Driver>(&format!("/drivers/{}", enc(&id))).await {
        Ok(d) => d,
        // A driver who has not registered their car yet does so first.
        Err(e) if e.status == StatusCode::NOT_FOUND && !acting.for_someone => {
            return register_page(frame, None);
        }
        Err(e) => return choose(&user, frame, Some(tr.problem(&e))).await,
    };
    let receiver = format!("driver:{id}");
    html(&DriverPage {
        frame,
        tr,
        for_someone: acting.for_someone,
        name: driver.name.clone(),
        car: driver.car_number.clone(),
        receiver_q: enc(&receiver),
        panel: match panel(api, tr, driver, &acting.q, None).await {
            Ok(p) => render(&p),
            Err(e) => render(&view::Alert {
                message: &tr.problem(&e),
            }),
        },
        trips: render(&trips(api, tr, &id, &acting.q).await),
        notifications: notifications::panel(api, tr, &receiver).await,
        id,
    })
}

/// The operator's page without a driver: every driver to open, and registering a new one.
/// (A driver only ever sees their own page, or the form to register their car.)
async fn choose(user: &User, frame: Frame, error: Option<String>) -> Response {
    if !user.is_operator() {
        return register_page(frame, error);
    }
    let tr = user.tr;
    let (drivers, load_error) = user.api.list::<Driver>("/drivers").await;
    let status = if error.is_some() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    let page = DriversPage {
        frame,
        tr,
        operator: true,
        drivers: drivers
            .into_iter()
            .map(|d| {
                let (badge, badge_class) = badge(tr, &d.status);
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
        error: error.or(load_error.map(|e| tr.problem(&e))),
        suggestion: format!("driver-{}", &tanda_core::id::new_id()[9..13]),
        places: PlaceOption::all(tr),
    };
    (status, html(&page)).into_response()
}

/// A driver's first visit: the car they drive, their phone and where they start.
fn register_page(frame: Frame, error: Option<String>) -> Response {
    let tr = frame.tr;
    html(&DriversPage {
        frame,
        tr,
        operator: false,
        drivers: Vec::new(),
        error,
        suggestion: String::new(),
        places: PlaceOption::all(tr),
    })
}

async fn register(user: User, Form(form): Form<HashMap<String, String>>) -> Response {
    let tr = user.tr;
    let field = |name: &str| form.get(name).map(|v| v.trim()).unwrap_or_default();
    let acting = match driver(&user, Some(field("driverId")).filter(|f| !f.is_empty())) {
        Ok(acting) => acting,
        Err(Refusal::ChooseWho) => {
            return error_in(
                "register-error",
                StatusCode::BAD_REQUEST,
                &tr.t("driver-enter-id"),
            );
        }
        Err(Refusal::Invalid(named)) => {
            return error_in(
                "register-error",
                StatusCode::BAD_REQUEST,
                &tr.t1("not-an-id", "id", &named),
            );
        }
        Err(refusal) => return refusal.problem(),
    };
    let place = places::by_key(field("place")).unwrap_or(&SEOUL[0]);
    let body = json!({
        "driverId": acting.id,
        "name": field("name"),
        "carNumber": field("carNumber"),
        "phone": field("phone"),
        "location": {"lat": place.lat, "lng": place.lng},
    });
    match user.api.post::<Driver>("/drivers", &body).await {
        Ok(_) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let to = format!("/driver{}", acting.q);
            if let Ok(to) = HeaderValue::from_str(&to) {
                response.headers_mut().insert("hx-redirect", to);
            }
            response
        }
        Err(e) => api_error_in(tr, "register-error", &e),
    }
}

// ---- status, offer and trip ---------------------------------------------------------------

struct OfferCard {
    dispatch_q: String,
    route: String,
    length: String,
    expires_at: String,
}

struct TripCard {
    dispatch_q: String,
    status: String,
    badge: String,
    badge_class: &'static str,
    route: String,
    eta: Option<String>,
    estimate_m: i64,
    /// The card was declined when the driver ended the trip: end again, or take cash.
    declined: bool,
}

#[derive(Template)]
#[template(path = "driver_panel.html")]
struct Panel {
    tr: Tr,
    q: String,
    /// What the panel asks again with: `q`, and the dispatch whose card was declined, if one
    /// was, so that the choice stays on screen while the trip waits for it.
    poll_q: String,
    status: String,
    badge: String,
    badge_class: &'static str,
    near: String,
    polling: bool,
    places: Vec<PlaceOption>,
    offer: Option<OfferCard>,
    trip: Option<TripCard>,
}

/// The driver's status with the offer they hold and the trip they are on, if any. `declined`
/// names the dispatch whose card was just declined.
async fn panel(
    api: &Api,
    tr: Tr,
    driver: Driver,
    q: &str,
    declined: Option<&str>,
) -> Result<Panel, ApiError> {
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
                route: tr.route(&o.pickup.name, &o.dropoff.name),
                expires_at: o.expires_at,
            }),
        _ => None,
    };
    let trip = match driver.status.as_str() {
        "DISPATCHED" | "IN_TRIP" => dispatches(api, &driver.driver_id)
            .await?
            .into_iter()
            .find(|d| matches!(d.status.as_str(), "DISPATCHED" | "IN_TRIP"))
            .map(|d| trip_card(tr, d, declined)),
        _ => None,
    };
    let still_declined = trip.as_ref().filter(|t| t.declined).and(declined);
    let poll_q = match still_declined {
        Some(dispatch) => {
            let joint = if q.is_empty() { '?' } else { '&' };
            format!("{q}{joint}declined={}", enc(dispatch))
        }
        None => q.to_owned(),
    };
    let (badge, badge_class) = badge(tr, &driver.status);
    Ok(Panel {
        tr,
        q: q.to_owned(),
        poll_q,
        polling: driver.status != "OFFLINE",
        near: tr.place(nearest_place(driver.location.lat, driver.location.lng).name),
        status: driver.status,
        badge,
        badge_class,
        places: PlaceOption::all(tr),
        offer,
        trip,
    })
}

fn trip_card(tr: Tr, d: Dispatch, declined: Option<&str>) -> TripCard {
    let (badge, badge_class) = badge(tr, &d.status);
    let name =
        |p: &Option<crate::model::Place>| p.as_ref().map(|p| p.name.clone()).unwrap_or_default();
    TripCard {
        dispatch_q: enc(&d.dispatch_id),
        badge,
        badge_class,
        route: tr.route(&name(&d.pickup), &name(&d.dropoff)),
        eta: d.eta_seconds.map(|s| view::minutes(tr, s)),
        estimate_m: match (&d.pickup, &d.dropoff) {
            (Some(p), Some(q)) => estimate_m(p, q),
            _ => 0,
        },
        declined: d.status == "IN_TRIP" && declined == Some(d.dispatch_id.as_str()),
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

/// The panel after an action, or the action's error under it. `declined` names the dispatch
/// whose card the action found declined.
async fn panel_after(
    user: &User,
    acting: &Acting,
    outcome: Result<(), ApiError>,
    declined: Option<&str>,
) -> Response {
    let (api, tr) = (&user.api, user.tr);
    if let Err(e) = outcome {
        return api_error_in(tr, "driver-error", &e);
    }
    let refreshed = async {
        let path = format!("/drivers/{}", enc(&acting.id));
        let driver = api.get::<Driver>(&path).await?;
        panel(api, tr, driver, &acting.q, declined).await
    };
    match refreshed.await {
        Ok(p) => done(
            "driver-error",
            render(&p) + &oob_trips(api, tr, acting).await,
        ),
        Err(e) => api_error_in(tr, "driver-error", &e),
    }
}

async fn panel_fragment(user: User, Query(q): Params) -> Response {
    let acting = match driver_in(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    let path = format!("/drivers/{}", enc(&acting.id));
    let driver = match user.api.get::<Driver>(&path).await {
        Ok(d) => d,
        Err(e) => return api_error_in(user.tr, "driver-error", &e),
    };
    let declined = q.get("declined").map(String::as_str);
    match panel(&user.api, user.tr, driver, &acting.q, declined).await {
        Ok(p) => html(&p),
        Err(e) => api_error_in(user.tr, "driver-error", &e),
    }
}

async fn go_online(user: User, Query(q): Params) -> Response {
    switch(user, q, "online").await
}

async fn go_offline(user: User, Query(q): Params) -> Response {
    switch(user, q, "offline").await
}

async fn switch(user: User, q: HashMap<String, String>, to: &str) -> Response {
    let acting = match driver_in(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    let outcome = user
        .api
        .post_empty::<Driver>(&format!("/drivers/{}/{to}", enc(&acting.id)))
        .await;
    panel_after(&user, &acting, outcome.map(drop), None).await
}

async fn move_to(
    user: User,
    Query(q): Params,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let acting = match driver_in(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    let key = form.get("place").map(String::as_str).unwrap_or_default();
    let Some(place) = places::by_key(key) else {
        return error_in(
            "driver-error",
            StatusCode::BAD_REQUEST,
            &user.tr.t("driver-choose-place"),
        );
    };
    let outcome = user
        .api
        .put::<Driver>(
            &format!("/drivers/{}/location", enc(&acting.id)),
            &json!({"lat": place.lat, "lng": place.lng}),
        )
        .await;
    panel_after(&user, &acting, outcome.map(drop), None).await
}

/// Accept, decline, start or end: the dispatch commands a driver gives. Ending charges the
/// customer's card; when the card is declined (402) the trip goes on, and the panel offers to
/// end again (once the customer has replaced the card) or to end it paid in cash.
async fn act(
    user: User,
    Query(q): Params,
    Path((dispatch_id, action)): Path<(String, String)>,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let acting = match driver_in(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    let tr = user.tr;
    let field = |name: &str| {
        form.as_ref()
            .ok()
            .and_then(|Form(f)| f.get(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let mut body = json!({"driverId": acting.id});
    match action.as_str() {
        "accept" | "decline" | "start" => {}
        "end" => {
            let raw = field("distanceMeters").replace([',', '_'], "");
            match raw.parse::<i64>() {
                Ok(m) if m >= 0 => body["distanceMeters"] = json!(m),
                _ => {
                    return error_in(
                        "driver-error",
                        StatusCode::BAD_REQUEST,
                        &tr.t1("trip-not-a-distance", "raw", &raw),
                    );
                }
            }
            if field("settlement") == "CASH" {
                body["settlement"] = json!("CASH");
            }
        }
        other => {
            return error_in(
                "driver-error",
                StatusCode::NOT_FOUND,
                &tr.t1("trip-no-action", "action", other),
            );
        }
    }
    let outcome = user
        .api
        .post::<Dispatch>(
            &format!("/dispatches/{}/{action}", enc(&dispatch_id)),
            &body,
        )
        .await;
    match outcome {
        Err(e) if e.status == StatusCode::PAYMENT_REQUIRED => {
            panel_after(&user, &acting, Ok(()), Some(&dispatch_id)).await
        }
        outcome => panel_after(&user, &acting, outcome.map(drop), None).await,
    }
}

// ---- today ------------------------------------------------------------------------------

struct TripRow {
    route: String,
    at: String,
    at_text: String,
    distance: String,
    fare: String,
    paid: Option<String>,
}

#[derive(Template)]
#[template(path = "driver_trips.html")]
struct Trips {
    tr: Tr,
    /// Sent beside another fragment, to replace the panel already on the page.
    oob: bool,
    q: String,
    earnings: String,
    /// "from 3 trips", with the count as `#trip-count`, as HTML.
    count: String,
    rows: Vec<TripRow>,
    error: Option<String>,
}

/// The trips the driver ended today (Seoul time) and what they earned.
async fn trips(api: &Api, tr: Tr, id: &str, q: &str) -> Trips {
    let today = view::seoul_day(SystemClock.now());
    let (list, error) = api
        .list::<Dispatch>(&format!("/dispatches?driverId={}", enc(id)))
        .await;
    let ended: Vec<Dispatch> = list
        .into_iter()
        .filter(|d| d.status == "ENDED" && view::seoul_day_of(&d.updated_at) == Some(today))
        .collect();
    let earned: i64 = ended.iter().filter_map(|d| d.fare).sum();
    let count = ended.len();
    let rows = ended
        .into_iter()
        .map(|d| {
            let name = |p: Option<crate::model::Place>| p.map(|p| p.name).unwrap_or_default();
            TripRow {
                route: tr.route(&name(d.pickup), &name(d.dropoff)),
                distance: view::distance(d.distance_meters.unwrap_or(0)),
                fare: tr.won(d.fare.unwrap_or(0)),
                paid: tr.paid(d.payment_method.as_deref(), d.card_last4.as_deref()),
                at_text: tr.time(&d.updated_at),
                at: d.updated_at,
            }
        })
        .collect();
    Trips {
        tr,
        oob: false,
        q: q.to_owned(),
        earnings: tr.won(earned),
        count: tr.markup(
            "trips-count",
            &[("n", count.into())],
            &[("count", &format!(r#"<span id="trip-count">{count}</span>"#))],
        ),
        rows,
        error: error.map(|e| tr.problem(&e)),
    }
}

/// Today's trips, swapped in beside an action's answer.
async fn oob_trips(api: &Api, tr: Tr, acting: &Acting) -> String {
    render(&Trips {
        oob: true,
        ..trips(api, tr, &acting.id, &acting.q).await
    })
}

async fn trips_fragment(user: User, Query(q): Params) -> Response {
    match driver_in(&user, &q) {
        Ok(acting) => html(&trips(&user.api, user.tr, &acting.id, &acting.q).await),
        Err(refusal) => refusal.problem(),
    }
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
    fn a_declined_card_offers_to_end_again_or_take_cash_until_the_trip_ends() {
        let dispatch = |status: &str| -> Dispatch {
            serde_json::from_value(json!({
                "dispatchId": "d-1", "status": status, "updatedAt": "2026-12-07T06:04:00Z",
                "pickup": {"name": "Seoul Station", "lat": 37.5547, "lng": 126.9707},
                "dropoff": {"name": "Myeongdong", "lat": 37.5636, "lng": 126.9826},
            }))
            .unwrap()
        };
        let tr = Tr(tanda_core::locale::Locale::Ko);
        let panel = |trip: TripCard| Panel {
            tr,
            q: "?driverId=d".to_owned(),
            poll_q: "?driverId=d&declined=d-1".to_owned(),
            status: "IN_TRIP".to_owned(),
            badge: tr.status("IN_TRIP"),
            badge_class: "go",
            near: tr.place("Seoul Station"),
            polling: true,
            places: PlaceOption::all(tr),
            offer: None,
            trip: Some(trip),
        };
        let html = render(&panel(trip_card(tr, dispatch("IN_TRIP"), Some("d-1"))));
        assert!(html.contains(r#"id="declined""#), "{html}");
        assert!(
            html.contains("다시 종료") && html.contains("현금으로 받음"),
            "{html}"
        );
        assert!(
            html.contains(r#"hx-vals='{"settlement": "CASH"}'"#),
            "{html}"
        );
        assert!(
            html.contains(r#"hx-get="/ui/driver/panel?driverId=d&#38;declined=d-1""#),
            "{html}"
        );
        assert!(html.contains("서울역 → 명동"), "{html}");
        let html = render(&panel(trip_card(tr, dispatch("IN_TRIP"), Some("another"))));
        assert!(
            !html.contains("declined\""),
            "another trip's decline: {html}"
        );
        assert!(html.contains("운행 종료"));
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
