//! The store port: one database per service, and the unit of work that makes a state change and
//! the events and timers it causes commit together (DESIGN §5.1, §5.4).
//!
//! SQL is written once for both engines (see [`crate::sql`]): `$N` placeholders, `ON CONFLICT`,
//! ids as VARCHAR, money and times as BIGINT. Only the outbox's sequence column differs.
//!
//! By file: `sqlite.rs` (the writer and group commit, the checkpointer, readers, private files),
//! `postgres.rs` (a database per service on one server), `migrate.rs` (core tables, then the
//! service's own), `uow.rs` (the unit of work), `error.rs` (what fails, and whether waiting helps).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection as _, Postgres};
use tokio::sync::{OwnedMutexGuard, watch};

use crate::clock::{Clock, Timestamp};
use crate::event::Envelope;
use crate::id::new_id;
use crate::sql::{Target, query, query_scalar};

mod error;
mod migrate;
mod postgres;
mod sqlite;
mod uow;

pub use error::{DbError, EngineError};
pub use migrate::Migration;
use sqlite::{SqliteEngine, SqliteWriter};
pub use sqlite::{SqliteReaders, private_dir};
pub use uow::{StoredResponse, Timer, Uow};

/// The connection a unit of work runs its SQL on (`uow.conn()`), inside its transaction.
pub struct Tx(TxState);

enum TxState {
    /// SQLite: the database's one writer connection, held for the unit, inside a savepoint of
    /// the transaction it shares with the units around it (see [`SqliteWriter`]).
    Sqlite(OwnedMutexGuard<SqliteWriter>),
    /// PostgreSQL: a transaction on a pooled connection.
    Postgres(sqlx::Transaction<'static, Postgres>),
    Committed,
}

impl Tx {
    pub(crate) fn target(&mut self) -> Target<'_> {
        match &mut self.0 {
            TxState::Sqlite(writer) => Target::Sqlite(&mut writer.conn),
            TxState::Postgres(tx) => Target::Postgres(tx),
            TxState::Committed => unreachable!("a unit of work is not used after it commits"),
        }
    }
}

impl Drop for Tx {
    /// A unit of work dropped before it committed (an error, a lost race) rolls back. On
    /// PostgreSQL the pooled transaction does so itself; SQLite's unit is rolled back here, before
    /// anyone else can take the writer.
    fn drop(&mut self) {
        if let TxState::Sqlite(writer) = &mut self.0 {
            writer.abandon_unit();
        }
    }
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

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Normal => "normal",
            Self::Full => "full",
        })
    }
}

/// One service's database: where units of work write, where reads go, and the signals that wake
/// the consumers of its outbox and its timer loop after a commit.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
}

struct DbInner {
    name: String,
    engine: Engine,
    reader: Reader,
    clock: Arc<dyn Clock>,
    outbox_signal: watch::Sender<u64>,
    timer_signal: watch::Sender<u64>,
    /// `tanda_commits_total{db}`: every committed unit of work, so a benchmark can count the
    /// commits a flow costs.
    commits: metrics::Counter,
    /// `tanda_transactions_total{db}`: the transactions those units committed in (fewer than the
    /// units under load, when units share one).
    transactions: metrics::Counter,
    /// The event types the service declares it publishes, once the process has said
    /// ([`Db::declare_produces`]); a unit of work publishing another is a bug.
    produces: std::sync::OnceLock<&'static [&'static str]>,
}

/// The engine a database runs on, with what only that engine has.
enum Engine {
    Sqlite(SqliteEngine),
    /// The pool units of work take their connection from.
    Postgres(PgPool),
}

/// Where queries outside a unit of work run (`db.reader()`): GETs, projections' reads.
pub struct Reader(ReaderKind);

enum ReaderKind {
    Sqlite(SqliteReaders),
    Postgres(PgPool),
}

impl Reader {
    pub(crate) fn target(&self) -> Target<'_> {
        match &self.0 {
            ReaderKind::Sqlite(readers) => Target::SqliteReaders(readers),
            ReaderKind::Postgres(pool) => Target::PostgresPool(pool),
        }
    }
}

