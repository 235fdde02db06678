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
use crate::i18n::Tr;
use crate::model::{Book, Pay, RideHistory};
use crate::notifications;
use crate::places::{PlaceOption, SEOUL};
use crate::session::{Acting, Pages, Refusal, User};
use crate::view::{self, Frame, api_error_in, badge, done, error_in, html, render};

pub(crate) fn routes() -> Router<Pages> {
    Router::new()
        .route("/customer", get(page))
        .route("/ui/customer/ride", get(ride_fragment))
        .route("/ui/customer/rides", post(request_ride))
        .route("/ui/customer/rides/{book_id}/cancel", post(cancel_ride))
        .route("/ui/customer/rides/{book_id}/card", post(replace_card))
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
    tr: Tr,
    /// "as minji", "for minji", as HTML.
    who: String,
    for_someone: bool,
    q: String,
    receiver_q: String,
    key: String,
    name: String,
    phone: String,
    card: &'a str,
    places: Vec<PlaceOption>,
    pickup: &'a str,
    dropoff: &'a str,
    ride: String,
    history: String,
    notifications: String,
}

async fn page(user: User, Query(q): Params) -> Response {
    let frame = Frame::of(&user, "title-ride", "customer");
    let acting = match customer(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => {
            return crate::refused_page(
                &user,
                refusal,
                frame,
                "/customer",
                "customerId",
                "choose-customer",
            );
        }
    };
    let (api, tr) = (&user.api, user.tr);
    let id = acting.id;
    let books = books(api, &id).await.unwrap_or_default();
    let last = books.first();
    let receiver = format!("customer:{id}");
    let who_key = if acting.for_someone {
        "who-for"
    } else {
        "who-as"
    };
    html(&CustomerPage {
        frame,
        tr,
        who: tr.strong(who_key, "who", &id, "who"),
        for_someone: acting.for_someone,
        receiver_q: enc(&receiver),
        key: new_id(),
        name: last.map(|b| b.customer_name.clone()).unwrap_or_default(),
        phone: last.map(|b| b.phone.clone()).unwrap_or_default(),
        card: TEST_CARD,
        places: PlaceOption::all(tr),
        pickup: SEOUL[0].key,
        dropoff: SEOUL[1].key,
        ride: render(&ride(api, tr, &acting.q, last).await),
        history: history(api, tr, &id, &acting.q).await,
        notifications: notifications::panel(api, tr, &receiver).await,
        q: acting.q,
    })
}

async fn books(api: &Api, id: &str) -> Result<Vec<Book>, ApiError> {
    api.get(&format!("/books?customerId={}", enc(id))).await
}

// ---- the current ride ---------------------------------------------------------------------

struct Step {
    label: String,
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
    badge: String,
    badge_class: &'static str,
    steps: Vec<Step>,
    route: String,
    taxi: Option<TaxiLine>,
    fare: Option<String>,
    /// How the fare was paid, once it was: `카드 •••• 4242`, `현금`.
    paid: Option<String>,
    card_last4: String,
    note: String,
    cancellable: bool,
    /// The card charged at the end of the trip may still be replaced (a declined one, say).
    card_replaceable: bool,
}

#[derive(Template)]
#[template(path = "customer_ride.html")]
struct RidePanel {
    tr: Tr,
    q: String,
    active: bool,
    ride: Option<Ride>,
}

/// Where a ride is on its way, for the progress steps.
const STEPS: [&str; 4] = ["REQUESTED", "DISPATCHED", "IN_TRIP", "COMPLETED"];

/// The panel of `book`, with how it was paid once it is completed (pay's record of it).
async fn ride(api: &Api, tr: Tr, q: &str, book: Option<&Book>) -> RidePanel {
    let paid = match book {
        Some(b) if b.status == "COMPLETED" => payment(api, b).await,
        _ => None,
    };
    ride_panel(tr, q, book, paid)
}

/// How a completed ride was paid: the book's own word when it has one, else pay's record.
async fn payment(api: &Api, book: &Book) -> Option<(String, Option<String>)> {
    if let Some(method) = &book.payment_method {
        return Some((method.clone(), Some(book.card_last4.clone())));
    }
    let (pays, _) = api
        .list::<Pay>(&format!("/pays?bookId={}", enc(&book.book_id)))
        .await;
    let pay = pays.into_iter().next()?;
    let method = pay.method.unwrap_or_else(|| "CARD".to_owned());
    Some((method, pay.card_last4.or(Some(book.card_last4.clone()))))
}

