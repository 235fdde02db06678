//! The store port: one database per service, and the unit of work that makes a state change and
//! the events and timers it causes commit together (DESIGN §5.1, §5.4).
//!
//! SQL is written once for both engines through `sqlx::Any`: `$N` placeholders, `ON CONFLICT`,
//! ids as VARCHAR, money and times as BIGINT. Only the outbox's sequence column differs.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::watch;

use crate::clock::{Clock, Timestamp};
use crate::event::Envelope;
use crate::id::new_id;

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The transaction a unit of work runs in.
enum UnitTx {
    /// PostgreSQL: a transaction on a pooled connection.
    Pooled(Tx),
    /// SQLite: the database's one writer connection, held for the unit, inside `BEGIN IMMEDIATE`.
    Held(HeldWriter),
    Committed,
}

/// The SQLite writer while a unit of work holds it. Dropped before its transaction committed (an
/// error, a lost race), it is released at once and rolled back by whoever takes it next, before
/// anything else runs on it.
struct HeldWriter {
    conn: Option<tokio::sync::OwnedMutexGuard<AnyConnection>>,
    inner: Arc<DbInner>,
}

impl Drop for HeldWriter {
    fn drop(&mut self) {
        if self.conn.is_some() {
            self.inner.rollback_first.store(true, Ordering::SeqCst);
        }
    }
}

impl UnitTx {
    fn conn(&mut self) -> &mut AnyConnection {
        match self {
            UnitTx::Pooled(tx) => tx,
            UnitTx::Held(held) => held.conn.as_mut().expect("held until committed"),
            UnitTx::Committed => unreachable!("a unit of work is not used after it commits"),
        }
    }

    /// Commits; returns the SQLite writer, still held, so that after-commit hooks run before
    /// the next unit of work can begin.
    async fn commit(
        &mut self,
    ) -> Result<Option<tokio::sync::OwnedMutexGuard<AnyConnection>>, DbError> {
        match std::mem::replace(self, UnitTx::Committed) {
            UnitTx::Pooled(tx) => {
                tx.commit().await?;
                Ok(None)
            }
            UnitTx::Held(mut held) => {
                let conn = held.conn.as_mut().expect("held until committed");
                sqlx::query("COMMIT").execute(&mut **conn).await?;
                Ok(held.conn.take())
            }
            UnitTx::Committed => Ok(None),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// Another command changed the aggregate first (optimistic concurrency): retry the command.
    #[error("concurrent update of {0}")]
    Conflict(String),
    #[error("idempotency key was already used with a different request")]
    IdempotencyMismatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// How hard SQLite works to keep acknowledged writes (DESIGN §5.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// WAL + `synchronous=NORMAL`: survives a process crash; a power loss may drop the last moments.
    #[default]
    Normal,
    /// WAL + `synchronous=FULL`: every acknowledged write survives power loss too.
    Full,
}

impl FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "normal" => Ok(Self::Normal),
            "full" => Ok(Self::Full),
            _ => Err(format!("expected `normal` or `full`, got `{s}`")),
        }
    }
}

/// A schema step of one service. Applied once, in order, recorded in `schema_migrations`.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// One service's database: a writer pool, a reader pool, and the signals that wake the consumers
/// of its outbox and its timer loop after a commit.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
}

struct DbInner {
    name: String,
    dialect: Dialect,
    write: AnyPool,
    read: AnyPool,
    clock: Arc<dyn Clock>,
    outbox_signal: watch::Sender<u64>,
    timer_signal: watch::Sender<u64>,
    /// SQLite only: the one connection that writes, held by a unit of work from `begin` until
    /// its after-commit hooks have run, so the next writer never reads an in-memory cache that is
    /// behind the database. Held directly rather than through a pool: a pool's hand-back of the
    /// connection after every unit cost more than the unit itself.
    writer: Option<Arc<tokio::sync::Mutex<AnyConnection>>>,
    /// The writer is inside a transaction a dropped unit of work left open.
    rollback_first: AtomicBool,
    /// `tanda_commits_total{db}`: every committed unit of work, so a benchmark can count the
    /// commits a flow costs.
    commits: metrics::Counter,
}

