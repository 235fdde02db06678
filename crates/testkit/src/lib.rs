//! What the tests of every crate share, written once: a service built on a throw-away SQLite
//! database ([`Harness`]), a request to its router as a given caller ([`Harness::call`],
//! [`Answer`]), an event delivered as the consumer runtime delivers it ([`Harness::deliver`]),
//! and one way to wait for something to become true ([`eventually`], [`poll`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::Value;
use tanda_core::auth::{Caller, Role};
use tanda_core::consumer::Consumer;
use tanda_core::db::{Db, Durability};
use tanda_core::id::ClientId;
use tanda_core::service::{ServiceParts, ServiceSpec};
use tanda_core::timers::TimerHandler;
use tanda_core::{Envelope, Event, SystemClock};
use tempfile::TempDir;
use tower::ServiceExt;

/// A service as its process would build it, on a SQLite database in a directory of its own that
/// goes with the harness.
pub struct Harness {
    _dir: TempDir,
    pub db: Db,
    pub router: Router,
    pub consumers: Vec<Consumer>,
    pub timers: Option<Arc<dyn TimerHandler>>,
}

impl Harness {
    /// The service of `spec`, built by `build` on its database (opened, migrated, its published
    /// types declared, as both run modes do).
    pub async fn new<F>(spec: &ServiceSpec, build: F) -> Self
    where
        F: AsyncFnOnce(Db) -> ServiceParts,
    {
        let (dir, db) = database(spec).await;
        let parts = build(db.clone()).await;
        assert_eq!(parts.name, spec.name, "the parts are the spec's service");
        Self {
            _dir: dir,
            db,
            router: parts.router,
            consumers: parts.consumers,
            timers: parts.timers,
        }
    }

    /// The consumer called `name`.
    pub fn consumer(&self, name: &str) -> &Consumer {
        self.consumers
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("the service has no consumer {name}"))
    }

    /// Delivers `event` to the service's (first) consumer as the runtime would: through its
    /// handler, in one unit of work, committed. Returns the envelope it came in.
    pub async fn deliver(&self, event: &impl Event, correlation: &str) -> Envelope {
        let envelope = Envelope::new(event, correlation, None, self.db.now());
        self.deliver_envelope(&envelope).await;
        envelope
    }

    /// Delivers `envelope` as [`Harness::deliver`] does.
    pub async fn deliver_envelope(&self, envelope: &Envelope) {
        let consumer = self.consumers.first().expect("the service has a consumer");
        let mut uow = self.db.begin().await.unwrap();
        consumer.handler.handle(&mut uow, envelope).await.unwrap();
        uow.commit().await.unwrap();
    }

    /// A request to the service's router by `caller` (none: an anonymous one, which the edge
    /// would have refused or let through as the route says), with a JSON `body` if any and the
    /// given extra `headers`.
    pub async fn call(
        &self,
        caller: Option<&Caller>,
        method: &str,
        uri: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        call(&self.router, caller, method, uri, body, headers).await
    }
}

/// A request to `router` by `caller` (none: an anonymous one, which the edge would have refused
/// or let through as the route says), with a JSON `body` if any and the given extra `headers`.
pub async fn call(
    router: &Router,
    caller: Option<&Caller>,
    method: &str,
    uri: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(caller) = caller {
        request = request.extension(caller.clone());
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_owned()));
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    Answer::read(response).await
}

/// `spec`'s database in a fresh directory: opened, migrated, its published types declared.
pub async fn database(spec: &ServiceSpec) -> (TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), spec).await;
    (dir, db)
}

/// `spec`'s database in `dir` (new, or one an earlier start left), as [`database`] opens it.
pub async fn open(dir: &std::path::Path, spec: &ServiceSpec) -> Db {
    let db = Db::open_sqlite(dir, spec.name, Durability::Normal, Arc::new(SystemClock))
        .await
        .unwrap();
    db.migrate(spec.migrations).await.unwrap();
    db.declare_produces(spec.produces);
    db
}

/// The `Idempotency-Key` header carrying `key`, if there is one, for [`call`].
pub fn idempotency_key(key: Option<&str>) -> Vec<(&'static str, &str)> {
    key.map(|k| ("idempotency-key", k)).into_iter().collect()
}

/// A caller who signed in as `id` with `role`.
pub fn caller(id: &str, role: Role) -> Caller {
    Caller::new(ClientId::parse(id).unwrap(), vec![role])
}

/// A response, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as sent.
    pub raw: String,
    /// The body as JSON (`Null` if it is not JSON).
    pub body: Value,
}

impl Answer {
    pub async fn read(response: axum::response::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let raw = String::from_utf8(bytes.to_vec()).unwrap();
        let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            raw,
            body,
        }
    }
}

/// How long [`eventually`] waits before it gives up: long enough for a loaded machine, where
/// nothing a test waits for takes more than a few seconds.
pub const WITHIN: Duration = Duration::from_secs(20);

/// The longest pause between two asks of [`poll`]: what is waited for is local (a database, a
/// server on this machine), so a look costs little and an answer is seen soon after it holds.
pub const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Waits until `check` holds, for at most [`WITHIN`]; panics naming `what` otherwise.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    poll(what, WITHIN, async || {
        if check().await {
            Ok(())
        } else {
            Err(String::new())
        }
    })
    .await;
}

/// Asks `check` until it answers `Ok`, for at most `within`, pausing from 5 ms and doubling up
/// to [`MAX_PAUSE`] between asks; returns what it answered. Gives up with a panic naming `what` and
/// the last `Err` (what was seen instead).
pub async fn poll<T>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(5);
    loop {
        let seen = match check().await {
            Ok(found) => return found,
            Err(seen) => seen,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}{}{seen}",
            if seen.is_empty() { "" } else { "; last seen: " }
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn poll_returns_what_the_check_found_once_it_holds() {
        let asks = AtomicU32::new(0);
        let found = poll("the third ask", WITHIN, async || {
            match asks.fetch_add(1, Ordering::SeqCst) {
                n if n >= 2 => Ok(n),
                n => Err(format!("ask {n}")),
            }
        })
        .await;
        assert_eq!(found, 2);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "timed out waiting for never; last seen: still no")]
    async fn poll_gives_up_at_its_deadline_naming_what_it_saw() {
        poll::<()>("never", Duration::from_secs(1), async || {
            Err("still no".into())
        })
        .await;
    }
}
