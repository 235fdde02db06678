//! The customer's HTTP API (API.md "Bookings"): requests are parsed into domain types here, so
//! nothing past this file sees a raw string or a card number.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tanda_cardnet::{CardNumber, tokenize};
use tanda_core::Problem;
use tanda_core::auth::{Caller, Role};
use tanda_core::clock::rfc3339;
use tanda_core::db::Db;
use tanda_core::geo::LatLng;
use tanda_core::http::{IdempotencyKey, Json, Path, Query};
use tanda_core::id::{ClientId, new_id};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{Book, Command, CustomerName, NewBook, Phone, Place, PlaceName, Taxi};
use crate::store::{self, Created, Idempotency};
use crate::{Config, Error};

#[derive(Clone)]
struct App {
    db: Db,
    no_taxi_retry_after_secs: u64,
    /// Milliseconds from acceptance to the customer's answer.
    answer_within_ms: i64,
    max_pickup_m: f64,
}

pub fn router(db: Db, config: &Config) -> Router {
    let app = App {
        db,
        // Retry-After counts whole seconds; never tell a client to retry at once.
        no_taxi_retry_after_secs: config.no_taxi_retry_after.as_secs_f64().ceil().max(1.0) as u64,
        answer_within_ms: i64::try_from(config.search.deadline.as_millis()).unwrap_or(i64::MAX),
        max_pickup_m: config.search.max_pickup_m,
    };
    routes().with_state(app).into()
}

/// The operations `router` serves, documented.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(request_book, list_books))
        .routes(routes!(get_book))
        .routes(routes!(cancel_book))
        .routes(routes!(replace_card))
}

/// `POST /books`. Every field is optional here so that a missing one gets its own problem; the
/// document says which are required.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct BookRequest {
    /// The customer; omitted: the caller. Only an operator may name another.
    customer_id: Option<String>,
    #[schema(required = true, nullable = false)]
    customer_name: Option<String>,
    #[schema(required = true, nullable = false)]
    phone: Option<String>,
    /// The card number (12–19 digits, Luhn-valid); only its last 4 digits are kept. Any JSON
    /// value here: a mistyped card must not be echoed back in a deserialization error.
    #[schema(required = true, value_type = String, example = "4242424242424242")]
    card: Option<Value>,
    #[schema(required = true, nullable = false)]
    pickup: Option<PlaceRequest>,
    #[schema(required = true, nullable = false)]
    dropoff: Option<PlaceRequest>,
}

#[derive(Deserialize, ToSchema)]
struct PlaceRequest {
    #[schema(required = true, nullable = false)]
    name: Option<String>,
    #[schema(required = true, nullable = false, minimum = -90, maximum = 90)]
    lat: Option<f64>,
    #[schema(required = true, nullable = false, minimum = -180, maximum = 180)]
    lng: Option<f64>,
}

/// Requests a taxi. The customer is the caller (or whom an operator names).
#[utoipa::path(post, path = "/books",
    security(("bearer" = ["customer"])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "The same key again returns the first answer and books nothing new")),
    request_body(content = BookRequest, example = json!({
        "customerName": "Kim Minji", "phone": "010-1234-5678", "card": "4242424242424242",
        "pickup": {"name": "Gangnam Station", "lat": 37.4979, "lng": 127.0276},
        "dropoff": {"name": "Seoul Station", "lat": 37.5547, "lng": 126.9707}
    })),
    responses(
        (status = CREATED, description = "Requested (or, for a repeated Idempotency-Key, the \
            first answer, with `Idempotent-Replayed: true`)", body = BookView),
        (status = SERVICE_UNAVAILABLE, description = "`no_taxi_available`: call again a bit later",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn request_book(
    caller: Caller,
    State(app): State<App>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<BookRequest>,
) -> Result<Response, Problem> {
    let new = parse(body, &caller)?;
    // What the Idempotency-Key stands for: the request with the card reduced to its last 4
    // digits, so that not even a hash of the full number is stored.
    let fingerprint = json!({
        "customerId": new.customer_id.as_str(),
        "customerName": new.customer_name.as_str(),
        "phone": new.phone.as_str(),
        "cardLast4": new.card.last4,
        "pickup": PlaceView::from(&new.pickup),
        "dropoff": PlaceView::from(&new.dropoff),
    });
    let now = app.db.now();
    let book = Book::request(new_id(), new, now, now.saturating_add(app.answer_within_ms));
    let view = book_json(&book);
    let idempotency = key.as_deref().map(|key| Idempotency {
        key,
        request: &fingerprint,
        response: &view,
    });
    match store::create(&app.db, &book, app.max_pickup_m, idempotency).await? {
        Created::New => Ok((StatusCode::CREATED, axum::Json(view)).into_response()),
        Created::Replayed(first) => Ok(first.into_response()),
        Created::NoTaxi => Err(Problem::unavailable(
            "no_taxi_available",
            "no taxi is available near the pickup right now; please call again a bit later",
            app.no_taxi_retry_after_secs,
        )),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Whose bookings; omitted: the caller's.
    customer_id: Option<String>,
}

/// A customer's bookings, newest first.
#[utoipa::path(get, path = "/books", security(("bearer" = ["customer"])), params(ListQuery),
    responses((status = OK, description = "The bookings", body = Vec<BookView>)))]
async fn list_books(
    caller: Caller,
    State(app): State<App>,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    let named = customer_id(query.customer_id)?;
    let customer = caller.act_as(Role::Customer, named.as_ref())?;
    let books = store::list_for_customer(&app.db, &customer).await?;
    Ok(axum::Json(books.iter().map(BookView::from).collect::<Vec<_>>()).into_response())
}

#[utoipa::path(get, path = "/books/{bookId}", security(("bearer" = ["customer"])),
    params(("bookId" = String, Path)),
    responses((status = OK, description = "The booking", body = BookView)))]
