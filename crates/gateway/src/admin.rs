//! The admin endpoints over every service at once. Services, dead letters and consumers live in each
//! service's own database, so the gateway asks all services and merges the lists, or finds the
//! one service that knows a given id.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::future::try_join_all;
use serde_json::Value;
use tanda_core::Problem;
use tanda_core::auth::Caller;
use tanda_core::http::Path;

use crate::error::Error;
use crate::proxy::{Upstream, Upstreams, relay};

type Services = Arc<[Upstream]>;

pub(crate) fn routes(upstreams: &Upstreams, client: &reqwest::Client) -> Router {
    let services: Services = upstreams.distinct(client).into();
    Router::new()
        .route("/admin/dead-letters", get(list_dead_letters))
        .route("/admin/dead-letters/{id}/redrive", post(redrive))
        .route("/admin/services", get(gather))
        .route("/admin/consumers", get(gather))
        .route("/admin/consumers/{name}/pause", post(switch_consumer))
        .route("/admin/consumers/{name}/resume", post(switch_consumer))
        .with_state(services)
}

/// Every parked event of every service, newest first (`parkedAt` has a fixed width, so the
/// strings sort as the times do).
async fn list_dead_letters(
    caller: Caller,
    services: State<Services>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, Error> {
    let Json(mut all) = gather(caller, services, uri, headers).await?;
    all.sort_by(|a, b| b["parkedAt"].as_str().cmp(&a["parkedAt"].as_str()));
    Ok(Json(all))
}

/// Asks every service for the same list at once and concatenates the answers.
async fn gather(
    caller: Caller,
    State(services): State<Services>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, Error> {
    caller.require_operator()?;
    let lists = try_join_all(services.iter().map(|service| async {
        let answer = service
            .send(Method::GET, &uri, &headers, Bytes::new())
            .await?;
        if !answer.status().is_success() {
            return Err(Error::Answered {
                service: service.name,
                answer: relay(answer),
            });
        }
        answer
            .json::<Vec<Value>>()
            .await
            .map_err(|source| Error::Unreadable {
                service: service.name,
                source,
            })
    }))
    .await?;
    Ok(Json(lists.into_iter().flatten().collect()))
}

async fn redrive(
    caller: Caller,
    State(services): State<Services>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, Error> {
    caller.require_operator()?;
    first_that_knows(
        &services,
        &uri,
        &headers,
        Problem::not_found("dead letter", &id),
    )
    .await
}

async fn switch_consumer(
    caller: Caller,
    State(services): State<Services>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, Error> {
    caller.require_operator()?;
    first_that_knows(
        &services,
        &uri,
        &headers,
        Problem::not_found("consumer", &name),
    )
    .await
}

/// POSTs to one service after another until one knows the id (answers anything but 404) and
/// relays its answer. `unknown` when none knows it; unavailable when one that might could not be
/// asked.
async fn first_that_knows(
    services: &[Upstream],
    uri: &Uri,
    headers: &HeaderMap,
    unknown: Problem,
) -> Result<Response, Error> {
    let mut unreachable = None;
    for service in services {
        match service.send(Method::POST, uri, headers, Bytes::new()).await {
            Ok(answer) if answer.status() == StatusCode::NOT_FOUND => {}
            Ok(answer) => return Ok(relay(answer)),
            Err(e) => {
                unreachable.get_or_insert(e);
            }
        }
    }
    match unreachable {
        Some(e) => Err(e),
        None => Ok(unknown.into_response()),
    }
}
