//! Event consumers: at-least-once delivery made effectively-once (DESIGN §5.2, §5.6).
//!
//! In all-in-one mode a producer's outbox table *is* its durable stream: each consumer tails the
//! outboxes it subscribes to with its own cursor, and stores that cursor, the inbox record and the
//! effect in one transaction. A slow, failing or paused consumer therefore never holds anyone else
//! back, and a crash anywhere loses nothing: the consumer resumes from its last committed cursor.
//! A handler that keeps refusing an event parks it in `dead_letters` and the stream moves on;
//! while the infrastructure is down (`retry`), the consumer waits instead, however long it takes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::clock::rfc3339;
use crate::db::{Db, DbError, Uow};
use crate::event::Envelope;
use crate::id::new_id;
use crate::lifecycle::Lifecycle;
use crate::retry;
use crate::sql::{AssertSqlSafe, Row, query, query_scalar};

mod pauses;

pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// A reaction to other services' events, applied inside the consumer's unit of work.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Apply `event`'s effect through `uow`. An error rolls the whole unit back and the event is
    /// retried: for as long as it takes when the error is the infrastructure's
    /// ([`retry::is_transient`]), else up to [`MAX_ATTEMPTS`], after which it is parked as a
    /// dead letter.
    async fn handle(&self, uow: &mut Uow, event: &Envelope) -> Result<(), HandlerError>;

    /// True when several events may be applied in one unit of work, one after another: the
    /// handler reads only through `uow` (so each event sees the effects of those before it) and
    /// keeps no in-memory state that an after-commit hook brings up to date. Projections are;
    /// anything with a cache is not. A backlog then costs a few commits instead of one per event.
    fn batchable(&self) -> bool {
        false
    }
}

/// Attempts that fail by the handler's own refusal before an event is parked (transient
/// failures do not count).
pub const MAX_ATTEMPTS: u32 = 5;
/// Optimistic-concurrency races an event may lose (another instance changed the same row first)
/// before they count as failures.
const MAX_RACES: u32 = 100;
const BATCH: i64 = 256;
/// At most this many events share a unit of work (it holds the database's writer meanwhile).
const APPLY_TOGETHER: usize = 32;
/// Fallback poll when no commit signal arrives (another process may write the outbox).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How far a consumer's cursor may run ahead of its stored position, over events it does not
/// take, before it stores it (a commit).
const SKIP_STORED: i64 = 1024;

/// One named consumer: its database (inbox, cursors, dead letters), the event types it wants and
/// the handler that applies them.
pub struct Consumer {
    pub name: &'static str,
    pub db: Db,
    pub types: &'static [&'static str],
    pub handler: Arc<dyn Handler>,
}

impl Consumer {
    /// The consumer `name` on `db`, applying `policy` to the events of its subscription (and
    /// subscribed to exactly those).
    pub fn new<P: crate::subscription::Policy>(name: &'static str, db: Db, policy: P) -> Self {
        Self {
            name,
            db,
            types: <P::Takes as crate::subscription::Subscription>::TYPES,
            handler: Arc::new(crate::subscription::Typed(policy)),
        }
    }
}

/// A producing service: its database (holding its outbox) and the event types it publishes.
#[derive(Clone)]
pub struct Source {
    pub db: Db,
    pub produces: &'static [&'static str],
}

pub(crate) struct Entry {
    pub(crate) consumer: Consumer,
    /// The pause switch as this process applies it: on until the stored switches are first read.
    pub(crate) paused: watch::Sender<bool>,
    /// One figure per stream the consumer reads (a source, or one partition of it).
    lags: std::sync::Mutex<Vec<Arc<AtomicI64>>>,
}

/// How far one of a consumer's streams is behind: the `tanda_consumer_lag` gauge, and the figure
/// `/admin/consumers` adds up.
pub(crate) struct LagMeter {
    gauge: metrics::Gauge,
    value: Arc<AtomicI64>,
}

