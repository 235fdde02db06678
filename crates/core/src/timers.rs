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
