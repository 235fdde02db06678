//! The live map's points: `GET /ui/map/customer`, `/ui/map/driver` and `/ui/map/operator` answer,
//! as JSON, what the page's user may see on it — a customer their ride's pickup, drop-off and
//! taxi; a driver themselves and the trip they are offered or on; the operator every online
//! driver and the rides they carry. Like every fragment, each reads the public API as the
//! signed-in user, for whom the page is (an operator may name someone; nobody else may).
//!
//! The browser draws the map itself (`assets/tanda-map.js`) as plain SVG over an outline of
//! Seoul's 25 districts (`assets/seoul-districts.geojson`; its source and licence are in
//! `assets/SEOUL-DISTRICTS.md`). Plain SVG rather than a map library such as Leaflet: with no
//! tile server to pan through, a city outline and a handful of points fit in one view that
//! follows the ride, and a library positions its panes and markers with inline styles, which
//! these pages allow nowhere; the whole map is one small script of our own instead of 150 KB.

use std::collections::HashMap;

use axum::Router;
use axum::extract::Query;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tanda_core::Problem;
use tanda_core::auth::Role;

use crate::api::{Api, ApiError, enc};
use crate::i18n::Tr;
use crate::session::{Pages, Refusal, User};

pub(crate) fn routes() -> Router<Pages> {
    Router::new()
        .route("/ui/map/customer", get(customer))
        .route("/ui/map/driver", get(driver))
        .route("/ui/map/operator", get(operator))
}

type Params = Query<HashMap<String, String>>;

/// How often a map asks again while something on it moves (positions are not notifications).
const MOVING_SECONDS: u32 = 3;
/// How often the operator's map asks again: there is always a fleet moving, and no stream.
const FLEET_SECONDS: u32 = 5;
/// The most rides the operator's map reads (one call each).
const MAX_RIDES: usize = 100;

/// What the map shows.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct MapView {
    points: Vec<Point>,
    lines: Vec<Line>,
    /// `points`: the view follows the points; `city`: it shows all of Seoul.
    fit: &'static str,
    /// Ask again after this many seconds; without it, only when a notification arrives.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_seconds: Option<u32>,
}

/// A marker: `kind` is `pickup`, `dropoff` or `taxi` (with its driver's `status`); `key` names
/// it from one answer to the next, so the script moves it rather than drawing another.
#[derive(Debug, Serialize, PartialEq)]
struct Point {
    key: String,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    lat: f64,
    lng: f64,
    label: String,
}

/// A straight line: `trip` from pickup to drop-off, `approach` from a taxi to its pickup.
#[derive(Debug, Serialize, PartialEq)]
struct Line {
    kind: &'static str,
    from: [f64; 2],
    to: [f64; 2],
}

// What the map reads from the API (API.md), as far as it uses it.