fn ride_panel(
    tr: Tr,
    q: &str,
    book: Option<&Book>,
    paid: Option<(String, Option<String>)>,
) -> RidePanel {
    let ride = book.map(|b| {
        let reached = STEPS.iter().position(|s| *s == b.status);
        let steps = STEPS
            .iter()
            .enumerate()
            .map(|(i, status)| Step {
                label: tr.t(&format!("step-{status}")),
                state: match reached {
                    Some(r) if i < r || b.status == "COMPLETED" => "done",
                    Some(r) if i == r => "now",
                    _ => "todo",
                },
            })
            .collect();
        let (badge, badge_class) = badge(tr, &b.status);
        Ride {
            book_q: enc(&b.book_id),
            status: b.status.clone(),
            badge,
            badge_class,
            steps,
            route: tr.route(&b.pickup.name, &b.dropoff.name),
            taxi: b.taxi.as_ref().map(|t| TaxiLine {
                car: t.car_number.clone(),
                driver: t.driver_name.clone(),
                phone: t.phone.clone(),
                eta: (b.status == "DISPATCHED")
                    .then_some(t.eta_seconds)
                    .flatten()
                    .map(|s| view::minutes(tr, s)),
            }),
            fare: b.fare.map(|f| tr.won(f)),
            paid: paid
                .as_ref()
                .and_then(|(method, last4)| tr.paid(Some(method), last4.as_deref())),
            card_last4: b.card_last4.clone(),
            note: note(tr, &b.status),
            cancellable: matches!(b.status.as_str(), "REQUESTED" | "DISPATCHED"),
            card_replaceable: b.status == "IN_TRIP",
        }
    });
    let active = ride.as_ref().is_some_and(|r| {
        matches!(
            r.status.as_str(),
            "REQUESTED" | "DISPATCHED" | "IN_TRIP" | "CANCEL_REQUESTED"
        )
    });
    RidePanel {
        tr,
        q: q.to_owned(),
        active,
        ride,
    }
}

fn note(tr: Tr, status: &str) -> String {
    match status {
        "REQUESTED"
        | "DISPATCHED"
        | "IN_TRIP"
        | "COMPLETED"
        | "CANCEL_REQUESTED"
        | "CANCELLED_BY_CUSTOMER"
        | "CANCELLED_BY_SYSTEM" => tr.t(&format!("note-{status}")),
        _ => String::new(),
    }
}

async fn ride_fragment(user: User, Query(q): Params) -> Response {
    let acting = match customer(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    match books(&user.api, &acting.id).await {
        Ok(books) => html(&ride(&user.api, user.tr, &acting.q, books.first()).await),
        Err(e) => api_error_in(user.tr, "ride-error", &e),
    }
}

/// A card number as typed: the digits, without the spaces or dashes people group them with.
fn card_digits(typed: &str) -> String {
    typed
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect()
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
    let tr = user.tr;
    let id = &acting.id;
    let field = |name: &str| form.get(name).map(|v| v.trim()).unwrap_or_default();
    let (pickup, dropoff) = match (place(tr, &form, "pickup"), place(tr, &form, "dropoff")) {
        (Ok(p), Ok(d)) => (p, d),
        (Err(e), _) | (_, Err(e)) => return error_in("book-error", StatusCode::BAD_REQUEST, &e),
    };
    let body = json!({
        "customerId": id,
        "customerName": field("customerName"),
        "phone": field("phone"),
        "card": card_digits(field("card")),
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
                render(&ride_panel(tr, &acting.q, Some(&book), None)) + &fresh_key,
            )
        }
        Err(e) => api_error_in(tr, "book-error", &e),
    }
}