impl Db {
    /// Opens (creating if needed) the SQLite file `dir/{name}.db`. SQLite allows one writer at a
    /// time, so writes go through a single connection: commands on one service are serialised
    /// in-process instead of failing with `SQLITE_BUSY`.
    pub async fn open_sqlite(
        dir: &Path,
        name: &str,
        durability: Durability,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.join(format!("{name}.db")).display()
        );
        let options = AnyConnectOptions::from_str(&url)?;
        let synchronous = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        // A local file cannot drop its connection: no round trip to test it before each use.
        let read = AnyPoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(move |c, _| sqlite_pragmas(c, synchronous))
            .connect_with(options.clone())
            .await?;
        let mut writer = <AnyConnection as sqlx::Connection>::connect_with(&options).await?;
        sqlite_pragmas(&mut writer, synchronous).await?;
        // Every write goes through `writer`; the pool slot for writes is never used on SQLite.
        let db = Self::from_pools(name, Dialect::Sqlite, read.clone(), read, clock);
        Ok(Self {
            inner: Arc::new(DbInner {
                writer: Some(Arc::new(tokio::sync::Mutex::new(writer))),
                ..Arc::into_inner(db.inner).expect("just built")
            }),
        })
    }

    /// Creates database `name` on the PostgreSQL server at `server_url` (a URL without a database
    /// path, e.g. `postgres://postgres@127.0.0.1:5432`) unless it exists; returns its URL.
    pub async fn ensure_postgres_database(server_url: &str, name: &str) -> Result<String, DbError> {
        sqlx::any::install_default_drivers();
        let server = server_url.trim_end_matches('/');
        let mut admin =
            <AnyConnection as sqlx::Connection>::connect(&format!("{server}/postgres")).await?;
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(name)
                .fetch_optional(&mut admin)
                .await?;
        if exists.is_none() {
            let create = format!("CREATE DATABASE \"{}\"", name.replace('"', ""));
            match sqlx::query(sqlx::AssertSqlSafe(create))
                .execute(&mut admin)
                .await
            {
                // Another instance created it meanwhile.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
                other => {
                    other?;
                }
            }
        }
        Ok(format!("{server}/{name}"))
    }

    /// Connects to a PostgreSQL database (one per service).
    pub async fn open_postgres(
        url: &str,
        name: &str,
        max_connections: u32,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self::from_pools(
            name,
            Dialect::Postgres,
            pool.clone(),
            pool,
            clock,
        ))
    }

    fn from_pools(
        name: &str,
        dialect: Dialect,
        write: AnyPool,
        read: AnyPool,
        clock: Arc<dyn Clock>,
    ) -> Self {
        // The recorder must exist before the commit counter is registered with it.
        crate::host::metrics_handle();
        Self {
            inner: Arc::new(DbInner {
                name: name.to_owned(),
                dialect,
                write,
                read,
                clock,
                outbox_signal: watch::channel(0).0,
                timer_signal: watch::channel(0).0,
                writer: None,
                rollback_first: AtomicBool::new(false),
                commits: metrics::counter!("tanda_commits_total", "db" => name.to_owned()),
            }),
        }
    }

    /// The service this database belongs to.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }
    /// For queries outside a unit of work (GETs, projections' reads).
    pub fn reader(&self) -> &AnyPool {
        &self.inner.read
    }

    /// Applies the core tables (outbox, inbox, cursors, timers, dead letters, idempotency) and then
    /// the service's own migrations, each once.
    pub async fn migrate(&self, service: &[Migration]) -> Result<(), DbError> {
        match &self.inner.writer {
            Some(writer) => self.migrate_on(&mut *writer.lock().await, service).await,
            None => {
                let mut conn = self.inner.write.acquire().await?;
                self.migrate_on(&mut conn, service).await
            }
        }
    }

    async fn migrate_on(
        &self,
        conn: &mut AnyConnection,
        service: &[Migration],
    ) -> Result<(), DbError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        let core = match self.dialect() {
            Dialect::Sqlite => CORE_SQLITE,
            Dialect::Postgres => CORE_POSTGRES,
        };
        let core = Migration {
            version: 0,
            name: "core",
            sql: core,
        };
        for m in std::iter::once(&core).chain(service) {
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(m.version)
                    .fetch_optional(&mut *conn)
                    .await?;
            if done.is_some() {
                continue;
            }
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            for statement in m.sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(self.now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Starts a unit of work on the writer.
    pub async fn begin(&self) -> Result<Uow, DbError> {
        let tx = match &self.inner.writer {
            Some(writer) => {
                let mut conn = writer.clone().lock_owned().await;
                if self.inner.rollback_first.swap(false, Ordering::SeqCst) {
                    sqlx::query("ROLLBACK").execute(&mut *conn).await?;
                }
                // IMMEDIATE takes the write lock up front, so a transaction never fails half-way
                // trying to upgrade a read lock.
                sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
                UnitTx::Held(HeldWriter {
                    conn: Some(conn),
                    inner: self.inner.clone(),
                })
            }
            None => UnitTx::Pooled(self.inner.write.begin().await?),
        };
        Ok(Uow {
            tx,
            db: self.clone(),
            wrote_outbox: false,
            wrote_timers: false,
            after_commit: Vec::new(),
        })
    }

    /// Liveness of the database for `/readyz`.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.inner.read).await?;
        Ok(())
    }

    /// Wakes whenever this database commits outbox rows.
    pub fn outbox_changes(&self) -> watch::Receiver<u64> {
        self.inner.outbox_signal.subscribe()
    }
    /// Wakes whenever this database commits a timer change.
    pub fn timer_changes(&self) -> watch::Receiver<u64> {
        self.inner.timer_signal.subscribe()
    }

    /// Leadership of a singleton job (e.g. the outbox relay) among the instances sharing this
    /// database: `None` if another instance holds it. On PostgreSQL this is a session advisory
    /// lock on a dedicated connection, so it is released when the holder exits or dies; SQLite
    /// has one process, which always leads.
    pub async fn try_lead(&self, job: &str) -> Result<Option<Leadership>, DbError> {
        match self.dialect() {
            Dialect::Sqlite => Ok(Some(Leadership { _conn: None })),
            Dialect::Postgres => {
                let mut conn = self.inner.write.acquire().await?;
                let key = stable_hash(&format!("{}/{job}", self.name())) as i64;
                let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(won.then(|| Leadership {
                    _conn: Some(conn.detach()),
                }))
            }
        }
    }

    pub async fn close(&self) {
        self.inner.write.close().await;
        self.inner.read.close().await;
    }

    /// Runs `command` again when it lost an optimistic-concurrency race, up to a few times.
    pub async fn retry_on_conflict<T, E, F, Fut>(mut command: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: IsConflict,
    {
        let mut attempt = 0;
        loop {
            match command().await {
                Err(e) if e.is_conflict() && attempt < 8 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(2 << attempt)).await;
                }
                other => return other,
            }
        }
    }
}