async fn get_book(
    caller: Caller,
    State(app): State<App>,
    Path(book_id): Path<String>,
) -> Result<Response, Problem> {
    let book = owned_book(&app, &caller, &book_id).await?;
    Ok(axum::Json(BookView::from(&book)).into_response())
}

/// The booking, if it is the caller's to see (someone else's is as good as unknown: 404).
async fn owned_book(app: &App, caller: &Caller, book_id: &str) -> Result<Book, Problem> {
    match store::find(&app.db, book_id).await? {
        Some(book) if caller.may_read(Role::Customer, book.customer_id.as_str()) => Ok(book),
        _ => Err(Error::NotFound(book_id.to_owned()).into()),
    }
}

/// Asks to cancel; dispatch answers whether the trip can still be cancelled.
#[utoipa::path(post, path = "/books/{bookId}/cancel", security(("bearer" = ["customer"])),
    params(("bookId" = String, Path)),
    responses(
        (status = ACCEPTED, description = "`CANCEL_REQUESTED`", body = BookView),
        (status = CONFLICT, description = "It can no longer be cancelled", body = Problem,
            content_type = "application/problem+json"),
    ))]
async fn cancel_book(
    caller: Caller,
    State(app): State<App>,
    Path(book_id): Path<String>,
) -> Result<Response, Problem> {
    owned_book(&app, &caller, &book_id).await?;
    let book = Db::retry_on_conflict(|| async {
        let mut uow = app.db.begin().await?;
        let book = store::execute(&mut uow, &book_id, Command::Cancel, None).await?;
        uow.commit().await?;
        Ok::<_, Error>(book)
    })
    .await?
    .ok_or_else(|| Error::NotFound(book_id.clone()))?;
    Ok((StatusCode::ACCEPTED, axum::Json(BookView::from(&book))).into_response())
}

/// `PUT /books/{bookId}/card`. Optional here so that a missing card gets its own problem.
#[derive(Deserialize, ToSchema)]
struct CardRequest {
    /// The new card number (12–19 digits, Luhn-valid); only its last 4 digits are kept. Any
    /// JSON value here, as in `POST /books`: a mistyped card is never echoed back.
    #[schema(required = true, value_type = String, example = "4242424242424242")]
    card: Option<Value>,
}

