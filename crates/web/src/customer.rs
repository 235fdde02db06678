//! The customer's page: request a taxi, follow it live, cancel, ride history, notifications.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::json;
use tanda_core::Problem;
use tanda_core::auth::Role;
use tanda_core::id::new_id;

use crate::api::{Api, ApiError, enc};
use crate::model::{Book, RideHistory};
use crate::notifications;
use crate::places::{Place, SEOUL};
use crate::session::{Acting, Pages, Refusal, User};
use crate::view::{self, Frame, api_error_in, badge, done, error_in, html, render};

pub(crate) fn routes() -> Router<Pages> {
    Router::new()
        .route("/customer", get(page))
        .route("/ui/customer/ride", get(ride_fragment))
        .route("/ui/customer/rides", post(request_ride))
        .route("/ui/customer/rides/{book_id}/cancel", post(cancel_ride))
        .route("/ui/customer/history", get(history_fragment))
}

type Params = Query<HashMap<String, String>>;

/// The customer the page or action is for: the user, or whom an operator names.
fn customer(user: &User, q: &HashMap<String, String>) -> Result<Acting, Refusal> {
    user.acting(
        Role::Customer,
        "customerId",
        q.get("customerId").map(String::as_str),
    )
}

const TEST_CARD: &str = "4242 4242 4242 4242";

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage<'a> {
    frame: Frame,
    id: String,
    for_someone: bool,
    q: String,
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

async fn page(user: User, Query(q): Params) -> Response {
    let frame = Frame::of(Some(&user), "Ride", "customer");
    let acting = match customer(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => {
            return crate::refused_page(
                &user,
                refusal,
                frame,
                "/customer",
                "customerId",
                "The customer's id",
            );
        }
    };
    let api = &user.api;
    let id = acting.id;
    let books = books(api, &id).await.unwrap_or_default();
    let last = books.first();
    let receiver = format!("customer:{id}");
    html(&CustomerPage {
        frame,
        for_someone: acting.for_someone,
        receiver_q: enc(&receiver),
        key: new_id(),
        name: last.map(|b| b.customer_name.clone()).unwrap_or_default(),
        phone: last.map(|b| b.phone.clone()).unwrap_or_default(),
        card: TEST_CARD,
        places: &SEOUL,
        pickup: SEOUL[0].key,
        dropoff: SEOUL[1].key,
        ride: render(&ride_panel(&acting.q, last)),
        history: history(api, &id, &acting.q).await,
        notifications: notifications::panel(api, &receiver).await,
        q: acting.q,
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
    q: String,
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

fn ride_panel(q: &str, book: Option<&Book>) -> RidePanel {
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
        q: q.to_owned(),
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

async fn ride_fragment(user: User, Query(q): Params) -> Response {
    let acting = match customer(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    match books(&user.api, &acting.id).await {
        Ok(books) => html(&ride_panel(&acting.q, books.first())),
        Err(e) => api_error_in("ride-error", &e),
    }
}

async fn request_ride(
    user: User,
    Query(q): Params,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let acting = match customer(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    let id = &acting.id;
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
    match user.api.create::<Book>("/books", &body, &key).await {
        Ok(book) => {
            let fresh_key = format!(
                r#"<input type="hidden" name="idempotencyKey" id="book-key" value="{}" hx-swap-oob="true">"#,
                new_id()
            );
            done(
                "book-error",
                render(&ride_panel(&acting.q, Some(&book))) + &fresh_key,
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

async fn cancel_ride(user: User, Query(q): Params, Path(book_id): Path<String>) -> Response {
    let acting = match customer(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    // Only a ride of the customer the page is for (someone else's is as if it did not exist).
    match user
        .api
        .get::<Book>(&format!("/books/{}", enc(&book_id)))
        .await
    {
        Ok(book) if book.customer_id == acting.id => {}
        Ok(_) => return Problem::not_found("book", &book_id).into_response(),
        Err(e) => return api_error_in("ride-error", &e),
    }
    match user
        .api
        .post_empty::<Book>(&format!("/books/{}/cancel", enc(&book_id)))
        .await
    {
        Ok(book) => done("ride-error", render(&ride_panel(&acting.q, Some(&book)))),
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
    q: String,
    rides: Vec<HistoryRow>,
    error: Option<String>,
}

async fn history(api: &Api, id: &str, q: &str) -> String {
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
        q: q.to_owned(),
        rides: rows,
        error,
    })
}

async fn history_fragment(user: User, Query(q): Params) -> Response {
    match customer(&user, &q) {
        Ok(acting) => Html(history(&user.api, &acting.id, &acting.q).await).into_response(),
        Err(refusal) => refusal.problem(),
    }
}
