//! Durable timers (DESIGN §5.4): deadlines live in the service's database, scheduled in the same
//! transaction as the state change that needs them, so they survive a crash and fire after
//! restart. Firing claims the row (`DELETE ... WHERE id`) inside the handler's transaction, so a
//! timer fires once even when several instances poll the same table.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span, warn};

use crate::consumer::HandlerError;
use crate::db::{Db, DbError, Timer, Uow};
use crate::lifecycle::Lifecycle;
use crate::sql::{query, query_scalar};

/// What to do when a timer is due, inside the unit of work that claims it.
#[async_trait]
pub trait TimerHandler: Send + Sync + 'static {
    async fn fire(&self, uow: &mut Uow, timer: &Timer) -> Result<(), HandlerError>;
}

/// A service's timers as one type: an enum with a variant per kind, carrying its key and what
/// else it needs (declared with [`timers!`]). It is what a service schedules ([`Uow::set_timer`])
/// and what its [`OnTimer`] is handed when one is due.
pub trait Timed: Sized + Send {
    /// The kind, as stored.
    fn kind(&self) -> &'static str;
    /// The key: with the kind, what identifies the timer (a second one replaces it).
    fn key(&self) -> &str;
    /// The rest of what it carries, as stored.
    fn payload(&self) -> serde_json::Value;
    /// The stored `timer` as this type; `None` for a kind it does not have.
    fn read(timer: &Timer) -> Result<Option<Self>, serde_json::Error>;
}

/// Declares a service's timers: an enum whose variants are each a kind (named by a constant,
/// which cancelling uses too), with the key as the first field and anything else it carries
/// after it (stored as camelCase JSON), and implements [`Timed`] for it:
///
/// ```
/// const OFFER: &str = "demo.offer";
/// tanda_core::timers! {
///     /// The demo's timers.
///     pub enum DemoTimer {
///         /// An offer runs out.
///         Offer(OFFER) { dispatch_id: String, driver_id: String },
///     }
/// }
/// # use tanda_core::timers::Timed;
/// let offer = DemoTimer::Offer { dispatch_id: "d1".into(), driver_id: "kim".into() };
/// assert_eq!((offer.kind(), offer.key()), ("demo.offer", "d1"));
/// assert_eq!(offer.payload(), serde_json::json!({"driverId": "kim"}));
/// ```
#[macro_export]
macro_rules! timers {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident($kind:expr) { $key:ident: String $(, $field:ident: $ty:ty)* $(,)? }
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis enum $name {
            $($(#[$vmeta])* $variant { $key: String $(, $field: $ty)* }),+
        }

        impl $crate::timers::Timed for $name {
            fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant { .. } => $kind),+
                }
            }

            fn key(&self) -> &str {
                match self {
                    $(Self::$variant { $key, .. } => $key),+
                }
            }

            fn payload(&self) -> ::serde_json::Value {
                match self {
                    $(Self::$variant { $($field,)* .. } => {
                        #[allow(unused_mut)] // a kind with nothing but its key
                        let mut payload = ::serde_json::Map::new();
                        $(
                            payload.insert(
                                $crate::timers::camel_case(stringify!($field)),
                                ::serde_json::to_value($field).expect("timer payloads serialize"),
                            );
                        )*
                        ::serde_json::Value::Object(payload)
                    }),+
                }
            }

            fn read(
                timer: &$crate::db::Timer,
            ) -> ::std::result::Result<::std::option::Option<Self>, ::serde_json::Error> {
                $(
                    if timer.kind == $kind {
                        return Ok(Some(Self::$variant {
                            $key: timer.key.clone(),
                            $($field: ::serde_json::from_value(
                                timer.payload
                                    .get($crate::timers::camel_case(stringify!($field)))
                                    .cloned()
                                    .unwrap_or(::serde_json::Value::Null),
                            )?,)*
                        }));
                    }
                )+
                Ok(None)
            }
        }
    };
}