#[derive(Debug, Clone, Deserialize)]
struct Place {
    name: String,
    lat: f64,
    lng: f64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct LatLng {
    lat: f64,
    lng: f64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Taxi {
    car_number: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Book {
    status: String,
    pickup: Place,
    dropoff: Place,
    dispatch_id: Option<String>,
    taxi: Option<Taxi>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Dispatch {
    dispatch_id: String,
    status: String,
    pickup: Option<Place>,
    dropoff: Option<Place>,
    taxi_location: Option<LatLng>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Driver {
    driver_id: String,
    name: String,
    car_number: String,
    location: LatLng,
    status: String,
    dispatch_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Offer {
    pickup: Place,
    dropoff: Place,
}

/// A ride's two ends, keyed after `ride` (empty for the page's one ride), and the line between.
fn ride(view: &mut MapView, ride: &str, pickup: &Place, dropoff: &Place) {
    for (kind, place) in [("pickup", pickup), ("dropoff", dropoff)] {
        view.points.push(Point {
            key: if ride.is_empty() {
                kind.to_owned()
            } else {
                format!("{kind}:{ride}")
            },
            kind,
            status: None,
            lat: place.lat,
            lng: place.lng,
            label: place.name.clone(),
        });
    }
    view.lines.push(Line {
        kind: "trip",
        from: [pickup.lat, pickup.lng],
        to: [dropoff.lat, dropoff.lng],
    });
}

/// A taxi where it is, and, while it drives to the pickup, the way it has left.
fn taxi(
    view: &mut MapView,
    key: String,
    status: &str,
    at: LatLng,
    label: String,
    to: Option<&Place>,
) {
    if status == "DISPATCHED"
        && let Some(pickup) = to
    {
        view.lines.push(Line {
            kind: "approach",
            from: [at.lat, at.lng],
            to: [pickup.lat, pickup.lng],
        });
    }
    view.points.push(Point {
        key,
        kind: "taxi",
        status: Some(status.to_owned()),
        lat: at.lat,
        lng: at.lng,
        label,
    });
}

/// The customer's map: their latest ride while it is under way, and its taxi once one comes.
fn customer_view(book: Option<&Book>, dispatch: Option<&Dispatch>) -> MapView {
    let mut view = MapView {
        fit: "points",
        ..MapView::default()
    };
    let Some(book) = book.filter(|b| {
        matches!(
            b.status.as_str(),
            "REQUESTED" | "DISPATCHED" | "IN_TRIP" | "CANCEL_REQUESTED"
        )
    }) else {
        return view;
    };
    ride(&mut view, "", &book.pickup, &book.dropoff);
    if let Some(d) = dispatch
        && let Some(at) = d.taxi_location
    {
        let car = book.taxi.as_ref().map(|t| t.car_number.clone());
        taxi(
            &mut view,
            "taxi".to_owned(),
            &d.status,
            at,
            car.unwrap_or_default(),
            Some(&book.pickup),
        );
    }
    view.refresh_seconds = Some(MOVING_SECONDS);
    view
}

/// The driver's map: where they are, and the ride they are offered or on.
fn driver_view(me: &Driver, ride_ends: Option<(&Place, &Place)>) -> MapView {
    let mut view = MapView {
        fit: "points",
        refresh_seconds: (me.status != "OFFLINE").then_some(MOVING_SECONDS),
        ..MapView::default()
    };
    if let Some((pickup, dropoff)) = ride_ends {
        ride(&mut view, "", pickup, dropoff);
    }
    taxi(
        &mut view,
        "taxi".to_owned(),
        &me.status,
        me.location,
        me.car_number.clone(),
        ride_ends.map(|(pickup, _)| pickup),
    );
    view
}

/// The operator's map: every online driver, and the ride each is offered or on.
fn operator_view(drivers: &[Driver], rides: &[Dispatch]) -> MapView {
    let mut view = MapView {
        fit: "city",
        refresh_seconds: Some(FLEET_SECONDS),
        ..MapView::default()
    };
    for d in rides {
        if let (Some(pickup), Some(dropoff)) = (&d.pickup, &d.dropoff) {
            ride(&mut view, &d.dispatch_id, pickup, dropoff);
        }
    }
    for d in drivers.iter().filter(|d| d.status != "OFFLINE") {
        let pickup = d
            .dispatch_id
            .as_ref()
            .and_then(|id| rides.iter().find(|r| &r.dispatch_id == id))
            .and_then(|r| r.pickup.as_ref());
        taxi(
            &mut view,
            format!("taxi:{}", d.driver_id),
            &d.status,
            d.location,
            format!("{} · {}", d.name, d.car_number),
            pickup,
        );
    }
    view
}

/// A driver status in which the driver has a ride: offered, on the way, or on the trip.
fn has_ride(status: &str) -> bool {
    matches!(status, "OFFERED" | "DISPATCHED" | "IN_TRIP")
}

async fn customer(user: User, Query(q): Params) -> Response {
    let named = q.get("customerId").map(String::as_str);
    let acting = match user.acting(Role::Customer, "customerId", named) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    let api = &user.api;
    let books: Vec<Book> = match api
        .get(&format!("/books?customerId={}", enc(&acting.id)))
        .await
    {
        Ok(books) => books,
        Err(e) => return failed(&e),
    };
    let book = books.first();
    let dispatch = match book.and_then(|b| {
        let moving = matches!(b.status.as_str(), "DISPATCHED" | "IN_TRIP");
        b.dispatch_id.as_ref().filter(|_| moving)
    }) {
        Some(id) => match api
            .get::<Dispatch>(&format!("/dispatches/{}", enc(id)))
            .await
        {
            Ok(d) => Some(d),
            Err(e) => return failed(&e),
        },
        None => None,
    };
    answer(&user.tr, customer_view(book, dispatch.as_ref()))
}

async fn driver(user: User, Query(q): Params) -> Response {
    let named = q.get("driverId").map(String::as_str);
    let acting = match user.acting(Role::Driver, "driverId", named) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    let api = &user.api;
    let id = enc(&acting.id);
    let me: Driver = match api.get(&format!("/drivers/{id}")).await {
        Ok(me) => me,
        Err(e) => return failed(&e),
    };
    let ends = match (me.status.as_str(), &me.dispatch_id) {
        ("OFFERED", _) => api
            .get::<Vec<Offer>>(&format!("/drivers/{id}/offers"))
            .await
            .map(|offers| offers.into_iter().next().map(|o| (o.pickup, o.dropoff))),
        ("DISPATCHED" | "IN_TRIP", Some(dispatch)) => api
            .get::<Dispatch>(&format!("/dispatches/{}", enc(dispatch)))
            .await
            .map(|d| d.pickup.zip(d.dropoff)),
        _ => Ok(None),
    };
    match ends {
        Ok(ends) => answer(
            &user.tr,
            driver_view(&me, ends.as_ref().map(|(p, d)| (p, d))),
        ),
        Err(e) => failed(&e),
    }
}

async fn operator(user: User) -> Response {
    if !user.is_operator() {
        return Refusal::WrongRole(Role::Operator).problem();
    }
    let api = &user.api;
    let drivers: Vec<Driver> = match api.get("/drivers").await {
        Ok(drivers) => drivers,
        Err(e) => return failed(&e),
    };
    let rides = rides_of(api, &drivers).await;
    answer(&user.tr, operator_view(&drivers, &rides))
}

/// The dispatch each busy driver is offered or carries. Nothing lists every active ride at
/// once, so each is read by the id its driver shows; one that cannot be read is left out.
async fn rides_of(api: &Api, drivers: &[Driver]) -> Vec<Dispatch> {
    let mut rides = Vec::new();
    let busy = drivers.iter().filter(|d| has_ride(&d.status));
    for id in busy.filter_map(|d| d.dispatch_id.as_ref()).take(MAX_RIDES) {
        if let Ok(d) = api
            .get::<Dispatch>(&format!("/dispatches/{}", enc(id)))
            .await
        {
            rides.push(d);
        }
    }
    rides
}

/// The view as JSON, its named places in the page's language (the API keeps them as booked).
fn answer(tr: &Tr, mut view: MapView) -> Response {
    for point in view.points.iter_mut().filter(|p| p.kind != "taxi") {
        point.label = tr.place(&point.label);
    }
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(view)).into_response()
}

/// The API's problem, passed on: the script keeps what it drew and tries again later.
fn failed(e: &ApiError) -> Response {
    Problem::new(e.status, &e.code, e.detail.clone()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::places::SEOUL;

    fn place(name: &str, lat: f64, lng: f64) -> Place {
        Place {
            name: name.to_owned(),
            lat,
            lng,
        }
    }

    fn book(status: &str) -> Book {
        Book {
            status: status.to_owned(),
            pickup: place("Seoul Station", 37.5547, 126.9707),
            dropoff: place("Gangnam Station", 37.4979, 127.0276),
            dispatch_id: Some("d-1".to_owned()),
            taxi: Some(Taxi {
                car_number: "12가3456".to_owned(),
            }),
        }
    }

    fn dispatch(status: &str, taxi_location: Option<LatLng>) -> Dispatch {
        Dispatch {
            dispatch_id: "d-1".to_owned(),
            status: status.to_owned(),
            pickup: Some(place("Seoul Station", 37.5547, 126.9707)),
            dropoff: Some(place("Gangnam Station", 37.4979, 127.0276)),
            taxi_location,
        }
    }

    fn kinds(view: &MapView) -> Vec<(&str, &str)> {
        view.points
            .iter()
            .map(|p| (p.key.as_str(), p.kind))
            .collect()
    }

    #[test]
    fn a_customer_sees_the_ride_under_way_and_its_taxi_coming() {
        let near = LatLng {
            lat: 37.556,
            lng: 126.972,
        };
        let coming = customer_view(
            Some(&book("DISPATCHED")),
            Some(&dispatch("DISPATCHED", Some(near))),
        );
        assert_eq!(
            kinds(&coming),
            [
                ("pickup", "pickup"),
                ("dropoff", "dropoff"),
                ("taxi", "taxi")
            ]
        );
        let taxi = &coming.points[2];
        assert_eq!(
            (taxi.lat, taxi.lng, taxi.label.as_str()),
            (37.556, 126.972, "12가3456")
        );
        let lines: Vec<_> = coming.lines.iter().map(|l| l.kind).collect();
        assert_eq!(lines, ["trip", "approach"]);
        assert_eq!(coming.refresh_seconds, Some(MOVING_SECONDS));

        let riding = customer_view(
            Some(&book("IN_TRIP")),
            Some(&dispatch("IN_TRIP", Some(near))),
        );
        assert_eq!(riding.lines.len(), 1, "no way left to the pickup");

        let searching = customer_view(Some(&book("REQUESTED")), None);
        assert_eq!(
            kinds(&searching),
            [("pickup", "pickup"), ("dropoff", "dropoff")]
        );

        for over in ["COMPLETED", "CANCELLED_BY_CUSTOMER", "CANCELLED_BY_SYSTEM"] {
            let view = customer_view(Some(&book(over)), None);
            assert!(
                view.points.is_empty() && view.refresh_seconds.is_none(),
                "{over}"
            );
        }
        assert!(customer_view(None, None).points.is_empty());
    }

    fn driver(id: &str, status: &str, dispatch_id: Option<&str>) -> Driver {
        Driver {
            driver_id: id.to_owned(),
            name: format!("Driver {id}"),
            car_number: "12가3456".to_owned(),
            location: LatLng {
                lat: 37.56,
                lng: 126.98,
            },
            status: status.to_owned(),
            dispatch_id: dispatch_id.map(str::to_owned),
        }
    }

    #[test]
    fn a_driver_sees_themselves_and_their_trip() {
        let d = dispatch("DISPATCHED", None);
        let ends = d.pickup.as_ref().zip(d.dropoff.as_ref());
        let view = driver_view(&driver("a", "DISPATCHED", Some("d-1")), ends);
        assert_eq!(
            kinds(&view),
            [
                ("pickup", "pickup"),
                ("dropoff", "dropoff"),
                ("taxi", "taxi")
            ]
        );
        assert_eq!(view.points[2].status.as_deref(), Some("DISPATCHED"));

        let offline = driver_view(&driver("a", "OFFLINE", None), None);
        assert_eq!(kinds(&offline), [("taxi", "taxi")]);
        assert_eq!(offline.refresh_seconds, None);
    }

    #[test]
    fn the_operator_sees_online_drivers_and_their_rides() {
        let drivers = [
            driver("a", "AVAILABLE", None),
            driver("b", "DISPATCHED", Some("d-1")),
            driver("c", "OFFLINE", None),
        ];
        let view = operator_view(&drivers, &[dispatch("DISPATCHED", None)]);
        assert_eq!(
            kinds(&view),
            [
                ("pickup:d-1", "pickup"),
                ("dropoff:d-1", "dropoff"),
                ("taxi:a", "taxi"),
                ("taxi:b", "taxi")
            ]
        );
        assert_eq!(view.points[3].label, "Driver b · 12가3456");
        assert_eq!(view.lines.len(), 2, "the trip and the way to its pickup");
        assert_eq!(view.fit, "city");
    }

    /// Whether `(lng, lat)` lies inside a ring of `[lng, lat]` corners (even-odd rule).
    fn inside(ring: &[serde_json::Value], lng: f64, lat: f64) -> bool {
        let corner = |v: &serde_json::Value| (v[0].as_f64().unwrap(), v[1].as_f64().unwrap());
        let mut within = false;
        for (a, b) in ring.iter().zip(ring.iter().cycle().skip(1)) {
            let ((x1, y1), (x2, y2)) = (corner(a), corner(b));
            if (y1 > lat) != (y2 > lat) && lng < x1 + (lat - y1) * (x2 - x1) / (y2 - y1) {
                within = !within;
            }
        }
        within
    }

    #[test]
    fn the_district_outline_has_seoul_s_25_districts_around_every_named_place() {
        let outline: serde_json::Value =
            serde_json::from_str(include_str!("../assets/seoul-districts.geojson")).unwrap();
        let districts = outline["features"].as_array().unwrap();
        assert_eq!(districts.len(), 25);
        for p in &SEOUL {
            let containing: Vec<&str> = districts
                .iter()
                .filter(|d| {
                    assert_eq!(d["geometry"]["type"], "Polygon");
                    let outer = d["geometry"]["coordinates"][0].as_array().unwrap();
                    inside(outer, p.lng, p.lat)
                })
                .map(|d| d["properties"]["nameEn"].as_str().unwrap())
                .collect();
            assert_eq!(containing.len(), 1, "{} lies in {containing:?}", p.key);
        }
    }
}