impl LagMeter {
    pub(crate) fn set(&self, events: u64) {
        self.gauge.set(events as f64);
        self.value.store(events as i64, Ordering::Relaxed);
    }
}

/// Every consumer of this process, with the admin operations on them.
#[derive(Clone, Default)]
pub struct Consumers {
    entries: Arc<Vec<Entry>>,
    /// The outboxes the consumers tail in this process (all-in-one); empty when a broker
    /// delivers instead.
    sources: Arc<std::sync::OnceLock<Vec<Source>>>,
    /// Whether the stored pause switches are being followed already.
    following: Arc<AtomicBool>,
    /// Held while a pause switch is stored and applied, or read and applied.
    switching: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no dead letter {0}")]
    UnknownDeadLetter(String),
    #[error("dead letter {0} was already redriven")]
    AlreadyRedriven(String),
    #[error("no consumer named {0}")]
    UnknownConsumer(String),
    #[error("the handler failed again: {0}")]
    HandlerFailed(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A parked event, as `GET /admin/dead-letters` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: String,
    pub consumer: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub error: String,
    pub attempts: i32,
    pub parked_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redriven_at: Option<String>,
    pub event: serde_json::Value,
}

impl Consumers {
    pub fn new(consumers: Vec<Consumer>) -> Self {
        let entries = consumers
            .into_iter()
            .map(|consumer| Entry {
                consumer,
                paused: watch::channel(true).0,
                lags: std::sync::Mutex::new(Vec::new()),
            })
            .collect();
        Self {
            entries: Arc::new(entries),
            sources: Arc::default(),
            following: Arc::default(),
            switching: Arc::default(),
        }
    }

    /// Follows the stored pause switches (`pauses.rs`), once per process whichever way the
    /// consumers are started: they wait until the switches have been read.
    pub(crate) fn follow_pauses(&self, lifecycle: &Lifecycle) {
        if self.following.swap(true, Ordering::SeqCst) {
            return;
        }
        let (this, cancel) = (self.clone(), lifecycle.token());
        lifecycle.spawn(pauses::follow(this, cancel).instrument(info_span!("pauses")));
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| e.consumer.name)
    }

    /// Starts one tailing task per (consumer, source) pair, for the sources that produce at
    /// least one type the consumer wants.
    pub fn start(&self, sources: &[Source], lifecycle: &Lifecycle) {
        let _ = self.sources.set(sources.to_vec());
        self.follow_pauses(lifecycle);
        for index in 0..self.entries.len() {
            let consumer = &self.entries[index].consumer;
            for source in sources
                .iter()
                .filter(|s| consumer.types.iter().any(|t| s.produces.contains(t)))
            {
                let this = self.clone();
                let db = source.db.clone();
                let cancel = lifecycle.token();
                let span = info_span!("consumer", consumer = consumer.name, source = db.name());
                lifecycle.spawn(async move { this.tail(index, db, cancel).await }.instrument(span));
            }
        }
    }

