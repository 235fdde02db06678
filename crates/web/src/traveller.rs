//! The traveller's page: flights with seats left, the wallet and deposits, reserving, the
//! reservations as they are paid, ticketed or cancelled, and tickets.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::json;
use tanda_core::Problem;
use tanda_core::auth::Role;
use tanda_core::id::new_id;

use crate::api::{Api, enc};
use crate::i18n::Tr;
use crate::model::{Account, Flight, Reservation, ReservationView, Ticket};
use crate::notifications;
use crate::session::{Acting, Pages, Refusal, User};
use crate::view::{self, Frame, api_error_in, badge, done, error_in, html, render};

pub(crate) fn routes() -> Router<Pages> {
    Router::new()
        .route("/traveller", get(page))
        .route("/ui/traveller/balance", get(balance_fragment))
        .route("/ui/traveller/deposit", post(deposit))
        .route("/ui/traveller/flights", get(flights_fragment))
        .route(
            "/ui/traveller/reservations",
            get(reservations_fragment).post(reserve),
        )
        .route(
            "/ui/traveller/reservations/{reservation_id}/cancel",
            post(cancel),
        )
        .route("/ui/traveller/tickets", get(tickets_fragment))
}

type Params = Query<HashMap<String, String>>;

/// The traveller (a customer) the page or action is for: the user, or whom an operator names.
fn traveller(user: &User, q: &HashMap<String, String>) -> Result<Acting, Refusal> {
    user.acting(
        Role::Customer,
        "userId",
        q.get("userId").map(String::as_str),
    )
}

#[derive(Template)]
#[template(path = "traveller.html")]
struct TravellerPage {
    frame: Frame,
    tr: Tr,
    /// "as minji", "for minji", as HTML.
    who: String,
    for_someone: bool,
    q: String,
    receiver_q: String,
    balance: String,
    flights: String,
    reservations: String,
    tickets: String,
    notifications: String,
}

async fn page(user: User, Query(q): Params) -> Response {
    let frame = Frame::of(&user, "title-fly", "traveller");
    let acting = match traveller(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => {
            return crate::refused_page(
                &user,
                refusal,
                frame,
                "/traveller",
                "userId",
                "choose-traveller",
            );
        }
    };
    let (api, tr, id, q) = (&user.api, user.tr, &acting.id, &acting.q);
    let receiver = format!("user:{id}");
    let who_key = if acting.for_someone {
        "who-for"
    } else {
        "who-as"
    };
    html(&TravellerPage {
        frame,
        tr,
        who: tr.strong(who_key, "who", id, "who"),
        for_someone: acting.for_someone,
        receiver_q: enc(&receiver),
        balance: balance(api, tr, id, q).await,
        flights: render(&flights(api, tr, q).await),
        reservations: render(&reservations(api, tr, id, q).await),
        tickets: render(&tickets(api, tr, id, q).await),
        notifications: notifications::panel(api, tr, &receiver).await,
        q: q.clone(),
    })
}

// ---- wallet -------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "traveller_balance.html")]
struct Balance {
    q: String,
    amount: i64,
    text: String,
}

fn balance_of(tr: Tr, q: &str, account: &Account) -> Balance {
    Balance {
        q: q.to_owned(),
        amount: account.balance,
        text: tr.won(account.balance),
    }
}

async fn balance(api: &Api, tr: Tr, id: &str, q: &str) -> String {
    match api.get::<Account>(&format!("/accounts/{}", enc(id))).await {
        Ok(account) => render(&balance_of(tr, q, &account)),
        Err(e) => render(&view::Alert {
            message: &tr.problem(&e),
        }),
    }
}

