//! The HTTP host every process runs: operational endpoints (`/healthz`, `/readyz`, `/metrics`,
//! dead-letter and consumer admin), the common middleware, and serving with graceful shutdown.

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::{error, info};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::breaker::CircuitBreaker;
use crate::consumer::{AdminError, Consumers};
use crate::db::Db;
use crate::http::Path;
use crate::lifecycle::{Lifecycle, termination_signal};
use crate::problem::Problem;
use crate::service::ServiceParts;
use crate::settings;
use crate::sql::query_scalar;

mod connection;

pub use connection::BodyTimedOut;

pub use crate::recorder::{LATENCY_BUCKETS, handle as metrics_handle};

/// What the operational endpoints look at.
#[derive(Clone)]
pub struct Ops {
    pub lifecycle: Lifecycle,
    pub databases: Vec<Db>,
    pub consumers: Consumers,
    /// What else readiness requires, by name: for the gateway, each service it routes to.
    pub required: Vec<(&'static str, Probe)>,
    /// Dependencies that `/readyz`, `/admin/services` and the `tanda_dependency_up` gauge report
    /// but readiness does not require: the broker, whose outages the outbox absorbs. Were it
    /// required, a broker blip would take every instance out of every Service at once.
    pub reported: Vec<(&'static str, ReadyCheck)>,
    /// The circuit breakers of the services in this process.
    pub breakers: Vec<ServiceBreaker>,
    /// True when a relay publishes the outboxes to a broker (distributed mode); `/admin/services`
    /// then counts the events each has yet to publish.
    pub relayed: bool,
}

/// A circuit breaker of one service, as `/admin/services` and `/metrics` show it.
#[derive(Clone)]
pub struct ServiceBreaker {
    pub service: &'static str,
    pub name: &'static str,
    pub breaker: Arc<CircuitBreaker>,
}

impl ServiceBreaker {
    /// The breakers a service declares in its parts.
    pub fn of(parts: &ServiceParts) -> impl Iterator<Item = ServiceBreaker> + '_ {
        parts.breakers.iter().map(|(name, breaker)| ServiceBreaker {
            service: parts.name,
            name,
            breaker: breaker.clone(),
        })
    }
}

/// The state of one dependency, known without asking it: true when it is usable.
pub type ReadyCheck = Arc<dyn Fn() -> bool + Send + Sync>;
/// A question to one dependency (e.g. another service's `/readyz`): true when it is usable.
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// `/healthz`, `/readyz`, `/metrics` (public: for probes and a scraper on the internal network)
/// and the admin endpoints for dead letters and consumers (the operator's).
pub fn ops_router(ops: Ops) -> Router {
    metrics_handle(); // install the recorder now, so nothing recorded before the first scrape is lost
    ops_routes().with_state(ops).into()
}

/// What `ops_router` serves, as part of the API's document.
pub fn ops_openapi() -> utoipa::openapi::OpenApi {
    ops_routes().into_openapi()
}

fn ops_routes() -> OpenApiRouter<Ops> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(render_metrics))
        .routes(routes!(list_dead_letters))
        .routes(routes!(redrive))
        .routes(routes!(list_services))
        .routes(routes!(list_consumers))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", security(()),
    responses((status = OK, description = "Alive", body = Object, example = json!({"status": "ok"}))))]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: this instance can serve — not draining, each of its databases takes a write, and
/// whatever else it requires answers. The reported dependencies are listed, but do not count.
#[utoipa::path(get, path = "/readyz", security(()), responses(
    (status = OK, description = "Ready", body = Object,
        example = json!({"ready": true, "dependencies": {"book": "ok", "nats": "unreachable"}})),
    (status = SERVICE_UNAVAILABLE, description = "Not ready (or shutting down)", body = Object),
))]
async fn readyz(State(ops): State<Ops>) -> Response {
    if ops.lifecycle.is_stopping() {
        return Problem::unavailable("shutting_down", "this instance is shutting down", 1)
            .into_response();
    }
    let (ready, checks) = readiness(&ops).await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"ready": ready, "dependencies": checks})),
    )
        .into_response()
}

