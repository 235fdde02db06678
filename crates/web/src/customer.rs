//! The customer's page: request a taxi, follow it live, cancel, ride history, notifications.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::json;
use tanda_core::id::new_id;

use crate::api::{Api, ApiError, enc};
use crate::model::{Book, RideHistory};
use crate::notifications;
use crate::places::{Place, SEOUL};
use crate::view::{self, api_error_in, badge, client_id, done, error_in, html, render};

pub(crate) fn routes() -> Router<Api> {
    Router::new()
        .route("/customer", get(page))
        .route("/ui/customer/{id}/ride", get(ride_fragment))
        .route("/ui/customer/{id}/rides", post(request_ride))
        .route(
            "/ui/customer/{id}/rides/{book_id}/cancel",
            post(cancel_ride),
        )
        .route("/ui/customer/{id}/history", get(history_fragment))
}

const TEST_CARD: &str = "4242 4242 4242 4242";

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage<'a> {
    title: &'a str,
    nav: &'a str,
    id: String,
    id_q: String,
    receiver_q: String,
    key: String,
    name: String,
    phone: String,
    card: &'a str,
    places: &'a [Place],
    pickup: &'a str,
    dropoff: &'a str,
    ride: String,
    history: String,
    notifications: String,
}

async fn page(State(api): State<Api>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(raw) = q.get("customerId") else {
        return crate::signin(
            "Ride",
            "customer",
            "/customer",
            "customerId",
            "Your customer id",
            None,
        );
    };
    let id = match client_id("A customer id", raw) {
        Ok(id) => id,
        Err(e) => {
            return crate::signin(
                "Ride",
                "customer",
                "/customer",
                "customerId",
                "Your customer id",
                Some(e),
            );
        }
    };
    let books = books(&api, &id).await.unwrap_or_default();
    let last = books.first();
    let receiver = format!("customer:{id}");
    html(&CustomerPage {
        title: "Ride",
        nav: "customer",
        id_q: enc(&id),
        receiver_q: enc(&receiver),
        key: new_id(),
        name: last.map(|b| b.customer_name.clone()).unwrap_or_default(),
        phone: last.map(|b| b.phone.clone()).unwrap_or_default(),
        card: TEST_CARD,
        places: &SEOUL,
        pickup: SEOUL[0].key,
        dropoff: SEOUL[1].key,
        ride: render(&ride_panel(&id, last)),
        history: history(&api, &id).await,
        notifications: notifications::panel(&api, &receiver).await,
        id,
    })
}

async fn books(api: &Api, id: &str) -> Result<Vec<Book>, ApiError> {
    api.get(&format!("/books?customerId={}", enc(id))).await
}

// ---- the current ride ---------------------------------------------------------------------

struct Step {
    label: &'static str,
    state: &'static str,
}

struct TaxiLine {
    car: String,
    driver: Option<String>,
    phone: String,
    eta: Option<String>,
}

struct Ride {
    book_q: String,
    status: String,
    badge: &'static str,
    badge_class: &'static str,
    steps: Vec<Step>,
    pickup: String,
    dropoff: String,
    taxi: Option<TaxiLine>,
    fare: Option<String>,
    card_last4: String,
    note: &'static str,
    cancellable: bool,
}

#[derive(Template)]
#[template(path = "customer_ride.html")]
struct RidePanel {
    id_q: String,
    active: bool,
    ride: Option<Ride>,
}

/// Where a ride is on its way, for the progress steps.
const STEPS: [(&str, &str); 4] = [
    ("REQUESTED", "Searching"),
    ("DISPATCHED", "Taxi on the way"),
    ("IN_TRIP", "In trip"),
    ("COMPLETED", "Completed"),
];

fn ride_panel(id: &str, book: Option<&Book>) -> RidePanel {
    let ride = book.map(|b| {
        let reached = STEPS.iter().position(|(s, _)| *s == b.status);
        let steps = STEPS
            .iter()
            .enumerate()
            .map(|(i, (_, label))| Step {
                label,
                state: match reached {
                    Some(r) if i < r || b.status == "COMPLETED" => "done",
                    Some(r) if i == r => "now",
                    _ => "todo",
                },
            })
            .collect();
        let (badge, badge_class) = badge(&b.status);
        Ride {
            book_q: enc(&b.book_id),
            status: b.status.clone(),
            badge,
            badge_class,
            steps,
            pickup: b.pickup.name.clone(),
            dropoff: b.dropoff.name.clone(),
            taxi: b.taxi.as_ref().map(|t| TaxiLine {
                car: t.car_number.clone(),
                driver: t.driver_name.clone(),
                phone: t.phone.clone(),
                eta: (b.status == "DISPATCHED")
                    .then_some(t.eta_seconds)
                    .flatten()
                    .map(view::minutes),
            }),
            fare: b.fare.map(view::won),
            card_last4: b.card_last4.clone(),
            note: note(&b.status),
            cancellable: matches!(b.status.as_str(), "REQUESTED" | "DISPATCHED"),
        }
    });
    let active = ride.as_ref().is_some_and(|r| {
        matches!(
            r.status.as_str(),
            "REQUESTED" | "DISPATCHED" | "IN_TRIP" | "CANCEL_REQUESTED"
        )
    });
    RidePanel {
        id_q: enc(id),
        active,
        ride,
    }
}

