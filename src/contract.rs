//! The API's OpenAPI document, assembled from every service's own part (each generated from its
//! handlers) and the operational endpoints every process serves. The gateway serves it at
//! `/openapi.json` in both run modes; the tests walk it to call every operation.

use tanda_core::host::ops_openapi;
use utoipa::openapi::OpenApi;

use crate::config::Service;

impl Service {
    /// The public operations this service serves, documented; the gateway owns none of its own.
    pub fn openapi(self) -> Option<OpenApi> {
        Some(match self {
            Service::Gateway => return None,
            Service::Book => tanda_book::openapi(),
            Service::Dispatch => tanda_dispatch::openapi(),
            Service::Pay => tanda_pay::openapi(),
            Service::RideHistory => tanda_ride_history::openapi(),
            Service::Reservation => tanda_reservation::openapi(),
            Service::Payment => tanda_payment::openapi(),
            Service::Ticket => tanda_ticket::openapi(),
            Service::ReservationView => tanda_reservation_view::openapi(),
            Service::Notify => tanda_notify::openapi(),
            Service::Identity => tanda_identity::openapi(),
        })
    }
}

/// The whole document, each operation tagged with the service that owns it (`operations` for
/// `/healthz`, `/readyz`, `/metrics` and `/admin/*`, which every process serves).
pub fn document() -> serde_json::Value {
    let services = Service::ALL
        .into_iter()
        .filter_map(|s| Some((s.name(), s.openapi()?)));
    tanda_core::openapi::document(std::iter::once(("operations", ops_openapi())).chain(services))
}