/// Whether this instance can serve, and the state of each dependency (also the `tanda_ready`
/// gauge).
async fn readiness(ops: &Ops) -> (bool, serde_json::Map<String, serde_json::Value>) {
    let mut checks = serde_json::Map::new();
    let mut ready = !ops.lifecycle.is_stopping();
    let mut record = |name: &str, ok: bool| {
        let state = if ok { "ok" } else { "unreachable" };
        checks.insert(name.to_owned(), json!(state));
    };
    for db in &ops.databases {
        let ok = writable(db).await;
        ready &= ok;
        record(db.name(), ok);
    }
    let answers = futures::future::join_all(ops.required.iter().map(|(_, probe)| probe())).await;
    for ((name, _), ok) in ops.required.iter().zip(answers) {
        ready &= ok;
        record(name, ok);
    }
    for (name, ok) in report(ops) {
        record(name, ok);
    }
    metrics::gauge!("tanda_ready").set(f64::from(u8::from(ready)));
    (ready, checks)
}

/// The reported dependencies' states, also set as `tanda_dependency_up{dependency}`.
fn report(ops: &Ops) -> Vec<(&'static str, bool)> {
    ops.reported
        .iter()
        .map(|(name, check)| {
            let ok = check();
            metrics::gauge!("tanda_dependency_up", "dependency" => *name)
                .set(f64::from(u8::from(ok)));
            (*name, ok)
        })
        .collect()
}

/// The database takes a write within two seconds (a full disk, a read-only or unreachable
/// server: no).
async fn writable(db: &Db) -> bool {
    tokio::time::timeout(Duration::from_secs(2), db.writable())
        .await
        .is_ok_and(|r| r.is_ok())
}

/// Each service in this process: ready or not, the events its outbox has yet to publish (when a
/// relay publishes it), and its circuit breakers.
#[utoipa::path(get, path = "/admin/services",
    responses((status = OK, description = "The services", body = Vec<Object>)))]
async fn list_services(
    caller: Caller,
    State(ops): State<Ops>,
) -> Result<Json<Vec<serde_json::Value>>, Problem> {
    caller.require_operator()?;
    let draining = ops.lifecycle.is_stopping();
    let dependencies: serde_json::Map<String, serde_json::Value> = report(&ops)
        .into_iter()
        .map(|(name, ok)| {
            (
                name.to_owned(),
                json!(if ok { "ok" } else { "unreachable" }),
            )
        })
        .collect();
    let mut services = Vec::with_capacity(ops.databases.len());
    for db in &ops.databases {
        let ready = !draining && writable(db).await;
        let unpublished = match (ops.relayed, ready) {
            (true, true) => Some(unpublished(db).await.map_err(Problem::from)?),
            _ => None,
        };
        let breakers: Vec<_> = ops
            .breakers
            .iter()
            .filter(|b| b.service == db.name())
            .map(|b| json!({"name": b.name, "state": b.breaker.state().as_str()}))
            .collect();
        let mut service = json!({"service": db.name(), "ready": ready, "breakers": breakers,
            "dependencies": dependencies});
        if let Some(n) = unpublished {
            service["outboxUnpublished"] = json!(n);
        }
        services.push(service);
    }
    Ok(Json(services))
}

/// The events of `db`'s outbox not yet relayed to the broker.
async fn unpublished(db: &Db) -> Result<i64, crate::db::DbError> {
    query_scalar::<i64>("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(db.reader())
        .await
}

/// Prometheus text. No personal data; every label takes a bounded set of values.
#[utoipa::path(get, path = "/metrics", security(()),
    responses((status = OK, description = "Prometheus text exposition", body = String,
        content_type = "text/plain")))]
async fn render_metrics(State(ops): State<Ops>) -> Response {
    readiness(&ops).await;
    if let Ok(n) = ops.consumers.dead_letter_count().await {
        metrics::gauge!("tanda_dead_letters").set(n as f64);
    }
    if ops.relayed {
        for db in &ops.databases {
            if let Ok(n) = unpublished(db).await {
                metrics::gauge!("tanda_outbox_unpublished", "service" => db.name().to_owned())
                    .set(n as f64);
            }
        }
    }
    for b in &ops.breakers {
        metrics::gauge!("tanda_breaker_state", "name" => b.name).set(b.breaker.state().gauge());
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        metrics_handle().render(),
    )
        .into_response()
}

impl From<AdminError> for Problem {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::UnknownDeadLetter(id) => Problem::not_found("dead letter", &id),
            AdminError::UnknownConsumer(name) => Problem::not_found("consumer", &name),
            AdminError::AlreadyRedriven(_) => Problem::conflict("already_redriven", e.to_string()),
            AdminError::HandlerFailed(_) => Problem::conflict("redrive_failed", e.to_string()),
            AdminError::Db(e) => e.into(),
        }
    }
}

/// Events parked after a handler refused them.
#[utoipa::path(get, path = "/admin/dead-letters",
    responses((status = OK, description = "Parked events", body = Vec<Object>)))]
