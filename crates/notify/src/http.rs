//! `GET /notifications` and its live twin `GET /notifications/stream` (Server-Sent Events).
//!
//! A stream tails the table: it remembers the last id it sent, reads what came after, and sleeps
//! until a commit wakes it (or a second passes: another process may have inserted). Reading only
//! committed rows means a stream never shows a notification that was rolled back. Ids are made
//! inside the writing transaction, so with one writer (SQLite) they commit in id order.

use std::collections::VecDeque;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use tanda_core::auth::{Caller, Role, forbidden};
use tanda_core::http::{Json, Query};
use tanda_core::lifecycle::Lifecycle;
use tanda_core::{Db, Problem};
use tokio::sync::watch;
use tracing::warn;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Error;
use crate::domain::Receiver;
use crate::store::{self, Notification};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;
/// Fallback look at the table when no commit signal arrives.
const POLL: Duration = Duration::from_secs(1);
const BATCH: i64 = 100;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub wake: watch::Sender<u64>,
    pub lifecycle: Lifecycle,
}

pub fn router(state: AppState) -> Router {
    routes().with_state(state).into()
}

/// The operations `router` serves, documented.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(stream_notifications))
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidReceiver(_) => Problem::bad_request("invalid_receiver", e.to_string()),
            Error::InvalidLimit => Problem::bad_request("invalid_limit", e.to_string()),
            Error::InvalidLastEventId => {
                Problem::bad_request("invalid_last_event_id", e.to_string())
            }
            Error::Db(e) => e.into(),
            Error::Decode(_)
            | Error::InvalidWebhook(_)
            | Error::Webhook(_)
            | Error::WebhookStatus(_) => Problem::internal(&e),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// `customer:{customerId}`, `driver:{driverId}` or `user:{userId}`; omitted: the caller's own
    /// (`driver:` for a driver, `customer:` for a customer). An operator names one.
    #[param(example = "customer:kim-minji")]
    receiver: Option<String>,
    /// How many, newest first.
    // A string here so that a bad one gets its own problem.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500, default = 100)]
    limit: Option<String>,
}

/// The receiver's latest notifications, newest first.
///
/// Each is worded in the receiver's language as it is now: the one they chose at sign-up or
/// since (`PUT /auth/users/{userId}/locale`), Korean by default.
#[utoipa::path(get, path = "/notifications", security(("bearer" = ["customer", "driver"])),
    params(ListParams),
    responses((status = OK, description = "The notifications", body = Vec<Notification>)))]
async fn list_notifications(
    caller: Caller,
    State(s): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<Notification>>, Problem> {
    let receiver = receiver(&caller, params.receiver.as_deref())?;
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or(Error::InvalidLimit)?,
    };
    Ok(Json(store::newest(&s.db, &receiver, limit).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamParams {
    /// `customer:{customerId}`, `driver:{driverId}` or `user:{userId}`; omitted: the caller's own
    /// (`driver:` for a driver, `customer:` for a customer). An operator names one.
    #[param(example = "customer:kim-minji")]
    receiver: Option<String>,
}

/// The receiver's new notifications, live, as Server-Sent Events.
///
/// One `notification` event per notification stored after the stream starts (or after the one
/// `Last-Event-ID` names): its `id` is the notificationId, its `data` the notification as JSON.
#[utoipa::path(get, path = "/notifications/stream",
    security(("bearer" = ["customer", "driver"])),
    params(StreamParams,
        ("Last-Event-ID" = Option<String>, Header, format = "uuid",
            description = "The last notificationId received: a reconnecting client gets what \
                came after it")),
    responses((status = OK, description = "An endless stream of `notification` events",
        body = String, content_type = "text/event-stream")))]
async fn stream_notifications(
    caller: Caller,
    State(s): State<AppState>,
    Query(params): Query<StreamParams>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, axum::Error>>>, Problem> {
    let receiver = receiver(&caller, params.receiver.as_deref())?;
    // Where to start is settled before the response goes out, so anything committed after the
    // client sees the headers is streamed.
    let last = match last_event_id(&headers)? {
        Some(id) => id,
        None => store::latest_id(&s.db, &receiver)
            .await?
            .unwrap_or_default(),
    };
    let tail = Tail {
        db: s.db,
        receiver,
        last,
        pending: VecDeque::new(),
        wake: s.wake.subscribe(),
        lifecycle: s.lifecycle,
    };
    let events = futures::stream::unfold(tail, |mut tail| async move {
        let n = tail.next().await?;
        let event = Event::default()
            .event("notification")
            .id(&n.notification_id)
            .json_data(&n);
        Some((event, tail))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The receiver whose notifications the caller asks for: their own only (a customer's
/// `customer:` and `user:` receivers, a driver's `driver:` one), any for an operator. Omitted, it
/// is the caller's own: `driver:` for a driver, `customer:` for a customer.
fn receiver(caller: &Caller, raw: Option<&str>) -> Result<Receiver, Problem> {
    let receiver = match raw {
        Some(raw) => Receiver::parse(raw).map_err(Error::from)?,
        None if caller.has(Role::Driver) => Receiver::Driver(caller.subject.clone()),
        None if caller.has(Role::Customer) => Receiver::Customer(caller.subject.clone()),
        None => {
            return Err(Problem::bad_request(
                "missing_field",
                "receiver is required: customer:<id>, driver:<id> or user:<id>",
            ));
        }
    };
    let (role, id) = match &receiver {
        Receiver::Customer(id) | Receiver::User(id) => (Role::Customer, id),
        Receiver::Driver(id) => (Role::Driver, id),
    };
    if caller.may_read(role, id.as_str()) {
        Ok(receiver)
    } else {
        Err(forbidden("these are someone else's notifications"))
    }
}

/// The `Last-Event-ID` a reconnecting client sends: one of our notification ids (a UUID).
fn last_event_id(headers: &HeaderMap) -> Result<Option<String>, Error> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Error::InvalidLastEventId)?
        .trim();
    if value.is_empty() {
        return Ok(None);
    }
    let id = uuid::Uuid::parse_str(value).map_err(|_| Error::InvalidLastEventId)?;
    Ok(Some(id.hyphenated().to_string()))
}

/// One receiver's live tail of the table.
struct Tail {
    db: Db,
    receiver: Receiver,
    /// The last id sent (`""` before the first).
    last: String,
    pending: VecDeque<Notification>,
    wake: watch::Receiver<u64>,
    lifecycle: Lifecycle,
}

impl Tail {
    /// The next notification, or `None` once shutdown begins, so open streams never hold up a
    /// graceful shutdown.
    async fn next(&mut self) -> Option<Notification> {
        let cancel = self.lifecycle.token();
        loop {
            if let Some(n) = self.pending.pop_front() {
                self.last.clone_from(&n.notification_id);
                return Some(n);
            }
            if cancel.is_cancelled() || self.lifecycle.is_stopping() {
                return None;
            }
            self.wake.borrow_and_update();
            match store::after(&self.db, &self.receiver, &self.last, BATCH).await {
                Ok(rows) if !rows.is_empty() => {
                    self.pending.extend(rows);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, receiver = %self.receiver, "cannot read notifications; retrying");
                }
            }
            tokio::select! {
                Ok(()) = self.wake.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = cancel.cancelled() => return None,
            }
        }
    }
}