fn note(status: &str) -> &'static str {
    match status {
        "REQUESTED" => "Looking for the nearest available taxi…",
        "DISPATCHED" => "Your taxi is on its way to the pickup.",
        "IN_TRIP" => "Enjoy the ride.",
        "COMPLETED" => "Thank you for riding with Tanda.",
        "CANCEL_REQUESTED" => "Cancelling…",
        "CANCELLED_BY_CUSTOMER" => "You cancelled this ride.",
        "CANCELLED_BY_SYSTEM" => "No taxi could take this ride in time. Please try again.",
        _ => "",
    }
}

async fn ride_fragment(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match books(&api, &id).await {
        Ok(books) => html(&ride_panel(&id, books.first())),
        Err(e) => api_error_in("ride-error", &e),
    }
}

async fn request_ride(
    State(api): State<Api>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).map(|v| v.trim()).unwrap_or_default();
    let (pickup, dropoff) = match (place(&form, "pickup"), place(&form, "dropoff")) {
        (Ok(p), Ok(d)) => (p, d),
        (Err(e), _) | (_, Err(e)) => return error_in("book-error", StatusCode::BAD_REQUEST, &e),
    };
    let card: String = field("card")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    let body = json!({
        "customerId": id,
        "customerName": field("customerName"),
        "phone": field("phone"),
        "card": card,
        "pickup": pickup,
        "dropoff": dropoff,
    });
    let key = match field("idempotencyKey") {
        "" => new_id(),
        key => key.to_owned(),
    };
    match api.create::<Book>("/books", &body, &key).await {
        Ok(book) => {
            let fresh_key = format!(
                r#"<input type="hidden" name="idempotencyKey" id="book-key" value="{}" hx-swap-oob="true">"#,
                new_id()
            );
            done(
                "book-error",
                render(&ride_panel(&id, Some(&book))) + &fresh_key,
            )
        }
        Err(e) => api_error_in("book-error", &e),
    }
}

/// A pickup or drop-off from the form: a named place, or coordinates typed in.
fn place(form: &HashMap<String, String>, which: &str) -> Result<serde_json::Value, String> {
    let chosen = form.get(which).map(String::as_str).unwrap_or_default();
    if let Some(p) = SEOUL.iter().find(|p| p.key == chosen) {
        return Ok(json!({"name": p.name, "lat": p.lat, "lng": p.lng}));
    }
    let label = if which == "pickup" {
        "pickup"
    } else {
        "drop-off"
    };
    let number = |axis: &str| -> Result<f64, String> {
        let raw = form
            .get(&format!("{which}{axis}"))
            .map(|v| v.trim())
            .unwrap_or_default();
        if raw.is_empty() {
            return Err(format!(
                "Choose a {label} place, or enter its latitude and longitude."
            ));
        }
        raw.parse::<f64>().map_err(|_| {
            format!(
                "The {label} {} \"{raw}\" is not a number.",
                axis.to_lowercase()
            )
        })
    };
    let (lat, lng) = (number("Lat")?, number("Lng")?);
    Ok(json!({"name": format!("{lat:.5}, {lng:.5}"), "lat": lat, "lng": lng}))
}

async fn cancel_ride(
    State(api): State<Api>,
    Path((id, book_id)): Path<(String, String)>,
) -> Response {
    match api
        .post_empty::<Book>(&format!("/books/{}/cancel", enc(&book_id)))
        .await
    {
        Ok(book) => done("ride-error", render(&ride_panel(&id, Some(&book)))),
        Err(e) => api_error_in("ride-error", &e),
    }
}

// ---- history ------------------------------------------------------------------------------

struct HistoryRow {
    book_id: String,
    badge: &'static str,
    badge_class: &'static str,
    route: String,
    at: String,
    fare: Option<String>,
    car: Option<String>,
}

#[derive(Template)]
#[template(path = "customer_history.html")]
struct HistoryPanel {
    id_q: String,
    rides: Vec<HistoryRow>,
    error: Option<String>,
}

async fn history(api: &Api, id: &str) -> String {
    let (rides, error) = api
        .list::<RideHistory>(&format!("/rideHistories?customerId={}", enc(id)))
        .await;
    let rows = rides
        .into_iter()
        .map(|r| {
            let status = r.book_status.unwrap_or_default();
            let (badge, badge_class) = badge(&status);
            let name = |p: Option<crate::model::Place>| p.map(|p| p.name).unwrap_or_default();
            HistoryRow {
                book_id: r.book_id,
                badge,
                badge_class,
                route: format!("{} → {}", name(r.pickup), name(r.dropoff)),
                at: r.requested_at.unwrap_or(r.updated_at),
                fare: r.fare.map(view::won),
                car: r.taxi.map(|t| t.car_number),
            }
        })
        .collect();
    render(&HistoryPanel {
        id_q: enc(id),
        rides: rows,
        error,
    })
}

async fn history_fragment(State(api): State<Api>, Path(id): Path<String>) -> Response {
    Html(history(&api, &id).await).into_response()
}