/// Replaces the booking's card: the trip is charged to the new one when it ends.
///
/// After a declined charge, the customer's way on: the driver's next end of the trip charges
/// this card. Until the booking is completed or cancelled.
#[utoipa::path(put, path = "/books/{bookId}/card", security(("bearer" = ["customer"])),
    params(("bookId" = String, Path)),
    request_body(content = CardRequest, example = json!({"card": "4242424242424242"})),
    responses(
        (status = OK, description = "The booking, with the new `cardLast4`", body = BookView),
        (status = CONFLICT, description = "`already_completed` or `already_cancelled`",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn replace_card(
    caller: Caller,
    State(app): State<App>,
    Path(book_id): Path<String>,
    Json(body): Json<CardRequest>,
) -> Result<Response, Problem> {
    owned_book(&app, &caller, &book_id).await?;
    let card = tokenize(&card_number(body.card)?);
    let book = Db::retry_on_conflict(|| async {
        let mut uow = app.db.begin().await?;
        let command = Command::ReplaceCard(card.clone());
        let book = store::execute(&mut uow, &book_id, command, None).await?;
        uow.commit().await?;
        Ok::<_, Error>(book)
    })
    .await?
    .ok_or_else(|| Error::NotFound(book_id.clone()))?;
    Ok(axum::Json(BookView::from(&book)).into_response())
}

/// Parses a booking request, reporting the first invalid field. The card number is tokenised
/// right here and dropped. The customer is the caller, or whom an operator names.
fn parse(mut body: BookRequest, caller: &Caller) -> Result<NewBook, Problem> {
    let named = customer_id(body.customer_id.take())?;
    let customer_id = caller.act_as(Role::Customer, named.as_ref())?;
    Ok(parse_details(body, customer_id)?)
}

fn customer_id(raw: Option<String>) -> Result<Option<ClientId>, Error> {
    raw.map(|raw| {
        ClientId::parse(&raw).map_err(|e| invalid("invalid_customer_id", "customerId", e))
    })
    .transpose()
}

fn parse_details(body: BookRequest, customer_id: ClientId) -> Result<NewBook, Error> {
    let customer_name = required(body.customer_name, "customerName")?;
    let customer_name = CustomerName::parse(&customer_name)
        .map_err(|e| invalid("invalid_customer_name", "customerName", e))?;
    let phone = required(body.phone, "phone")?;
    let phone = Phone::parse(&phone).map_err(|e| invalid("invalid_phone", "phone", e))?;
    let card = card_number(body.card)?;
    Ok(NewBook {
        customer_id,
        customer_name,
        phone,
        card: tokenize(&card),
        pickup: place(body.pickup, "pickup")?,
        dropoff: place(body.dropoff, "dropoff")?,
    })
}

/// A card number, never echoed back: a value that is not a Luhn-valid string of digits is
/// refused by what is wrong with it.
fn card_number(card: Option<Value>) -> Result<CardNumber, Error> {
    match required(card, "card")? {
        Value::String(number) => {
            CardNumber::parse(&number).map_err(|e| invalid("invalid_card", "card", e))
        }
        _ => Err(Error::Invalid {
            code: "invalid_card",
            detail: "card must be a string of 12-19 digits".to_owned(),
        }),
    }
}

fn place(body: Option<PlaceRequest>, field: &str) -> Result<Place, Error> {
    let body = required(body, field)?;
    let name = required(body.name, &format!("{field}.name"))?;
    let name = PlaceName::parse(&name)
        .map_err(|e| invalid("invalid_place_name", &format!("{field}.name"), e))?;
    let lat = required(body.lat, &format!("{field}.lat"))?;
    let lng = required(body.lng, &format!("{field}.lng"))?;
    // The error names the coordinate ("lat must be ..."); prefix the place.
    let location = LatLng::parse(lat, lng).map_err(|e| Error::Invalid {
        code: "invalid_location",
        detail: format!("{field}.{e}"),
    })?;
    Ok(Place { name, location })
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Error> {
    value.ok_or_else(|| Error::Invalid {
        code: "missing_field",
        detail: format!("{field} is required"),
    })
}

fn invalid(code: &'static str, field: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid {
        code,
        detail: format!("{field} {e}"),
    }
}

/// A booking, as its customer sees it. The full card number never comes back.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct BookView<'a> {
    book_id: &'a str,
    customer_id: &'a str,
    customer_name: &'a str,
    phone: &'a str,
    card_last4: &'a str,
    pickup: PlaceView<'a>,
    dropoff: PlaceView<'a>,
    /// `REQUESTED`, `DISPATCHED`, `IN_TRIP`, `COMPLETED`, `CANCEL_REQUESTED`,
    /// `CANCELLED_BY_CUSTOMER` or `CANCELLED_BY_SYSTEM`.
    #[schema(example = "REQUESTED")]
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dispatch_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    taxi: Option<&'a Taxi>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fare: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pay_id: Option<&'a str>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// When the customer is answered at the latest: by then a taxi is dispatched, or the
    /// booking is `CANCELLED_BY_SYSTEM`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    answer_by: Option<String>,
}

impl<'a> From<&'a Book> for BookView<'a> {
    fn from(book: &'a Book) -> Self {
        Self {
            book_id: &book.id,
            customer_id: book.customer_id.as_str(),
            customer_name: book.customer_name.as_str(),
            phone: book.phone.as_str(),
            card_last4: &book.card.last4,
            pickup: PlaceView::from(&book.pickup),
            dropoff: PlaceView::from(&book.dropoff),
            status: book.status.as_str(),
            dispatch_id: book.dispatch_id.as_deref(),
            taxi: book.taxi.as_ref(),
            fare: book.fare,
            pay_id: book.pay_id.as_deref(),
            created_at: rfc3339(book.created_at),
            updated_at: rfc3339(book.updated_at),
            answer_by: book.answer_by.map(rfc3339),
        }
    }
}

fn book_json(book: &Book) -> Value {
    serde_json::to_value(BookView::from(book)).expect("a book view is plain JSON")
}

#[derive(Serialize, ToSchema)]
struct PlaceView<'a> {
    name: &'a str,
    lat: f64,
    lng: f64,
}

impl<'a> From<&'a Place> for PlaceView<'a> {
    fn from(place: &'a Place) -> Self {
        Self {
            name: place.name.as_str(),
            lat: place.location.lat,
            lng: place.location.lng,
        }
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { code, detail } => Problem::bad_request(code, detail),
            Error::NotFound(id) => Problem::not_found("book", &id),
            Error::Rejected(r) => Problem::conflict(r.code(), r.to_string()),
            Error::Db(e) => e.into(),
        }
    }
}