/// A pickup or drop-off from the form: a named place, or coordinates typed in.
fn place(tr: Tr, form: &HashMap<String, String>, which: &str) -> Result<serde_json::Value, String> {
    let chosen = form.get(which).map(String::as_str).unwrap_or_default();
    if let Some(p) = SEOUL.iter().find(|p| p.key == chosen) {
        return Ok(json!({"name": p.name, "lat": p.lat, "lng": p.lng}));
    }
    let number = |axis: &str| -> Result<f64, String> {
        let raw = form
            .get(&format!("{which}{axis}"))
            .map(|v| v.trim())
            .unwrap_or_default();
        if raw.is_empty() {
            return Err(tr.t1("ride-choose-place", "which", which));
        }
        raw.parse::<f64>().map_err(|_| {
            tr.format(
                "ride-not-a-number",
                &[
                    ("which", which.to_owned().into()),
                    ("axis", axis.to_lowercase().into()),
                    ("raw", raw.to_owned().into()),
                ],
            )
        })
    };
    let (lat, lng) = (number("Lat")?, number("Lng")?);
    Ok(json!({"name": format!("{lat:.5}, {lng:.5}"), "lat": lat, "lng": lng}))
}

/// A booking of the customer the page is for; someone else's is as if it did not exist.
async fn own_book(user: &User, acting: &Acting, book_id: &str) -> Result<(), Response> {
    match user
        .api
        .get::<Book>(&format!("/books/{}", enc(book_id)))
        .await
    {
        Ok(book) if book.customer_id == acting.id => Ok(()),
        Ok(_) => Err(Problem::not_found("book", book_id).into_response()),
        Err(e) => Err(api_error_in(user.tr, "ride-error", &e)),
    }
}