async fn list_dead_letters(caller: Caller, State(ops): State<Ops>) -> Result<Response, Problem> {
    caller.require_operator()?;
    Ok(Json(ops.consumers.dead_letters().await?).into_response())
}

/// Hands a parked event to its handler again.
#[utoipa::path(post, path = "/admin/dead-letters/{id}/redrive",
    params(("id" = String, Path, description = "The dead letter")),
    responses(
        (status = OK, description = "Handled", body = Object),
        (status = CONFLICT, description = "Already redriven, or the handler refused it again",
            body = Problem, content_type = "application/problem+json"),
    ))]
async fn redrive(
    caller: Caller,
    State(ops): State<Ops>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    caller.require_operator()?;
    Ok(Json(ops.consumers.redrive(&id).await?).into_response())
}

/// Every consumer with whether it is paused and how many events it has yet to handle.
#[utoipa::path(get, path = "/admin/consumers",
    responses((status = OK, description = "The consumers", body = Vec<Object>)))]
async fn list_consumers(
    caller: Caller,
    State(ops): State<Ops>,
) -> Result<Json<Vec<serde_json::Value>>, Problem> {
    caller.require_operator()?;
    let mut list = Vec::new();
    for name in ops.consumers.names() {
        list.push(json!({
            "name": name,
            "paused": ops.consumers.is_paused(name)?,
            "lag": ops.consumers.lag(name).await?,
        }));
    }
    Ok(Json(list))
}

/// Stops a consumer taking events, on every instance of the service (the switch is kept in its
/// database, and holds across restarts); they wait in its source until it resumes.
#[utoipa::path(post, path = "/admin/consumers/{name}/pause",
    params(("name" = String, Path, description = "The consumer")),
    responses((status = OK, description = "Paused", body = Object)))]
async fn pause(
    caller: Caller,
    State(ops): State<Ops>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    caller.require_operator()?;
    ops.consumers.pause(&name).await?;
    Ok(Json(json!({"name": name, "paused": true})))
}

/// Lets a paused consumer take events again, on every instance.
#[utoipa::path(post, path = "/admin/consumers/{name}/resume",
    params(("name" = String, Path, description = "The consumer")),
    responses((status = OK, description = "Resumed", body = Object)))]
async fn resume(
    caller: Caller,
    State(ops): State<Ops>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    caller.require_operator()?;
    ops.consumers.resume(&name).await?;
    Ok(Json(json!({"name": name, "paused": false})))
}

/// Request ids (`x-request-id`, generated when absent and echoed back), request metrics, tracing.
pub fn with_common_layers(router: Router) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    #[cfg(feature = "failpoints")]
    let router = router.layer(middleware::from_fn(crate::failpoint::arm));
    router
        .layer(middleware::from_fn(record_request))
        // Failures are answered as problems and logged where they arise (`Problem::internal`);
        // a 503 `no_taxi_available` is an answer, not an error of this process.
        .layer(TraceLayer::new_for_http().on_failure(()))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Requests are counted by method, route and status, each from a fixed set so that no caller can
