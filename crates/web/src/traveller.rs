//! The traveller's page: flights with seats left, the wallet and deposits, reserving, the
//! reservations as they are paid, ticketed or cancelled, and tickets.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::json;
use tanda_core::id::new_id;

use crate::api::{Api, enc};
use crate::model::{Account, Flight, ReservationView, Ticket};
use crate::notifications;
use crate::view::{self, api_error_in, badge, client_id, done, error_in, html, render};

pub(crate) fn routes() -> Router<Api> {
    Router::new()
        .route("/traveller", get(page))
        .route("/ui/traveller/{id}/balance", get(balance_fragment))
        .route("/ui/traveller/{id}/deposit", post(deposit))
        .route("/ui/traveller/{id}/flights", get(flights_fragment))
        .route(
            "/ui/traveller/{id}/reservations",
            get(reservations_fragment).post(reserve),
        )
        .route(
            "/ui/traveller/{id}/reservations/{reservation_id}/cancel",
            post(cancel),
        )
        .route("/ui/traveller/{id}/tickets", get(tickets_fragment))
}

#[derive(Template)]
#[template(path = "traveller.html")]
struct TravellerPage<'a> {
    title: &'a str,
    nav: &'a str,
    id: String,
    id_q: String,
    receiver_q: String,
    balance: String,
    flights: String,
    reservations: String,
    tickets: String,
    notifications: String,
}

async fn page(State(api): State<Api>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(raw) = q.get("userId") else {
        return crate::signin(
            "Fly",
            "traveller",
            "/traveller",
            "userId",
            "Your user id",
            None,
        );
    };
    let id = match client_id("A user id", raw) {
        Ok(id) => id,
        Err(e) => {
            return crate::signin(
                "Fly",
                "traveller",
                "/traveller",
                "userId",
                "Your user id",
                Some(e),
            );
        }
    };
    let receiver = format!("user:{id}");
    html(&TravellerPage {
        title: "Fly",
        nav: "traveller",
        id_q: enc(&id),
        receiver_q: enc(&receiver),
        balance: balance(&api, &id).await,
        flights: render(&flights(&api, &id).await),
        reservations: render(&reservations(&api, &id).await),
        tickets: render(&tickets(&api, &id).await),
        notifications: notifications::panel(&api, &receiver).await,
        id,
    })
}

// ---- wallet -------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "traveller_balance.html")]
struct Balance {
    id_q: String,
    amount: i64,
    text: String,
}

fn balance_of(id: &str, account: &Account) -> Balance {
    Balance {
        id_q: enc(id),
        amount: account.balance,
        text: view::won(account.balance),
    }
}

async fn balance(api: &Api, id: &str) -> String {
    match api.get::<Account>(&format!("/accounts/{}", enc(id))).await {
        Ok(account) => render(&balance_of(id, &account)),
        Err(e) => render(&view::Alert { message: &e.detail }),
    }
}

async fn balance_fragment(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match api.get::<Account>(&format!("/accounts/{}", enc(&id))).await {
        Ok(account) => html(&balance_of(&id, &account)),
        Err(e) => api_error_in("wallet-error", &e),
    }
}

async fn deposit(
    State(api): State<Api>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let raw = form
        .get("amount")
        .map(|v| v.trim().replace([',', '_', '₩', ' '], ""))
        .unwrap_or_default();
    let Ok(amount) = raw.parse::<i64>() else {
        return error_in(
            "wallet-error",
            StatusCode::BAD_REQUEST,
            &format!("The amount \"{raw}\" is not a whole number of won."),
        );
    };
    match api
        .post::<Account>(
            &format!("/accounts/{}/deposit", enc(&id)),
            &json!({"amount": amount}),
        )
        .await
    {
        Ok(account) => done("wallet-error", render(&balance_of(&id, &account))),
        Err(e) => api_error_in("wallet-error", &e),
    }
}

// ---- flights ------------------------------------------------------------------------------

struct FlightRow {
    flight_id: String,
    from: String,
    to: String,
    departs_at: String,
    seats_left: i64,
    price: String,
    /// Makes a double-submitted reservation form reserve once.
    key: String,
}

#[derive(Template)]
#[template(path = "traveller_flights.html")]
struct Flights {
    /// Sent beside another fragment, to replace the table already on the page.
    oob: bool,
    id_q: String,
    rows: Vec<FlightRow>,
    error: Option<String>,
}

async fn flights(api: &Api, id: &str) -> Flights {
    let (list, error) = api.list::<Flight>("/flights").await;
    Flights {
        oob: false,
        id_q: enc(id),
        rows: list
            .into_iter()
            .map(|f| FlightRow {
                flight_id: f.flight_id,
                from: f.from,
                to: f.to,
                departs_at: f.departs_at,
                seats_left: f.seats_left,
                price: view::won(f.price),
                key: new_id(),
            })
            .collect(),
        error,
    }
}