async fn cancel_ride(user: User, Query(q): Params, Path(book_id): Path<String>) -> Response {
    let acting = match customer(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    if let Err(refused) = own_book(&user, &acting, &book_id).await {
        return refused;
    }
    match user
        .api
        .post_empty::<Book>(&format!("/books/{}/cancel", enc(&book_id)))
        .await
    {
        Ok(book) => done(
            "ride-error",
            render(&ride_panel(user.tr, &acting.q, Some(&book), None)),
        ),
        Err(e) => api_error_in(user.tr, "ride-error", &e),
    }
}

/// Replaces the card the ride's fare is charged to (`PUT /books/{bookId}/card`): during the trip,
/// and after the driver's attempt to charge the card was declined.
async fn replace_card(
    user: User,
    Query(q): Params,
    Path(book_id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let acting = match customer(&user, &q) {
        Ok(acting) => acting,
        Err(refusal) => return refusal.problem(),
    };
    let tr = user.tr;
    let card = card_digits(form.get("card").map(String::as_str).unwrap_or_default());
    if card.is_empty() {
        return error_in(
            "ride-error",
            StatusCode::BAD_REQUEST,
            &tr.t("ride-enter-card"),
        );
    }
    if let Err(refused) = own_book(&user, &acting, &book_id).await {
        return refused;
    }
    match user
        .api
        .put::<Book>(
            &format!("/books/{}/card", enc(&book_id)),
            &json!({"card": card}),
        )
        .await
    {
        Ok(book) => {
            let replaced = view::Notice {
                message: &tr.t1("ride-card-replaced", "last4", &book.card_last4),
            };
            Html(format!(
                r#"{}<div id="ride-error" aria-live="polite" hx-swap-oob="true">{}</div>"#,
                render(&ride_panel(tr, &acting.q, Some(&book), None)),
                render(&replaced),
            ))
            .into_response()
        }
        Err(e) => api_error_in(tr, "ride-error", &e),
    }
}

// ---- history ------------------------------------------------------------------------------

struct HistoryRow {
    book_id: String,
    badge: String,
    badge_class: &'static str,
    route: String,
    at: String,
    at_text: String,
    fare: Option<String>,
    paid: Option<String>,
    car: Option<String>,
}

#[derive(Template)]
#[template(path = "customer_history.html")]
struct HistoryPanel {
    tr: Tr,
    q: String,
    rides: Vec<HistoryRow>,
    error: Option<String>,
}

async fn history(api: &Api, tr: Tr, id: &str, q: &str) -> String {
    let (rides, error) = api
        .list::<RideHistory>(&format!("/rideHistories?customerId={}", enc(id)))
        .await;
    // The card of a ride paid by card, when the read model does not say: its booking's.
    let cards: HashMap<String, String> = if rides
        .iter()
        .any(|r| r.card_last4.is_none() && r.payment_method.as_deref() != Some("CASH"))
    {
        books(api, id)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|b| (b.book_id, b.card_last4))
            .collect()
    } else {
        HashMap::new()
    };
    let rows = rides
        .into_iter()
        .map(|r| {
            let status = r.book_status.unwrap_or_default();
            let (badge, badge_class) = badge(tr, &status);
            let name = |p: Option<crate::model::Place>| p.map(|p| p.name).unwrap_or_default();
            let card = r.card_last4.or_else(|| cards.get(&r.book_id).cloned());
            let at = r.requested_at.unwrap_or(r.updated_at);
            HistoryRow {
                badge,
                badge_class,
                route: tr.route(&name(r.pickup), &name(r.dropoff)),
                at_text: tr.time(&at),
                at,
                fare: r.fare.map(|f| tr.won(f)),
                // A ride with a fare was paid: by card unless the read model says otherwise.
                paid: r.fare.and_then(|_| {
                    let method = r.payment_method.as_deref().unwrap_or("CARD");
                    tr.paid(Some(method), card.as_deref())
                }),
                car: r.taxi.map(|t| t.car_number),
                book_id: r.book_id,
            }
        })
        .collect();
    render(&HistoryPanel {
        tr,
        q: q.to_owned(),
        rides: rows,
        error: error.map(|e| tr.problem(&e)),
    })
}

async fn history_fragment(user: User, Query(q): Params) -> Response {
    match customer(&user, &q) {
        Ok(acting) => {
            Html(history(&user.api, user.tr, &acting.id, &acting.q).await).into_response()
        }
        Err(refusal) => refusal.problem(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_card_numbers_lose_their_grouping() {
        assert_eq!(card_digits(" 4242 4242-4242 4242 "), "4242424242424242");
    }

    fn book(status: &str, fare: Option<i64>) -> Book {
        serde_json::from_value(json!({
            "bookId": "b-1", "customerId": "minji", "customerName": "Lee Minji",
            "phone": "010-1234-5678", "cardLast4": "0002", "status": status,
            "pickup": {"name": "Seoul Station", "lat": 37.5547, "lng": 126.9707},
            "dropoff": {"name": "Gangnam Station", "lat": 37.4979, "lng": 127.0276},
            "fare": fare,
        }))
        .unwrap()
    }

    #[test]
    fn a_ride_in_trip_offers_to_replace_its_card() {
        let tr = Tr(tanda_core::locale::Locale::Ko);
        let html = render(&ride_panel(tr, "", Some(&book("IN_TRIP", None)), None));
        assert!(html.contains(r#"id="card-form""#), "{html}");
        assert!(
            html.contains(r#"hx-post="/ui/customer/rides/b-1/card""#),
            "{html}"
        );
        assert!(
            html.contains("결제 카드: •••• 0002") && html.contains("카드 변경"),
            "{html}"
        );
        assert!(
            html.contains("서울역 → 강남역") && html.contains("운행 중"),
            "{html}"
        );
        let html = render(&ride_panel(tr, "", Some(&book("DISPATCHED", None)), None));
        assert!(!html.contains("card-form"), "only during the trip");
    }

    #[test]
    fn a_completed_ride_says_its_fare_and_how_it_was_paid() {
        let done = book("COMPLETED", Some(12_300));
        for (tr, paid, fare, how) in [
            (
                Tr(tanda_core::locale::Locale::Ko),
                ("CASH", None),
                "12,300원",
                "현금",
            ),
            (
                Tr(tanda_core::locale::Locale::En),
                ("CARD", Some("4242")),
                "₩12,300",
                "Card •••• 4242",
            ),
        ] {
            let paid = Some((paid.0.to_owned(), paid.1.map(str::to_owned)));
            let html = render(&ride_panel(tr, "", Some(&done), paid));
            assert!(
                html.contains(&format!(r#"<strong id="ride-fare">{fare}</strong>"#)),
                "{html}"
            );
            assert!(
                html.contains(&format!(r#"<span id="ride-paid">{how}</span>"#)),
                "{html}"
            );
            assert!(!html.contains("card-form"));
        }
    }
}