/// `snake_case` as `camelCase`, for the JSON names of the fields a timer carries.
#[doc(hidden)]
pub fn camel_case(snake: &str) -> String {
    let mut parts = snake.split('_');
    let mut out = parts.next().unwrap_or_default().to_owned();
    for part in parts {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// What a service does when one of its [`Timed`] timers is due, inside the unit of work that
/// claims it; [`typed`] makes the loop's handler of it.
#[async_trait]
pub trait OnTimer: Send + Sync + 'static {
    type Timer: Timed;
    async fn fire(&self, uow: &mut Uow, timer: Self::Timer) -> Result<(), HandlerError>;
}

/// The timer loop's handler of `on`: a stored timer of a kind `on` does not know (a later
/// version's) is dropped, with a warning.
pub fn typed<T: OnTimer>(on: T) -> Arc<dyn TimerHandler> {
    Arc::new(Typed(on))
}

struct Typed<T>(T);

#[async_trait]
impl<T: OnTimer> TimerHandler for Typed<T> {
    async fn fire(&self, uow: &mut Uow, timer: &Timer) -> Result<(), HandlerError> {
        match T::Timer::read(timer)? {
            Some(typed) => self.0.fire(uow, typed).await,
            None => {
                warn!(kind = %timer.kind, key = %timer.key, "dropping a timer of an unknown kind");
                Ok(())
            }
        }
    }
}

/// Longest sleep between looks at the table: timers may be added by another process.
const MAX_SLEEP: Duration = Duration::from_secs(1);
const BATCH: i64 = 100;

/// Starts the timer loop of one service database.
pub fn start(db: Db, handler: Arc<dyn TimerHandler>, lifecycle: &Lifecycle) {
    let cancel = lifecycle.token();
    let span = info_span!("timers", service = db.name().to_owned());
    lifecycle.spawn(run(db, handler, cancel).instrument(span));
}

async fn run(db: Db, handler: Arc<dyn TimerHandler>, cancel: CancellationToken) {
    let mut changes = db.timer_changes();
    loop {
        changes.borrow_and_update();
        let wait = match fire_due(&db, handler.as_ref()).await {
            Ok(Some(next)) => Duration::from_millis((next - db.now()).max(0) as u64).min(MAX_SLEEP),
            Ok(None) => MAX_SLEEP,
            Err(e) => {
                warn!(error = %e, "timer loop failed; retrying");
                MAX_SLEEP
            }
        };
        if wait.is_zero() {
            if cancel.is_cancelled() {
                return;
            }
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = changes.changed() => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// Fires every due timer; returns when the next one is due, if any.
async fn fire_due(db: &Db, handler: &dyn TimerHandler) -> Result<Option<i64>, DbError> {
    let now = db.now();
    let due = query("SELECT id, kind, key, fire_at, payload FROM timers WHERE fire_at <= $1 ORDER BY fire_at LIMIT $2")
        .bind(now)
        .bind(BATCH)
        .fetch_all(db.reader())
        .await?;
    let full = due.len() as i64 == BATCH;
    for row in due {
        let payload: String = row.get("payload");
        let timer = Timer {
            id: row.get("id"),
            kind: row.get("kind"),
            key: row.get("key"),
            fire_at: row.get("fire_at"),
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
        };
        let span = info_span!("timer", kind = %timer.kind, key = %timer.key);
        if let Err(e) = fire_one(db, handler, &timer).instrument(span).await {
            warn!(kind = %timer.kind, key = %timer.key, error = %e, "timer handler failed; retrying in a second");
            postpone(db, &timer.id).await?;
        }
    }
    if full {
        return Ok(Some(now));
    }
    let next: Option<i64> = query_scalar("SELECT MIN(fire_at) FROM timers")
        .fetch_one(db.reader())
        .await?;
    Ok(next)
}

async fn postpone(db: &Db, id: &str) -> Result<(), DbError> {
    let mut uow = db.begin().await?;
    query("UPDATE timers SET fire_at = $1 WHERE id = $2")
        .bind(db.now() + 1000)
        .bind(id)
        .execute(uow.conn())
        .await?;
    uow.commit().await
}

async fn fire_one(db: &Db, handler: &dyn TimerHandler, timer: &Timer) -> Result<(), HandlerError> {
    let mut uow = db.begin().await?;
    if !uow.claim_timer(&timer.id).await? {
        return Ok(()); // another instance fired it, or it was cancelled meanwhile
    }
    handler.fire(&mut uow, timer).await?;
    uow.commit().await?;
    metrics::counter!("tanda_timers_fired_total", "kind" => timer.kind.clone()).increment(1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ClientId;

    const OFFER: &str = "test.offer";
    const DEADLINE: &str = "test.deadline";

    crate::timers! {
        enum TestTimer {
            Offer(OFFER) { dispatch_id: String, driver_id: ClientId, round_no: u32 },
            Deadline(DEADLINE) { dispatch_id: String },
        }
    }

    fn stored(kind: &str, key: &str, payload: serde_json::Value) -> Timer {
        Timer {
            id: "t1".into(),
            kind: kind.into(),
            key: key.into(),
            fire_at: 0,
            payload,
        }
    }

    #[test]
    fn a_timer_is_stored_as_its_kind_key_and_camel_case_payload_and_read_back() {
        let offer = TestTimer::Offer {
            dispatch_id: "d1".into(),
            driver_id: ClientId::parse("kim").unwrap(),
            round_no: 2,
        };
        assert_eq!((offer.kind(), offer.key()), (OFFER, "d1"));
        let payload = offer.payload();
        assert_eq!(
            payload,
            serde_json::json!({"driverId": "kim", "roundNo": 2})
        );
        let row = stored(OFFER, "d1", payload);
        assert_eq!(TestTimer::read(&row).unwrap(), Some(offer));
        let deadline = stored(DEADLINE, "d2", serde_json::json!({}));
        assert_eq!(
            TestTimer::read(&deadline).unwrap(),
            Some(TestTimer::Deadline {
                dispatch_id: "d2".into()
            })
        );
    }

    #[test]
    fn an_unknown_kind_is_none_and_a_bad_payload_an_error() {
        assert_eq!(
            TestTimer::read(&stored("test.other", "d1", serde_json::json!({}))).unwrap(),
            None
        );
        let bad = stored(
            OFFER,
            "d1",
            serde_json::json!({"driverId": "a b", "roundNo": 1}),
        );
        assert!(TestTimer::read(&bad).is_err());
        let missing = stored(OFFER, "d1", serde_json::json!({}));
        assert!(TestTimer::read(&missing).is_err());
    }

    /// Records what it is handed.
    #[derive(Default)]
    struct Fired(std::sync::Mutex<Vec<TestTimer>>);

    #[async_trait]
    impl OnTimer for Arc<Fired> {
        type Timer = TestTimer;
        async fn fire(&self, _uow: &mut Uow, timer: TestTimer) -> Result<(), HandlerError> {
            self.0.lock().unwrap().push(timer);
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_typed_handler_hands_over_the_timer_read_and_drops_an_unknown_kind() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(
            dir.path(),
            "timers",
            crate::db::Durability::Normal,
            Arc::new(crate::SystemClock),
        )
        .await
        .unwrap();
        let fired = Arc::new(Fired::default());
        let handler = typed(fired.clone());
        let mut uow = db.begin().await.unwrap();
        let deadline = stored(DEADLINE, "d2", serde_json::json!({}));
        handler.fire(&mut uow, &deadline).await.unwrap();
        let other = stored("test.other", "d3", serde_json::json!({}));
        handler.fire(&mut uow, &other).await.unwrap();
        let bad = stored(OFFER, "d1", serde_json::json!({}));
        assert!(handler.fire(&mut uow, &bad).await.is_err());
        assert_eq!(
            *fired.0.lock().unwrap(),
            [TestTimer::Deadline {
                dispatch_id: "d2".into()
            }]
        );
    }

    #[test]
    fn field_names_read_as_camel_case() {
        assert_eq!(camel_case("driver_id"), "driverId");
        assert_eq!(camel_case("a_b_c"), "aBC");
        assert_eq!(camel_case("plain"), "plain");
    }
}
