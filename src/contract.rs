//! The API's OpenAPI document, assembled from every service's own part (each generated from its
//! handlers) and the operational endpoints every process serves. The gateway serves it at
//! `/openapi.json` in both run modes; the tests walk it to call every operation.

use tanda_core::host::ops_openapi;

use crate::registry;

/// The whole document, each operation tagged with the service that owns it (`operations` for
/// `/healthz`, `/readyz`, `/metrics` and `/admin/*`, which every process serves).
pub fn document() -> serde_json::Value {
    let services = registry::specs().map(|s| (s.name, (s.openapi)()));
    tanda_core::openapi::document(std::iter::once(("operations", ops_openapi())).chain(services))
}
