//! The operator's page: each service's readiness and outbox, consumer lag with pause and resume,
//! circuit breakers, dead letters with redrive, and counts of rides and reservations by status.

use askama::Template;
use axum::Router;
use axum::extract::Path;
use axum::response::Response;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use tanda_core::auth::Role;

use crate::api::{Api, ApiError, enc};
use crate::i18n::Tr;
use crate::model::{Consumer, DeadLetter, ServiceStatus, Stats};
use crate::session::{Pages, Refusal, User};
use crate::view::{Frame, badge, html, render};

pub(crate) fn routes() -> Router<Pages> {
    Router::new()
        .route("/operator", get(page))
        .route("/ui/operator/panel", get(panel_fragment))
        .route("/ui/operator/dead-letters/{id}/redrive", post(redrive))
        .route(
            "/ui/operator/consumers/{name}/{switch}",
            post(switch_consumer),
        )
}

#[derive(Template)]
#[template(path = "operator.html")]
struct OperatorPage {
    frame: Frame,
    tr: Tr,
    panel: String,
}

/// Only the operator has this page and its actions.
fn operator_only(user: &User) -> Result<(), Refusal> {
    if user.is_operator() {
        Ok(())
    } else {
        Err(Refusal::WrongRole(Role::Operator))
    }
}

async fn page(user: User) -> Response {
    let frame = Frame::of(&user, "title-operate", "operator");
    if let Err(refusal) = operator_only(&user) {
        return crate::refused_page(&user, refusal, frame, "/operator", "", "");
    }
    html(&OperatorPage {
        tr: user.tr,
        frame,
        panel: render(&panel(&user.api, user.tr, Vec::new()).await),
    })
}

struct Count {
    status: String,
    badge: String,
    badge_class: &'static str,
    count: i64,
}

struct Counts {
    total: i64,
    rows: Vec<Count>,
}

struct BreakerBadge {
    name: String,
    /// The state in the page's language.
    state: String,
    class: &'static str,
}

struct ServiceRow {
    service: String,
    ready: bool,
    /// Events waiting for the relay (distributed mode); a dash where consumers read the outbox
    /// directly (all-in-one).
    outbox: String,
    breakers: Vec<BreakerBadge>,
}

struct ConsumerRow {
    name: String,
    name_q: String,
    lag: String,
    paused: bool,
}

struct DeadLetterRow {
    id: String,
    id_q: String,
    consumer: String,
    kind: String,
    error: String,
    attempts: i64,
    parked_at: String,
    parked_text: String,
    redriven: bool,
}

#[derive(Template)]
#[template(path = "operator_panel.html")]
struct Panel {
    tr: Tr,
    errors: Vec<String>,
    rides: Counts,
    reservations: Counts,
    services: Vec<ServiceRow>,
    consumers: Vec<ConsumerRow>,
    dead_letters: Vec<DeadLetterRow>,
}

/// Reads one part of the panel; a part that cannot be read is reported and left empty.
async fn part<T: DeserializeOwned + Default>(
    api: &Api,
    tr: Tr,
    path: &str,
    errors: &mut Vec<String>,
) -> T {
    match api.get::<T>(path).await {
        Ok(t) => t,
        Err(e) => {
            errors.push(format!("{path}: {}", tr.problem(&e)));
            T::default()
        }
    }
}

fn counts(tr: Tr, stats: Stats) -> Counts {
    Counts {
        total: stats.total,
        rows: stats
            .by_status
            .into_iter()
            .map(|(status, count)| {
                let (badge, badge_class) = badge(tr, &status);
                Count {
                    status,
                    badge,
                    badge_class,
                    count,
                }
            })
            .collect(),
    }
}

async fn panel(api: &Api, tr: Tr, mut errors: Vec<String>) -> Panel {
    let (rides, reservations, services, consumers, dead) = {
        let e = &mut errors;
        let rides: Stats = part(api, tr, "/rideHistories/stats", e).await;
        let reservations: Stats = part(api, tr, "/reservationViews/stats", e).await;
        let services: Vec<ServiceStatus> = part(api, tr, "/admin/services", e).await;
        let consumers: Vec<Consumer> = part(api, tr, "/admin/consumers", e).await;
        let dead: Vec<DeadLetter> = part(api, tr, "/admin/dead-letters", e).await;
        (rides, reservations, services, consumers, dead)
    };
    Panel {
        tr,
        errors,
        rides: counts(tr, rides),
        reservations: counts(tr, reservations),
        services: services
            .into_iter()
            .map(|s| ServiceRow {
                service: s.service,
                ready: s.ready,
                outbox: s
                    .outbox_unpublished
                    .map_or_else(|| "–".to_owned(), |n| n.to_string()),
                breakers: s
                    .breakers
                    .into_iter()
                    .map(|b| BreakerBadge {
                        class: match b.state.as_str() {
                            "CLOSED" => "ok",
                            "HALF_OPEN" => "wait",
                            _ => "bad",
                        },
                        name: b.name,
                        state: match b.state.as_str() {
                            "CLOSED" | "OPEN" | "HALF_OPEN" => {
                                tr.t(&format!("breaker-{}", b.state))
                            }
                            _ => b.state,
                        },
                    })
                    .collect(),
            })
            .collect(),
        consumers: consumers
            .into_iter()
            .map(|c| ConsumerRow {
                name_q: enc(&c.name),
                lag: c.lag.map_or_else(|| "–".to_owned(), |n| n.to_string()),
                paused: c.paused,
                name: c.name,
            })
            .collect(),
        dead_letters: dead
            .into_iter()
            .map(|d| DeadLetterRow {
                id_q: enc(&d.id),
                id: d.id,
                consumer: d.consumer,
                kind: d.kind,
                error: d.error,
                attempts: d.attempts,
                parked_text: tr.time(&d.parked_at),
                parked_at: d.parked_at,
                redriven: d.redriven_at.is_some(),
            })
            .collect(),
    }
}

async fn panel_fragment(user: User) -> Response {
    match operator_only(&user) {
        Ok(()) => html(&panel(&user.api, user.tr, Vec::new()).await),
        Err(refusal) => refusal.problem(),
    }
}

/// The panel after an action, with the action's error on top if it failed.
async fn after(api: &Api, tr: Tr, outcome: Result<serde_json::Value, ApiError>) -> Response {
    let errors = outcome.err().map(|e| tr.problem(&e)).into_iter().collect();
    html(&panel(api, tr, errors).await)
}

async fn redrive(user: User, Path(id): Path<String>) -> Response {
    if let Err(refusal) = operator_only(&user) {
        return refusal.problem();
    }
    let api = &user.api;
    let outcome = api
        .post_empty(&format!("/admin/dead-letters/{}/redrive", enc(&id)))
        .await;
    after(api, user.tr, outcome).await
}

async fn switch_consumer(user: User, Path((name, switch)): Path<(String, String)>) -> Response {
    if let Err(refusal) = operator_only(&user) {
        return refusal.problem();
    }
    let api = &user.api;
    let outcome = match switch.as_str() {
        "pause" | "resume" => {
            api.post_empty(&format!("/admin/consumers/{}/{switch}", enc(&name)))
                .await
        }
        other => Err(ApiError {
            status: axum::http::StatusCode::NOT_FOUND,
            code: "unknown_action".to_owned(),
            detail: user.tr.t1("ops-no-switch", "switch", other),
            retry_after: None,
        }),
    };
    after(api, user.tr, outcome).await
}