async fn balance_fragment(user: User, Query(q): Params) -> Response {
    let acting = match traveller(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    match user
        .api
        .get::<Account>(&format!("/accounts/{}", enc(&acting.id)))
        .await
    {
        Ok(account) => html(&balance_of(user.tr, &acting.q, &account)),
        Err(e) => api_error_in(user.tr, "wallet-error", &e),
    }
}

async fn deposit(
    user: User,
    Query(q): Params,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let acting = match traveller(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    let raw = form
        .get("amount")
        .map(|v| v.trim().replace([',', '_', '₩', ' '], ""))
        .unwrap_or_default();
    let tr = user.tr;
    let Ok(amount) = raw.parse::<i64>() else {
        return error_in(
            "wallet-error",
            StatusCode::BAD_REQUEST,
            &tr.t1("deposit-not-a-number", "raw", &raw),
        );
    };
    match user
        .api
        .post::<Account>(
            &format!("/accounts/{}/deposit", enc(&acting.id)),
            &json!({"amount": amount}),
        )
        .await
    {
        Ok(account) => done("wallet-error", render(&balance_of(tr, &acting.q, &account))),
        Err(e) => api_error_in(tr, "wallet-error", &e),
    }
}

// ---- flights ------------------------------------------------------------------------------

struct FlightRow {
    flight_id: String,
    from: String,
    to: String,
    departs_at: String,
    departs_text: String,
    seats_left: i64,
    price: String,
    /// Makes a double-submitted reservation form reserve once.
    key: String,
}

#[derive(Template)]
#[template(path = "traveller_flights.html")]
struct Flights {
    tr: Tr,
    /// Sent beside another fragment, to replace the table already on the page.
    oob: bool,
    q: String,
    rows: Vec<FlightRow>,
    error: Option<String>,
}

async fn flights(api: &Api, tr: Tr, q: &str) -> Flights {
    let (list, error) = api.list::<Flight>("/flights").await;
    Flights {
        tr,
        oob: false,
        q: q.to_owned(),
        rows: list
            .into_iter()
            .map(|f| FlightRow {
                flight_id: f.flight_id,
                from: f.from,
                to: f.to,
                departs_text: tr.time(&f.departs_at),
                departs_at: f.departs_at,
                seats_left: f.seats_left,
                price: tr.won(f.price),
                key: new_id(),
            })
            .collect(),
        error: error.map(|e| tr.problem(&e)),
    }
}

async fn flights_fragment(user: User, Query(q): Params) -> Response {
    match traveller(&user, &q) {
        Ok(acting) => html(&flights(&user.api, user.tr, &acting.q).await),
        Err(refusal) => refusal.problem(),
    }
}

// ---- reservations -------------------------------------------------------------------------

struct ReservationRow {
    reservation_id: String,
    reservation_q: String,
    flight_id: String,
    route: String,
    departs_at: Option<String>,
    departs_text: Option<String>,
    price: String,
    status: String,
    badge: String,
    badge_class: &'static str,
    ticket_id: Option<String>,
    cancellable: bool,
}

#[derive(Template)]
#[template(path = "traveller_reservations.html")]
struct Reservations {
    tr: Tr,
    q: String,
    active: bool,
    rows: Vec<ReservationRow>,
    error: Option<String>,
}

/// Statuses a reservation leaves by itself (payment, ticketing, a cancellation in progress).
const MOVING: [&str; 4] = ["REQUESTED", "PENDING", "PAID", "CANCEL_REQUESTED"];

async fn reservations(api: &Api, tr: Tr, id: &str, q: &str) -> Reservations {
    let (list, error) = api
        .list::<ReservationView>(&format!("/reservationViews?userId={}", enc(id)))
        .await;
    let rows: Vec<ReservationRow> = list
        .into_iter()
        .map(|r| {
            let (badge, badge_class) = badge(tr, &r.status);
            ReservationRow {
                reservation_q: enc(&r.reservation_id),
                reservation_id: r.reservation_id,
                route: match (r.from, r.to) {
                    (Some(from), Some(to)) => format!("{from} → {to}"),
                    _ => String::new(),
                },
                flight_id: r.flight_id,
                departs_text: r.departs_at.as_deref().map(|d| tr.time(d)),
                departs_at: r.departs_at,
                price: r.price.map(|p| tr.won(p)).unwrap_or_default(),
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
        tr,
        q: q.to_owned(),
        active: rows.iter().any(|r| MOVING.contains(&r.status.as_str())),
        rows,
        error: error.map(|e| tr.problem(&e)),
    }
}

async fn reservations_fragment(user: User, Query(q): Params) -> Response {
    match traveller(&user, &q) {
        Ok(acting) => html(&reservations(&user.api, user.tr, &acting.id, &acting.q).await),
        Err(refusal) => refusal.problem(),
    }
}

/// The reservation list after an action, with the flights table (seats left) beside it.
async fn after_action(api: &Api, tr: Tr, acting: &Acting) -> Response {
    let mut list = reservations(api, tr, &acting.id, &acting.q).await;
    // The read model may not have seen the new request yet: keep polling until it settles.
    list.active = true;
    let flights = render(&Flights {
        oob: true,
        ..flights(api, tr, &acting.q).await
    });
    done("reserve-error", render(&list) + &flights)
}

async fn reserve(
    user: User,
    Query(q): Params,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let acting = match traveller(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    let flight_id = form.get("flightId").map(|v| v.trim()).unwrap_or_default();
    if flight_id.is_empty() {
        return error_in(
            "reserve-error",
            StatusCode::BAD_REQUEST,
            &user.tr.t("reserve-choose"),
        );
    }
    let key = match form.get("idempotencyKey").map(|v| v.trim()) {
        Some(key) if !key.is_empty() => key.to_owned(),
        _ => new_id(),
    };
    let body = json!({"userId": acting.id, "flightId": flight_id});
    match user
        .api
        .create::<serde_json::Value>("/reservations", &body, &key)
        .await
    {
        Ok(_) => after_action(&user.api, user.tr, &acting).await,
        Err(e) => api_error_in(user.tr, "reserve-error", &e),
    }
}

async fn cancel(user: User, Query(q): Params, Path(reservation_id): Path<String>) -> Response {
    let acting = match traveller(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    let path = format!("/reservations/{}", enc(&reservation_id));
    // Only a reservation of the traveller the page is for (someone else's is as if it did not
    // exist).
    match user.api.get::<Reservation>(&path).await {
        Ok(r) if r.user_id == acting.id => {}
        Ok(_) => return Problem::not_found("reservation", &reservation_id).into_response(),
        Err(e) => return api_error_in(user.tr, "reserve-error", &e),
    }
    match user
        .api
        .post_empty::<serde_json::Value>(&format!("{path}/cancel"))
        .await
    {
        Ok(_) => after_action(&user.api, user.tr, &acting).await,
        Err(e) => api_error_in(user.tr, "reserve-error", &e),
    }
}

// ---- tickets ------------------------------------------------------------------------------

struct TicketRow {
    ticket_id: String,
    flight_id: String,
    status: String,
    badge: String,
    badge_class: &'static str,
}

#[derive(Template)]
#[template(path = "traveller_tickets.html")]
struct Tickets {
    tr: Tr,
    q: String,
    rows: Vec<TicketRow>,
    error: Option<String>,
}

async fn tickets(api: &Api, tr: Tr, id: &str, q: &str) -> Tickets {
    let (list, error) = api
        .list::<Ticket>(&format!("/tickets?userId={}", enc(id)))
        .await;
    Tickets {
        tr,
        q: q.to_owned(),
        rows: list
            .into_iter()
            .map(|t| {
                let (badge, badge_class) = badge(tr, &t.status);
                TicketRow {
                    ticket_id: t.ticket_id,
                    flight_id: t.flight_id,
                    status: t.status,
                    badge,
                    badge_class,
                }
            })
            .collect(),
        error: error.map(|e| tr.problem(&e)),
    }
}

async fn tickets_fragment(user: User, Query(q): Params) -> Response {
    match traveller(&user, &q) {
        Ok(acting) => html(&tickets(&user.api, user.tr, &acting.id, &acting.q).await),
        Err(refusal) => refusal.problem(),
    }
}