/// add series: a method outside the standard ones is `other`, a path no route matches `unmatched`.
/// Those being served are a gauge (what a drain waits for).
async fn record_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let in_flight = InFlight::enter();
    let response = next.run(request).await;
    drop(in_flight);
    let status = response.status().as_u16().to_string();
    metrics::counter!("tanda_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("tanda_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// One request being served, counted in `tanda_http_requests_in_flight` until it is dropped:
/// answered, or abandoned when its client goes away.
struct InFlight(metrics::Gauge);

impl InFlight {
    fn enter() -> Self {
        let gauge = metrics::gauge!("tanda_http_requests_in_flight");
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// How [`serve`] treats connections.
#[derive(Debug, Clone, Copy)]
pub struct HttpConfig {
    /// How long a client has to send a request's head — from connecting, or from the first byte
    /// of the next request on a kept-alive connection — and then, again, its body.
    pub header_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request with nothing in flight.
    pub idle_timeout: Duration,
    /// Connections served at once; each one beyond is answered `503` and closed.
    pub max_connections: usize,
    /// How long, after SIGTERM, the instance goes on serving with `/readyz` answering 503, so
    /// that load balancers (a Kubernetes Service's endpoints) stop sending it requests before it
    /// stops taking them. A second signal cuts it short.
    pub drain_delay: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpSettings::default().config()
    }
}

/// How connections are treated, as the operator sets it (`--http-*`, `--drain-delay`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct HttpSettings {
    /// How long a client has to send a request's head — from connecting, or from the first byte
    /// of its next request on a kept-alive connection — and then, again, its body. A connection
    /// that takes longer is closed (a body that stops arriving is answered `408`).
    #[arg(global = true, long = "http-header-timeout", env = "TANDA_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = settings::timeout)]
    #[serde(serialize_with = "settings::write_duration")]
    pub header_timeout: Duration,

    /// How long a kept-alive connection may wait for its next request before it is closed. A
    /// response in progress (a notification stream) is never cut. Tanda's own clients (the
    /// gateway, dispatch calling pay) drop their idle connections after 30s: keep this above.
    #[arg(global = true, long = "http-idle-timeout", env = "TANDA_HTTP_IDLE_TIMEOUT", default_value = "60s", value_parser = settings::timeout)]
    #[serde(serialize_with = "settings::write_duration")]
    pub idle_timeout: Duration,

    /// After SIGTERM (or Ctrl-C), how long to go on serving with `/readyz` answering 503, so that
    /// load balancers stop sending requests before the listener closes: under Kubernetes, longer
    /// than its endpoints take to follow (a few of kube-proxy's and an ingress's updates), and
    /// shorter than `terminationGracePeriodSeconds` minus the time in-flight work needs. A second
    /// signal stops at once. 0: stop at once.
    #[arg(global = true, long = "drain-delay", env = "TANDA_DRAIN_DELAY", default_value = "5s", value_parser = settings::duration)]
    #[serde(serialize_with = "settings::write_duration")]
    pub drain_delay: Duration,

    /// Connections served at once; each one beyond is answered `503 too_many_connections`
    /// (`Retry-After: 1`) and closed. Default: half the process's open-file limit, at most 4096.
    #[arg(global = true, long = "http-max-connections", env = "TANDA_HTTP_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        settings::defaults()
    }
}

impl HttpSettings {
    /// What [`serve`] is given.
    pub fn config(&self) -> HttpConfig {
        HttpConfig {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            drain_delay: self.drain_delay,
            max_connections: self
                .max_connections
                .map_or_else(default_max_connections, |n| n as usize),
        }
    }
}

/// Half the process's open-file limit, at most 4096: the other half is left for the databases,
/// the connections to other services and the logs.
pub fn default_max_connections() -> usize {
    #[cfg(unix)]
    let files = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    #[cfg(not(unix))]
    let files = None;
    files.map_or(4096, |n| (n / 2).clamp(1, 4096) as usize)
}

/// Connections beyond the cap being answered at once; any more are closed without an answer.
const REFUSALS_AT_ONCE: usize = 64;

/// Serves `router` until SIGTERM/Ctrl-C or `lifecycle`'s shutdown: readiness turns false (after
/// a signal, requests are still served for the drain delay), the listener closes, in-flight
/// requests finish (idle connections close), then background work stops after the unit it is in. Each request carries its peer's address
/// (`ConnectInfo<SocketAddr>`). Connections are held to `config` ([`HttpConfig`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    lifecycle: Lifecycle,
    config: HttpConfig,
) -> std::io::Result<()> {
    let mut shutdown = pin!(shutdown_begun(lifecycle.clone(), config.drain_delay));
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Most likely out of file descriptors: wait for some to close.
                error!(error = %e, "accepting a connection failed");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("tanda_http_connections_refused_total").increment(1);
            if let Ok(refusing) = refusals.clone().try_acquire_owned() {
                connections.spawn(async move {
                    connection::refuse(stream).await;
                    drop(refusing);
                });
            }
            continue;
        };
        let (router, closing) = (router.clone(), closing.clone());
        connections.spawn(async move {
            let open = metrics::gauge!("tanda_http_connections");
            open.increment(1.0);
            connection::run(stream, peer, router, config, closing).await;
            open.decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    closing.cancel();
    connections.close();
    connections.wait().await;
    lifecycle.stop_background().await;
    Ok(())
}

/// Completes when the listener should close: at once on `lifecycle`'s shutdown; after a signal
/// (SIGTERM, Ctrl-C), once the drain delay has passed or a second signal came, readiness having
/// turned false at the first.
async fn shutdown_begun(lifecycle: Lifecycle, drain_delay: Duration) {
    let token = lifecycle.token();
    let signalled = tokio::select! {
        _ = termination_signal() => true,
        _ = token.cancelled() => false,
    };
    lifecycle.begin_shutdown();
    if signalled {
        info!(drain_delay = ?drain_delay, "shutdown requested; draining");
        tokio::select! {
            _ = tokio::time::sleep(drain_delay) => {}
            _ = termination_signal() => info!("asked again; stopping now"),
            _ = token.cancelled() => {}
        }
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