async fn flights_fragment(State(api): State<Api>, Path(id): Path<String>) -> Response {
    html(&flights(&api, &id).await)
}

// ---- reservations -------------------------------------------------------------------------

struct ReservationRow {
    reservation_id: String,
    reservation_q: String,
    flight_id: String,
    route: String,
    departs_at: Option<String>,
    price: String,
    status: String,
    badge: &'static str,
    badge_class: &'static str,
    ticket_id: Option<String>,
    cancellable: bool,
}

#[derive(Template)]
#[template(path = "traveller_reservations.html")]
struct Reservations {
    id_q: String,
    active: bool,
    rows: Vec<ReservationRow>,
    error: Option<String>,
}

/// Statuses a reservation leaves by itself (payment, ticketing, a cancellation in progress).
const MOVING: [&str; 4] = ["REQUESTED", "PENDING", "PAID", "CANCEL_REQUESTED"];

async fn reservations(api: &Api, id: &str) -> Reservations {
    let (list, error) = api
        .list::<ReservationView>(&format!("/reservationViews?userId={}", enc(id)))
        .await;
    let rows: Vec<ReservationRow> = list
        .into_iter()
        .map(|r| {
            let (badge, badge_class) = badge(&r.status);
            ReservationRow {
                reservation_q: enc(&r.reservation_id),
                reservation_id: r.reservation_id,
                route: match (r.from, r.to) {
                    (Some(from), Some(to)) => format!("{from} → {to}"),
                    _ => String::new(),
                },
                flight_id: r.flight_id,
                departs_at: r.departs_at,
                price: r.price.map(view::won).unwrap_or_default(),
                cancellable: matches!(
                    r.status.as_str(),
                    "REQUESTED" | "PENDING" | "PAID" | "CONFIRMED"
                ),
                status: r.status,
                badge,
                badge_class,
                ticket_id: r.ticket_id,
            }
        })
        .collect();
    Reservations {
        id_q: enc(id),
        active: rows.iter().any(|r| MOVING.contains(&r.status.as_str())),
        rows,
        error,
    }
}

async fn reservations_fragment(State(api): State<Api>, Path(id): Path<String>) -> Response {
    html(&reservations(&api, &id).await)
}

/// The reservation list after an action, with the flights table (seats left) beside it.
async fn after_action(api: &Api, id: &str) -> Response {
    let mut list = reservations(api, id).await;
    // The read model may not have seen the new request yet: keep polling until it settles.
    list.active = true;
    let flights = render(&Flights {
        oob: true,
        ..flights(api, id).await
    });
    done("reserve-error", render(&list) + &flights)
}

async fn reserve(
    State(api): State<Api>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let flight_id = form.get("flightId").map(|v| v.trim()).unwrap_or_default();
    if flight_id.is_empty() {
        return error_in(
            "reserve-error",
            StatusCode::BAD_REQUEST,
            "Choose a flight to reserve.",
        );
    }
    let key = match form.get("idempotencyKey").map(|v| v.trim()) {
        Some(key) if !key.is_empty() => key.to_owned(),
        _ => new_id(),
    };
    let body = json!({"userId": id, "flightId": flight_id});
    match api
        .create::<serde_json::Value>("/reservations", &body, &key)
        .await
    {
        Ok(_) => after_action(&api, &id).await,
        Err(e) => api_error_in("reserve-error", &e),
    }
}

async fn cancel(
    State(api): State<Api>,
    Path((id, reservation_id)): Path<(String, String)>,
) -> Response {
    match api
        .post_empty::<serde_json::Value>(&format!("/reservations/{}/cancel", enc(&reservation_id)))
        .await
    {
        Ok(_) => after_action(&api, &id).await,
        Err(e) => api_error_in("reserve-error", &e),
    }
}

// ---- tickets ------------------------------------------------------------------------------

struct TicketRow {
    ticket_id: String,
    flight_id: String,
    status: String,
    badge: &'static str,
    badge_class: &'static str,
}

#[derive(Template)]
#[template(path = "traveller_tickets.html")]
struct Tickets {
    id_q: String,
    rows: Vec<TicketRow>,
    error: Option<String>,
}

async fn tickets(api: &Api, id: &str) -> Tickets {
    let (list, error) = api
        .list::<Ticket>(&format!("/tickets?userId={}", enc(id)))
        .await;
    Tickets {
        id_q: enc(id),
        rows: list
            .into_iter()
            .map(|t| {
                let (badge, badge_class) = badge(&t.status);
                TicketRow {
                    ticket_id: t.ticket_id,
                    flight_id: t.flight_id,
                    status: t.status,
                    badge,
                    badge_class,
                }
            })
            .collect(),
        error,
    }
}

async fn tickets_fragment(State(api): State<Api>, Path(id): Path<String>) -> Response {
    html(&tickets(&api, &id).await)
}