/// Held while this instance leads a singleton job; dropping it closes the lock's connection,
/// which releases the lock.
pub struct Leadership {
    _conn: Option<AnyConnection>,
}

/// FNV-1a: a hash that never changes between builds (unlike `std`'s), for keys other processes
/// must compute the same way.
pub fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Errors that may mean "lost a race: try again".
pub trait IsConflict {
    fn is_conflict(&self) -> bool;
}

impl IsConflict for DbError {
    fn is_conflict(&self) -> bool {
        matches!(self, DbError::Conflict(_))
    }
}

/// A timer to fire at `fire_at`: `kind` names the handler, `key` the aggregate it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Timer {
    pub id: String,
    pub kind: String,
    pub key: String,
    pub fire_at: Timestamp,
    pub payload: serde_json::Value,
}

/// A response kept for an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

/// One local transaction: the state change, its outbox events, its timers, its inbox record and
/// its idempotency record all commit together or not at all.
pub struct Uow {
    /// Declared first: on commit the hooks run while the writer is still held.
    tx: UnitTx,
    db: Db,
    wrote_outbox: bool,
    wrote_timers: bool,
    after_commit: Vec<Box<dyn FnOnce() + Send>>,
}

impl Uow {
    /// The connection to run the service's own SQL on.
    pub fn conn(&mut self) -> &mut AnyConnection {
        self.tx.conn()
    }
    pub fn now(&self) -> Timestamp {
        self.db.now()
    }
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Appends an event to the outbox; it is published only if this unit of work commits.
    pub async fn publish(&mut self, event: &Envelope) -> Result<(), DbError> {
        let json = serde_json::to_string(event).expect("envelopes serialize");
        sqlx::query(
            "INSERT INTO outbox (id, type, aggregate_id, envelope, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&event.id)
        .bind(&event.kind)
        .bind(&event.aggregate_id)
        .bind(json)
        .bind(self.now())
        .execute(self.tx.conn())
        .await?;
        self.wrote_outbox = true;
        Ok(())
    }

    /// Schedules a durable timer (replacing any timer of the same kind and key).
    pub async fn schedule(
        &mut self,
        kind: &str,
        key: &str,
        fire_at: Timestamp,
        payload: serde_json::Value,
    ) -> Result<(), DbError> {
        self.cancel_timer(kind, key).await?;
        sqlx::query(
            "INSERT INTO timers (id, kind, key, fire_at, payload) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(new_id())
        .bind(kind)
        .bind(key)
        .bind(fire_at)
        .bind(payload.to_string())
        .execute(self.tx.conn())
        .await?;
        self.wrote_timers = true;
        Ok(())
    }

    /// Removes the timer of this kind and key, if any.
    pub async fn cancel_timer(&mut self, kind: &str, key: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM timers WHERE kind = $1 AND key = $2")
            .bind(kind)
            .bind(key)
            .execute(self.tx.conn())
            .await?;
        Ok(())
    }

    /// Claims a due timer: true if this unit of work removed it (so it fires exactly once, even
    /// with several instances racing for it).
    pub(crate) async fn claim_timer(&mut self, id: &str) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM timers WHERE id = $1")
            .bind(id)
            .execute(self.tx.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that `consumer` handled `event_id`; false if it already had (a redelivery).
    pub(crate) async fn record_inbox(
        &mut self,
        consumer: &str,
        event_id: &str,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "INSERT INTO inbox (consumer, event_id, processed_at) VALUES ($1, $2, $3)
             ON CONFLICT (consumer, event_id) DO NOTHING",
        )
        .bind(consumer)
        .bind(event_id)
        .bind(self.now())
        .execute(self.tx.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The response stored under an idempotency key, if this key was used before. The same key with
    /// a different request is an error: the client is reusing keys.
    pub async fn idempotent_response(
        &mut self,
        scope: &str,
        key: &str,
        request: &serde_json::Value,
    ) -> Result<Option<StoredResponse>, DbError> {
        let row = sqlx::query(
            "SELECT request_hash, status, body FROM idempotency WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(self.tx.conn())
        .await?;
        let Some(row) = row else { return Ok(None) };
        if row.try_get::<String, _>("request_hash")? != request_hash(request) {
            return Err(DbError::IdempotencyMismatch);
        }
        let body: String = row.try_get("body")?;
        Ok(Some(StoredResponse {
            status: row.try_get::<i32, _>("status")? as u16,
            body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        }))
    }

    /// Keeps the response for an idempotency key, in this transaction.
    pub async fn save_idempotent_response(
        &mut self,
        scope: &str,
        key: &str,
        request: &serde_json::Value,
        status: u16,
        body: &serde_json::Value,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO idempotency (scope, key, request_hash, status, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(scope)
        .bind(key)
        .bind(request_hash(request))
        .bind(status as i32)
        .bind(body.to_string())
        .bind(self.now())
        .execute(self.tx.conn())
        .await
        .map_err(|e| match &e {
            // A concurrent request with the same key won: retrying replays its response.
            sqlx::Error::Database(d) if d.is_unique_violation() => DbError::Conflict(format!("idempotency key {key}")),
            _ => DbError::Sql(e),
        })?;
        Ok(())
    }

    pub(crate) async fn set_cursor(
        &mut self,
        consumer: &str,
        source: &str,
        position: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO consumer_cursors (consumer, source, position) VALUES ($1, $2, $3)
             ON CONFLICT (consumer, source) DO UPDATE SET position = excluded.position",
        )
        .bind(consumer)
        .bind(source)
        .bind(position)
        .execute(self.tx.conn())
        .await?;
        Ok(())
    }

    /// Runs `f` once this unit of work has committed (never if it rolls back): for in-memory
    /// caches and live streams that must only ever show committed state.
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(f));
    }

    /// Commits, runs the after-commit hooks, then wakes whoever waits on this database's outbox
    /// or timers.
    pub async fn commit(self) -> Result<(), DbError> {
        let Uow {
            mut tx,
            db,
            wrote_outbox,
            wrote_timers,
            after_commit,
        } = self;
        let writer = tx.commit().await?;
        db.inner.commits.increment(1);
        for f in after_commit {
            f();
        }
        drop(writer);
        if wrote_outbox {
            db.inner.outbox_signal.send_modify(|n| *n += 1);
        }
        if wrote_timers {
            db.inner.timer_signal.send_modify(|n| *n += 1);
        }
        Ok(())
    }
}

fn sqlite_pragmas<'c>(
    conn: &'c mut AnyConnection,
    synchronous: &'static str,
) -> futures::future::BoxFuture<'c, Result<(), sqlx::Error>> {
    Box::pin(async move {
        for pragma in [
            "PRAGMA journal_mode = WAL".to_owned(),
            format!("PRAGMA synchronous = {synchronous}"),
            "PRAGMA busy_timeout = 10000".to_owned(),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(pragma))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    })
}

fn request_hash(request: &serde_json::Value) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(request.to_string().as_bytes()))
}