    /// The outbox position every consumer of `source` has passed (`None` if it has none, so
    /// nothing may be pruned).
    pub async fn slowest_position(&self, source: &Source) -> Result<Option<i64>, DbError> {
        let mut slowest: Option<i64> = None;
        for e in self
            .entries
            .iter()
            .filter(|e| e.consumer.types.iter().any(|t| source.produces.contains(t)))
        {
            let position = load_cursor(&e.consumer.db, e.consumer.name, source.db.name()).await?;
            slowest = Some(slowest.map_or(position, |s| s.min(position)));
        }
        Ok(slowest)
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn entry(&self, name: &str) -> Result<&Entry, AdminError> {
        self.entries
            .iter()
            .find(|e| e.consumer.name == name)
            .ok_or_else(|| AdminError::UnknownConsumer(name.to_owned()))
    }

    /// How many events `name` has yet to handle, over all the streams it reads. Where it tails
    /// outboxes in this process the count is exact (and grows while it is paused); behind a
    /// broker it is the broker's count as of the last delivery.
    pub async fn lag(&self, name: &str) -> Result<i64, AdminError> {
        let entry = self.entry(name)?;
        let c = &entry.consumer;
        let Some(sources) = self.sources.get() else {
            let lags = entry.lags.lock().expect("lag meters are never poisoned");
            return Ok(lags.iter().map(|l| l.load(Ordering::Relaxed)).sum());
        };
        let mut behind = 0;
        for source in sources
            .iter()
            .filter(|s| c.types.iter().any(|t| s.produces.contains(t)))
        {
            let cursor = load_cursor(&c.db, c.name, source.db.name()).await?;
            let placeholders: Vec<String> =
                (0..c.types.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT COUNT(*) FROM outbox WHERE seq > $1 AND type IN ({})",
                placeholders.join(", ")
            );
            let mut query = query_scalar::<i64>(AssertSqlSafe(sql)).bind(cursor);
            for t in c.types {
                query = query.bind(*t);
            }
            behind += query.fetch_one(source.db.reader()).await?;
        }
        Ok(behind)
    }

    /// A meter for one stream of the consumer at `index`; `labels` name the stream on the gauge.
    pub(crate) fn lag_meter(&self, index: usize, labels: Vec<(&'static str, String)>) -> LagMeter {
        let entry = &self.entries[index];
        let value = Arc::new(AtomicI64::new(0));
        entry
            .lags
            .lock()
            .expect("lag meters are never poisoned")
            .push(value.clone());
        let mut all = vec![metrics::Label::new("consumer", entry.consumer.name)];
        all.extend(labels.into_iter().map(|(k, v)| metrics::Label::new(k, v)));
        LagMeter {
            gauge: metrics::gauge!("tanda_consumer_lag", all),
            value,
        }
    }

    async fn tail(&self, index: usize, source: Db, cancel: CancellationToken) {
        let entry = &self.entries[index];
        let c = &entry.consumer;
        let fetch_sql = fetch_sql(c.types.len());
        let Some(mut at) = Position::load(c, &source, &cancel).await else {
            return;
        };
        let mut waits = retry::backoff();
        let mut changes = source.outbox_changes();
        let mut paused = entry.paused.subscribe();
        let lag = self.lag_meter(index, vec![("source", source.name().to_owned())]);
        loop {
            if !unpaused(&mut paused, &cancel).await {
                return;
            }
            changes.borrow_and_update();
            let (batch, head) = match read_batch(&source, &fetch_sql, c.types, at.cursor).await {
                Ok(read) => {
                    waits = retry::backoff();
                    read
                }
                Err(e) => {
                    warn!(error = %e, "cannot read the outbox; retrying");
                    if sleep_or_cancel(waits.next().unwrap_or(retry::CAP), &cancel).await {
                        return;
                    }
                    continue;
                }
            };
            if batch.is_empty() {
                lag.set(0);
                if let Some(head) = head {
                    at.pass_to(head, c, source.name()).await;
                }
                tokio::select! {
                    _ = changes.changed() => {}
                    _ = paused.changed() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = cancel.cancelled() => return,
                }
                continue;
            }
            lag.set(batch.len() as u64);
            let mut rows = batch.as_slice();
            if c.handler.batchable() {
                rows = apply_together(c, source.name(), rows, &mut at, &paused, &cancel).await;
            }
            if *paused.borrow() || cancel.is_cancelled() {
                continue;
            }
            for row in rows {
                let seq: i64 = row.get("seq");
                let raw: String = row.get("envelope");
                if !self
                    .deliver(c, Some((source.name(), seq)), &raw, &cancel)
                    .await
                {
                    return;
                }
                at = Position::both(seq);
                if *paused.borrow() || cancel.is_cancelled() {
                    break;
                }
            }
        }
    }

    /// Delivers one event until it is handled or parked. False if shutdown interrupted it.
    /// `cursor` is the (source, position) to record with it when the consumer tails an outbox.
    pub(crate) async fn deliver(
        &self,
        c: &Consumer,
        cursor: Option<(&str, i64)>,
        raw: &str,
        cancel: &CancellationToken,
    ) -> bool {
        let envelope: Result<Envelope, _> = serde_json::from_str(raw);
        match handle_until_settled(c, cursor, &envelope, cancel).await {
            Settled::Handled => true,
            Settled::Interrupted => false,
            Settled::Poison { error, attempts } => {
                let poison = Poison {
                    raw,
                    envelope: envelope.as_ref().ok(),
                    error: &error,
                    attempts,
                };
                park_until_kept(c, cursor, poison, cancel).await
            }
        }
    }

    /// Every parked event of every consumer, newest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, AdminError> {
        let mut all = Vec::new();
        for db in self.databases() {
            let rows = query(
                "SELECT id, consumer, event_id, type, envelope, error, attempts, parked_at, redriven_at
                 FROM dead_letters ORDER BY parked_at DESC",
            )
            .fetch_all(db.reader())
            .await?;
            for row in rows {
                let envelope: String = row.get("envelope");
                all.push(DeadLetter {
                    id: row.get("id"),
                    consumer: row.get("consumer"),
                    event_id: row.get("event_id"),
                    kind: row.get("type"),
                    error: row.get("error"),
                    attempts: row.get("attempts"),
                    parked_at: rfc3339(row.get("parked_at")),
                    redriven_at: row.get::<Option<i64>, _>("redriven_at").map(rfc3339),
                    event: serde_json::from_str(&envelope)
                        .unwrap_or(serde_json::Value::String(envelope)),
                });
            }
        }
        all.sort_by(|a, b| b.parked_at.cmp(&a.parked_at));
        Ok(all)
    }

    /// Runs a parked event through its consumer's handler again. Succeeds at most once.
    pub async fn redrive(&self, id: &str) -> Result<DeadLetter, AdminError> {
        for entry in self.entries.iter() {
            let c = &entry.consumer;
            let row = query(
                "SELECT envelope, redriven_at FROM dead_letters WHERE id = $1 AND consumer = $2",
            )
            .bind(id)
            .bind(c.name)
            .fetch_optional(c.db.reader())
            .await?;
            let Some(row) = row else { continue };
            if row.get::<Option<i64>, _>("redriven_at").is_some() {
                return Err(AdminError::AlreadyRedriven(id.to_owned()));
            }
            let raw: String = row.get("envelope");
            let event: Envelope =
                serde_json::from_str(&raw).map_err(|e| AdminError::HandlerFailed(e.to_string()))?;
            let mut uow = c.db.begin().await?;
            let marked = query(
                "UPDATE dead_letters SET redriven_at = $1 WHERE id = $2 AND redriven_at IS NULL",
            )
            .bind(uow.now())
            .bind(id)
            .execute(uow.conn())
            .await?;
            if marked.rows_affected() == 0 {
                return Err(AdminError::AlreadyRedriven(id.to_owned()));
            }
            if uow.record_inbox(c.name, &event.id).await?
                && let Err(e) = c.handler.handle(&mut uow, &event).await
            {
                drop(uow);
                let mut uow = c.db.begin().await?;
                query("UPDATE dead_letters SET attempts = attempts + 1, error = $1 WHERE id = $2")
                    .bind(e.to_string())
                    .bind(id)
                    .execute(uow.conn())
                    .await?;
                uow.commit().await?;
                return Err(AdminError::HandlerFailed(e.to_string()));
            }
            uow.commit().await?;
            return self
                .dead_letters()
                .await?
                .into_iter()
                .find(|d| d.id == id)
                .ok_or_else(|| AdminError::UnknownDeadLetter(id.to_owned()));
        }
        Err(AdminError::UnknownDeadLetter(id.to_owned()))
    }

    /// Count of parked, not yet redriven events (for `/metrics`).
    pub async fn dead_letter_count(&self) -> Result<i64, AdminError> {
        let mut n = 0;
        for db in self.databases() {
            let c: i64 =
                query_scalar("SELECT COUNT(*) FROM dead_letters WHERE redriven_at IS NULL")
                    .fetch_one(db.reader())
                    .await?;
            n += c;
        }
        Ok(n)
    }

    /// Each consumer database once (several consumers may share one).
    fn databases(&self) -> Vec<Db> {
        let mut seen = HashMap::new();
        for e in self.entries.iter() {
            seen.entry(e.consumer.db.name().to_owned())
                .or_insert_with(|| e.consumer.db.clone());
        }
        seen.into_values().collect()
    }
}

/// True if `e`, or an error it wraps, is a lost optimistic-concurrency race.
fn lost_race(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if matches!(err.downcast_ref::<DbError>(), Some(DbError::Conflict(_))) {
            return true;
        }
        next = err.source();
    }
    false
}