impl Db {
    fn build(name: &str, engine: Engine, reader: Reader, clock: Arc<dyn Clock>) -> Self {
        // The recorder must exist before the commit counter is registered with it.
        crate::recorder::handle();
        Self {
            inner: Arc::new(DbInner {
                name: name.to_owned(),
                engine,
                reader,
                clock,
                outbox_signal: watch::channel(0).0,
                timer_signal: watch::channel(0).0,
                commits: metrics::counter!("tanda_commits_total", "db" => name.to_owned()),
                transactions: metrics::counter!("tanda_transactions_total", "db" => name.to_owned()),
                produces: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The event types this service publishes (its registry entry's `produces`): consumers find
    /// events by those lists, so publishing a type outside its list would reach nobody. Test
    /// builds assert it on every publish.
    pub fn declare_produces(&self, types: &'static [&'static str]) {
        let _ = self.inner.produces.set(types);
    }

    /// The service this database belongs to.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn dialect(&self) -> Dialect {
        match self.inner.engine {
            Engine::Sqlite(_) => Dialect::Sqlite,
            Engine::Postgres(_) => Dialect::Postgres,
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// For queries outside a unit of work (GETs, projections' reads).
    pub fn reader(&self) -> &Reader {
        &self.inner.reader
    }

    /// Starts a unit of work on the writer.
    pub async fn begin(&self) -> Result<Uow, DbError> {
        let tx = match &self.inner.engine {
            Engine::Sqlite(sqlite) => TxState::Sqlite(sqlite.start_unit().await?),
            Engine::Postgres(pool) => TxState::Postgres(pool.begin().await?),
        };
        Ok(Uow {
            tx: Tx(tx),
            db: self.clone(),
            wrote_outbox: false,
            wrote_timers: false,
            after_commit: Vec::new(),
        })
    }

    /// Takes one tiny write, committed (a row of its own, overwritten each time): whether this
    /// database can take writes now. A full disk, a read-only server (a replica before failover
    /// completes) or a lost connection all say no, where a read would still say yes.
    pub async fn writable(&self) -> Result<(), DbError> {
        let mut uow = self.begin().await?;
        query(
            "INSERT INTO readiness_probe (id, checked_at) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(uow.now())
        .execute(uow.conn())
        .await?;
        uow.commit().await
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
        let Engine::Postgres(pool) = &self.inner.engine else {
            return Ok(Some(Leadership { conn: None }));
        };
        let mut conn = pool.acquire().await?;
        let key = stable_hash(&format!("{}/{job}", self.name())) as i64;
        let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        Ok(won.then(|| Leadership {
            conn: Some(conn.detach()),
        }))
    }

    /// Stops serving reads and closes the pool; for tests that stop a process's work mid-way.
    pub async fn close(&self) {
        match &self.inner.reader.0 {
            ReaderKind::Sqlite(readers) => {
                readers.closed.store(true, Ordering::Relaxed);
                readers.idle.lock().expect("reader list").clear();
            }
            ReaderKind::Postgres(pool) => pool.close().await,
        }
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
    conn: Option<PgConnection>,
}

impl Leadership {
    /// Whether this instance still leads: the lock lives exactly as long as its session, and
    /// PostgreSQL may end that session at any time (a failover, `pg_terminate_backend`, a network
    /// cut) without this process noticing until it asks. A job checks before each piece of work,
    /// so that an instance that lost the lead stops within one.
    pub async fn held(&mut self) -> bool {
        let Some(conn) = &mut self.conn else {
            return true;
        };
        let held = sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid())",
        )
        .fetch_one(conn)
        .await;
        held.unwrap_or(false)
    }
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

impl Db {
    fn signal(&self, outbox: bool, timers: bool) {
        if outbox {
            self.inner.outbox_signal.send_modify(|n| *n += 1);
        }
        if timers {
            self.inner.timer_signal.send_modify(|n| *n += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_reads_either_spelling_and_refuses_anything_else() {
        assert_eq!("normal".parse(), Ok(Durability::Normal));
        assert_eq!("FULL".parse(), Ok(Durability::Full));
        assert!("off".parse::<Durability>().is_err());
    }

    /// Instances of a service pick partitions by this hash: it must be the same in every process
    /// (it is FNV-1a, not the standard library's seeded hasher).
    #[test]
    fn the_stable_hash_is_fnv_1a() {
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_race_is_run_again_with_growing_pauses_up_to_eight_times() {
        let mut calls = 0;
        let started = tokio::time::Instant::now();
        let always: Result<(), DbError> = Db::retry_on_conflict(|| {
            calls += 1;
            async { Err(DbError::Conflict("a wallet".into())) }
        })
        .await;
        assert!(matches!(always, Err(DbError::Conflict(_))));
        assert_eq!(calls, 9, "the first run and eight more");
        // 4 ms, 8 ms, … 512 ms: the pauses double.
        assert_eq!(started.elapsed(), Duration::from_millis(1020));

        let mut calls = 0;
        let third: Result<u32, DbError> = Db::retry_on_conflict(|| {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(DbError::Conflict("a wallet".into()))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(third.unwrap(), 3);

        let mut calls = 0;
        let other: Result<(), DbError> = Db::retry_on_conflict(|| {
            calls += 1;
            async { Err(DbError::RowNotFound) }
        })
        .await;
        assert!(matches!(other, Err(DbError::RowNotFound)));
        assert_eq!(calls, 1, "only a lost race is run again");
    }
}