/// Core tables every service database has; only the outbox sequence column differs by engine.
macro_rules! core_tables {
    ($outbox_seq:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS outbox (
                seq ", $outbox_seq, ", id VARCHAR(64) NOT NULL UNIQUE, type VARCHAR(200) NOT NULL,
                aggregate_id VARCHAR(200) NOT NULL, envelope TEXT NOT NULL, created_at BIGINT NOT NULL,
                published_at BIGINT);
            CREATE TABLE IF NOT EXISTS inbox (
                consumer VARCHAR(100) NOT NULL, event_id VARCHAR(64) NOT NULL, processed_at BIGINT NOT NULL,
                PRIMARY KEY (consumer, event_id));
            CREATE TABLE IF NOT EXISTS consumer_cursors (
                consumer VARCHAR(100) NOT NULL, source VARCHAR(100) NOT NULL, position BIGINT NOT NULL,
                PRIMARY KEY (consumer, source));
            CREATE TABLE IF NOT EXISTS timers (
                id VARCHAR(64) PRIMARY KEY, kind VARCHAR(100) NOT NULL, key VARCHAR(200) NOT NULL,
                fire_at BIGINT NOT NULL, payload TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS timers_fire_at ON timers (fire_at);
            CREATE UNIQUE INDEX IF NOT EXISTS timers_kind_key ON timers (kind, key);
            CREATE TABLE IF NOT EXISTS dead_letters (
                id VARCHAR(64) PRIMARY KEY, consumer VARCHAR(100) NOT NULL, event_id VARCHAR(64) NOT NULL,
                type VARCHAR(200) NOT NULL, envelope TEXT NOT NULL, error TEXT NOT NULL,
                attempts INTEGER NOT NULL, parked_at BIGINT NOT NULL, redriven_at BIGINT);
            CREATE TABLE IF NOT EXISTS idempotency (
                scope VARCHAR(100) NOT NULL, key VARCHAR(255) NOT NULL, request_hash VARCHAR(64) NOT NULL,
                status INTEGER NOT NULL, body TEXT NOT NULL, created_at BIGINT NOT NULL,
                PRIMARY KEY (scope, key))"
        )
    };
}
const CORE_SQLITE: &str = core_tables!("INTEGER PRIMARY KEY AUTOINCREMENT");
const CORE_POSTGRES: &str = core_tables!("BIGSERIAL PRIMARY KEY");