/// Where a consumer is in one outbox: past `cursor` in memory, past `stored` in its database
/// (for restarts, and for housekeeping to prune what every consumer passed).
#[derive(Clone, Copy)]
struct Position {
    cursor: i64,
    stored: i64,
}

impl Position {
    fn both(at: i64) -> Self {
        Self {
            cursor: at,
            stored: at,
        }
    }

    /// The stored position, read until it can be; `None` if shutdown came first.
    async fn load(c: &Consumer, source: &Db, cancel: &CancellationToken) -> Option<Self> {
        let mut waits = retry::backoff();
        loop {
            match load_cursor(&c.db, c.name, source.name()).await {
                Ok(position) => return Some(Self::both(position)),
                Err(e) => {
                    warn!(error = %e, "cannot read cursor; retrying");
                    if sleep_or_cancel(waits.next().unwrap_or(retry::CAP), cancel).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Passes over events up to `head` that this consumer does not take; stores the position
    /// once it has moved far enough for pruning to gain from it.
    async fn pass_to(&mut self, head: i64, c: &Consumer, source: &str) {
        self.cursor = self.cursor.max(head);
        if self.cursor - self.stored >= SKIP_STORED {
            match store_cursor(c, source, self.cursor).await {
                Ok(()) => self.stored = self.cursor,
                Err(e) => warn!(error = %e, "cannot store the cursor; retrying later"),
            }
        }
    }
}

/// The query for the next batch of a consumer taking `types` event types.
fn fetch_sql(types: usize) -> String {
    let placeholders: Vec<String> = (0..types).map(|i| format!("${}", i + 2)).collect();
    format!(
        "SELECT seq, envelope FROM outbox WHERE seq > $1 AND type IN ({}) ORDER BY seq LIMIT {BATCH}",
        placeholders.join(", ")
    )
}

/// The next batch past `cursor`, and, when the batch holds every wanted row, where the outbox
/// ended before it was read.
async fn read_batch(
    source: &Db,
    fetch_sql: &str,
    types: &[&str],
    cursor: i64,
) -> Result<(Vec<Row>, Option<i64>), DbError> {
    // Where the outbox ends, read before the batch: SQLite makes outbox rows visible in `seq`
    // order, so a batch read afterwards that holds every wanted row past the cursor means none up
    // to `head` is left. The cursor can then pass the events this consumer does not take, instead
    // of the next read scanning them again.
    let head: i64 = query_scalar("SELECT COALESCE(MAX(seq), 0) FROM outbox")
        .fetch_one(source.reader())
        .await?;
    let mut query = query(AssertSqlSafe(fetch_sql)).bind(cursor);
    for t in types {
        query = query.bind(*t);
    }
    let rows = query.fetch_all(source.reader()).await?;
    let complete = rows.len() < BATCH as usize;
    Ok((rows, complete.then_some(head)))
}

/// Applies `rows` up to [`APPLY_TOGETHER`] to a unit of work while more than one is left and
/// the consumer runs; returns the rows left for one at a time (all of them from the first
/// batch that fails, so that a poison event is retried and parked on its own).
async fn apply_together<'r>(
    c: &Consumer,
    source: &str,
    mut rows: &'r [Row],
    at: &mut Position,
    paused: &watch::Receiver<bool>,
    cancel: &CancellationToken,
) -> &'r [Row] {
    while rows.len() > 1 && !*paused.borrow() && !cancel.is_cancelled() {
        let together = &rows[..rows.len().min(APPLY_TOGETHER)];
        match handle_together(c, source, together).await {
            Ok(last) => {
                metrics::counter!("tanda_events_handled_total", "consumer" => c.name)
                    .increment(together.len() as u64);
                *at = Position::both(last);
                rows = &rows[together.len()..];
            }
            Err(e) => {
                debug!(consumer = c.name, error = %e, "a batch failed; one event at a time");
                break;
            }
        }
    }
    rows
}

/// Waits while the consumer is paused; false if shutdown came first.
async fn unpaused(paused: &mut watch::Receiver<bool>, cancel: &CancellationToken) -> bool {
    while *paused.borrow_and_update() {
        tokio::select! {
            _ = paused.changed() => {}
            _ = cancel.cancelled() => return false,
        }
    }
    !cancel.is_cancelled()
}

/// Applies consecutive outbox rows in one unit of work and moves the cursor past the last;
/// returns its position. Any error rolls all of them back.
async fn handle_together(c: &Consumer, source: &str, rows: &[Row]) -> Result<i64, HandlerError> {
    let mut uow = c.db.begin().await?;
    let mut last = None;
    for row in rows {
        let seq: i64 = row.get("seq");
        let raw: String = row.get("envelope");
        let event: Envelope = serde_json::from_str(&raw)?;
        if uow.record_inbox(c.name, &event.id).await? {
            let span = info_span!("event", id = %event.id, r#type = %event.kind, correlation_id = %event.correlation_id);
            c.handler.handle(&mut uow, &event).instrument(span).await?;
        }
        last = Some(seq);
    }
    let last = last.ok_or("an empty batch")?;
    uow.set_cursor(c.name, source, last).await?;
    uow.commit().await?;
    Ok(last)
}

async fn handle_once(
    c: &Consumer,
    cursor: Option<(&str, i64)>,
    event: &Envelope,
) -> Result<(), HandlerError> {
    let mut uow = c.db.begin().await?;
    // Only the first delivery has an effect; a redelivery just moves the cursor.
    if uow.record_inbox(c.name, &event.id).await? {
        c.handler.handle(&mut uow, event).await?;
    }
    if let Some((source, seq)) = cursor {
        uow.set_cursor(c.name, source, seq).await?;
    }
    uow.commit().await?;
    Ok(())
}

async fn park(
    c: &Consumer,
    cursor: Option<(&str, i64)>,
    poison: &Poison<'_>,
) -> Result<(), DbError> {
    let event = poison.envelope;
    let mut uow = c.db.begin().await?;
    query(
        "INSERT INTO dead_letters (id, consumer, event_id, type, envelope, error, attempts, parked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(c.name)
    .bind(event.map_or("", |e| e.id.as_str()))
    .bind(event.map_or("", |e| e.kind.as_str()))
    .bind(poison.raw)
    .bind(poison.error)
    .bind(poison.attempts as i32)
    .bind(uow.now())
    .execute(uow.conn())
    .await?;
    if let Some((source, seq)) = cursor {
        uow.set_cursor(c.name, source, seq).await?;
    }
    uow.commit().await
}

async fn store_cursor(c: &Consumer, source: &str, position: i64) -> Result<(), DbError> {
    let mut uow = c.db.begin().await?;
    uow.set_cursor(c.name, source, position).await?;
    uow.commit().await
}

async fn load_cursor(db: &Db, consumer: &str, source: &str) -> Result<i64, DbError> {
    let position: Option<i64> =
        query_scalar("SELECT position FROM consumer_cursors WHERE consumer = $1 AND source = $2")
            .bind(consumer)
            .bind(source)
            .fetch_optional(db.reader())
            .await?;
    Ok(position.unwrap_or(0))
}

/// Sleeps; true if shutdown began meanwhile.
async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.cancelled() => true,
    }
}

/// How trying an event ended.
enum Settled {
    Handled,
    /// Shutdown came first.
    Interrupted,
    /// The handler refused it `attempts` times, the last with `error`.
    Poison {
        error: String,
        attempts: u32,
    },
}

/// Runs `c`'s handler on the event until it succeeds, shutdown interrupts, or it has failed
/// [`MAX_ATTEMPTS`] times on its own. A lost race runs it again at once on the new state; a
/// transient failure (the database, the broker) waits for as long as the outage lasts, and the
/// whole consumer waits with it: neither counts as an attempt.
async fn handle_until_settled(
    c: &Consumer,
    cursor: Option<(&str, i64)>,
    envelope: &Result<Envelope, serde_json::Error>,
    cancel: &CancellationToken,
) -> Settled {
    let mut attempts = 0;
    let mut races = 0;
    let mut waits = retry::backoff();
    let mut waiting_since: Option<tokio::time::Instant> = None;
    loop {
        let outcome = match envelope {
            Ok(event) => {
                let span = info_span!("event", id = %event.id, r#type = %event.kind, correlation_id = %event.correlation_id);
                handle_once(c, cursor, event).instrument(span).await
            }
            Err(e) => Err(format!("not an event envelope: {e}").into()),
        };
        let pause = match outcome {
            Ok(()) => {
                metrics::counter!("tanda_events_handled_total", "consumer" => c.name).increment(1);
                if let Some(since) = waiting_since {
                    info!(consumer = c.name, waited = ?since.elapsed(), "the infrastructure is back; delivering again");
                }
                return Settled::Handled;
            }
            Err(e) if lost_race(e.as_ref()) && races < MAX_RACES => {
                races += 1;
                tokio::time::sleep(Duration::from_millis(u64::from(races.min(20)))).await;
                continue;
            }
            Err(e) if retry::is_transient(e.as_ref()) => {
                metrics::counter!("tanda_consumer_transient_failures_total", "consumer" => c.name)
                    .increment(1);
                if waiting_since.is_none() {
                    waiting_since = Some(tokio::time::Instant::now());
                    warn!(consumer = c.name, error = %e, "the infrastructure is unavailable; waiting for it");
                }
                waits.next().unwrap_or(retry::CAP)
            }
            Err(e) => {
                attempts += 1;
                let error = e.to_string();
                warn!(consumer = c.name, attempt = attempts, error = %error, "handler failed");
                if attempts >= MAX_ATTEMPTS {
                    return Settled::Poison { error, attempts };
                }
                Duration::from_millis(50 << attempts)
            }
        };
        if sleep_or_cancel(pause, cancel).await {
            return Settled::Interrupted;
        }
    }
}

/// An event its handler refused for good.
struct Poison<'a> {
    raw: &'a str,
    envelope: Option<&'a Envelope>,
    error: &'a str,
    attempts: u32,
}

/// Parks the poison event as a dead letter, retrying while its database is unavailable, so one
/// poison event never blocks the stream. False if shutdown came first.
async fn park_until_kept(
    c: &Consumer,
    cursor: Option<(&str, i64)>,
    poison: Poison<'_>,
    cancel: &CancellationToken,
) -> bool {
    let mut waits = retry::backoff();
    loop {
        match park(c, cursor, &poison).await {
            Ok(()) => {
                error!(consumer = c.name, error = %poison.error, "event parked as a dead letter");
                metrics::counter!("tanda_dead_letters_parked_total", "consumer" => c.name)
                    .increment(1);
                return true;
            }
            Err(e) => {
                warn!(error = %e, "cannot park the event; retrying");
                if sleep_or_cancel(waits.next().unwrap_or(retry::CAP), cancel).await {
                    return false;
                }
            }
        }
    }
}
