//! What the pages read from the public API (see API.md), as far as they show it. Fields the pages
//! do not use are ignored, so the API can grow without touching these.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Place {
    pub name: String,
    pub lat: f64,
    pub lng: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LatLng {
    pub lat: f64,
    pub lng: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Taxi {
    pub car_number: String,
    pub phone: String,
    pub eta_seconds: Option<i64>,
    pub driver_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Book {
    pub book_id: String,
    pub customer_id: String,
    pub customer_name: String,
    pub phone: String,
    pub card_last4: String,
    pub pickup: Place,
    pub dropoff: Place,
    pub status: String,
    pub taxi: Option<Taxi>,
    pub fare: Option<i64>,
    /// `CARD` or `CASH`, if the booking says how it was paid.
    #[serde(default)]
    pub payment_method: Option<String>,
}

/// A payment (`GET /pays?bookId=`): how a ride was paid.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pay {
    /// `CARD` or `CASH` (a payment from before cash was taken says nothing: by card).
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub card_last4: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RideHistory {
    pub book_id: String,
    pub pickup: Option<Place>,
    pub dropoff: Option<Place>,
    pub taxi: Option<Taxi>,
    pub book_status: Option<String>,
    pub fare: Option<i64>,
    /// `CARD` or `CASH`, once paid.
    #[serde(default)]
    pub payment_method: Option<String>,
    #[serde(default)]
    pub card_last4: Option<String>,
    pub requested_at: Option<String>,
    pub updated_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Driver {
    pub driver_id: String,
    pub name: String,
    pub car_number: String,
    pub location: LatLng,
    pub status: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    pub dispatch_id: String,
    pub pickup: Place,
    pub dropoff: Place,
    pub expires_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dispatch {
    pub dispatch_id: String,
    pub status: String,
    pub eta_seconds: Option<i64>,
    pub fare: Option<i64>,
    pub distance_meters: Option<i64>,
    pub pickup: Option<Place>,
    pub dropoff: Option<Place>,
    /// How an ended trip was paid, `CARD` or `CASH`, when dispatch says.
    #[serde(default, alias = "settlement")]
    pub payment_method: Option<String>,
    #[serde(default)]
    pub card_last4: Option<String>,
    pub updated_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flight {
    pub flight_id: String,
    pub from: String,
    pub to: String,
    pub departs_at: String,
    pub seats_left: i64,
    pub price: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub balance: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub user_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationView {
    pub reservation_id: String,
    pub flight_id: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub departs_at: Option<String>,
    pub price: Option<i64>,
    pub status: String,
    pub ticket_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    pub ticket_id: String,
    pub flight_id: String,
    pub status: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub subject: String,
    pub message: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: String,
    pub consumer: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub error: String,
    pub attempts: i64,
    pub parked_at: String,
    pub redriven_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Consumer {
    pub name: String,
    pub paused: bool,
    #[serde(default)]
    pub lag: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub service: String,
    pub ready: bool,
    #[serde(default)]
    pub outbox_unpublished: Option<i64>,
    #[serde(default)]
    pub breakers: Vec<Breaker>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Breaker {
    pub name: String,
    pub state: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub total: i64,
    pub by_status: std::collections::BTreeMap<String, i64>,
}
