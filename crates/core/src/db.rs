//! The store port: one database per service, and the unit of work that makes a state change and
//! the events and timers it causes commit together (DESIGN §5.1, §5.4).
//!
//! SQL is written once for both engines (see [`crate::sql`]): `$N` placeholders, `ON CONFLICT`,
//! ids as VARCHAR, money and times as BIGINT. Only the outbox's sequence column differs.

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

/// SQLite's one writer connection, and the transaction that units of work share under load
/// (group commit).
///
/// A unit that joins an open transaction runs inside `SAVEPOINT unit` and releases it when it
/// commits; one that begins the transaction needs none (rolling back is rolling it all back). If
/// other units are already waiting for the writer when it commits, it leaves the transaction open
/// for them and waits: the last of a run of units, or a committer task at the back of the queue,
/// commits them all at once and then answers each. The pages a commit writes to the WAL and the
/// write lock taken at `BEGIN` are paid once per transaction instead of once per unit, while each unit
/// still succeeds or fails alone: a failing one rolls back to its savepoint, and no caller hears
/// "committed" before the shared `COMMIT` is done.
pub(crate) struct SqliteWriter {
    conn: rusqlite::Connection,
    /// The open transaction, if units have finished in it and wait for its commit, or a unit is
    /// running in it. With the writer free, it is `None` or has finished units.
    group: Option<Group>,
    /// The running unit opened `SAVEPOINT unit`.
    savepoint: bool,
}

/// One shared SQLite transaction and the units of work waiting for its `COMMIT`.
struct Group {
    /// Units released into it and waiting for the commit.
    finished: u64,
    /// A committer task has been started for it.
    committer: bool,
    /// The finished units' after-commit hooks, in commit order.
    hooks: Vec<Box<dyn FnOnce() + Send>>,
    wrote_outbox: bool,
    wrote_timers: bool,
    /// Tells the waiting units how the commit went; dropped unsent if the transaction is lost.
    done: watch::Sender<Option<Result<(), Arc<str>>>>,
}

/// The most units one transaction carries, so that a steady stream of writers is still answered.
const GROUP_MAX: u64 = 64;

impl SqliteWriter {
    /// Opens a unit of work: joins the open transaction or begins one.
    fn start_unit(&mut self) -> Result<(), DbError> {
        self.savepoint = self.group.is_some();
        if !self.savepoint {
            // IMMEDIATE takes the write lock up front, so a transaction never fails half-way
            // trying to upgrade a read lock.
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.group = Some(Group {
                finished: 0,
                committer: false,
                hooks: Vec::new(),
                wrote_outbox: false,
                wrote_timers: false,
                done: watch::channel(None).0,
            });
        } else if let Err(e) = self.conn.execute_batch("SAVEPOINT unit") {
            self.savepoint = false;
            self.abandon_unit();
            return Err(e.into());
        }
        Ok(())
    }

    /// Ends the running unit's part: its changes stay in the open transaction.
    fn finish_unit(&mut self) -> rusqlite::Result<()> {
        if self.savepoint {
            self.conn.execute_batch("RELEASE unit")?;
            self.savepoint = false;
        }
        Ok(())
    }

    /// Undoes the running unit alone, keeping the finished units' work for the shared commit.
    fn abandon_unit(&mut self) {
        let others = self.group.as_ref().is_some_and(|g| g.finished > 0);
        if std::mem::take(&mut self.savepoint)
            && others
            && self
                .conn
                .execute_batch("ROLLBACK TO unit; RELEASE unit")
                .is_ok()
            && !self.conn.is_autocommit()
        {
            return;
        }
        // Nothing else in the transaction, or SQLite already rolled all of it back (it does on
        // I/O errors): end it. Dropping the group tells its waiting units they were not committed.
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.group = None;
    }
}

/// Runs a call that may wait for the disk: on a multi-threaded runtime, other tasks move to
/// another worker meanwhile.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value is not what the code reads it as: the schema changed behind its back.
    #[error("database: {0}")]
    Decode(String),
    #[error("database: no row")]
    RowNotFound,
    #[error("database {0} is closed")]
    Closed(String),
    /// Another command changed the aggregate first (optimistic concurrency): retry the command.
    #[error("concurrent update of {0}")]
    Conflict(String),
    #[error("idempotency key was already used with a different request")]
    IdempotencyMismatch,
    /// The transaction a unit of work shared with others failed to commit.
    #[error("database: commit failed: {0}")]
    Commit(Arc<str>),
    /// The configuration names no usable database (e.g. a URL that does not parse).
    #[error("database configuration: {0}")]
    Config(String),
    /// A migration applied earlier has another text now: the schema is not what the code says.
    #[error(
        "migration {version} ({name}) was changed after it was applied; restore its text and add \
         a new migration for the change"
    )]
    MigrationChanged { version: i64, name: String },
}

impl DbError {
    /// What an operator can do about this failure, when there is something specific.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            DbError::Sql(sqlx::Error::Database(e)) if e.code().as_deref() == Some("53300") => Some(
                "PostgreSQL refuses more connections (max_connections): lower --postgres-pool, \
                 run fewer replicas, or raise max_connections; README \"Deploy\" has the budget",
            ),
            _ => None,
        }
    }

    /// The database could not be reached or had no room for the request (down, restarting,
    /// refusing more connections, a lost connection, a serialization failure): the same request
    /// may well succeed later. Everything else (bad SQL, a constraint, a wrong password) will not.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Sql(e) => sql_is_transient(e),
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::ReadOnly
            ),
            // A group commit failed for every unit in it (a full disk, an I/O error): no unit's
            // own doing.
            DbError::Commit(_) | DbError::Closed(_) => true,
            _ => false,
        }
    }

    /// An insert hit a primary key or unique index.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sql(sqlx::Error::Database(e)) => e.is_unique_violation(),
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            _ => false,
        }
    }
}

/// PostgreSQL's SQLSTATEs for a server that is unavailable for now: class 08 connection
/// exception, 53 insufficient resources (too many connections, disk full), 55 object not in
/// prerequisite state (a database not accepting connections, a lock not available), 57P
/// operator intervention (shutting down, starting up) and 57014 a statement timed out, 25006 a
/// read-only server (a replica until failover completes), and 40001/40P01 a transaction to run
/// again. Tanda's own statements cause none of them.
fn sql_is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            ["08", "53", "55", "57P"]
                .iter()
                .any(|class| code.starts_with(class))
                || ["57014", "25006", "40001", "40P01"].contains(&code.as_ref())
        }),
        _ => false,
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

/// A schema step of one service. Applied once, in order, recorded in `schema_migrations`.
#[derive(Debug)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the text, as kept in `schema_migrations.checksum` once applied.
    fn checksum(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.sql.as_bytes()))
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
    dialect: Dialect,
    durability: Durability,
    /// SQLite only: the one connection that writes, held by a unit of work from `begin` until
    /// it has committed or released its savepoint (see [`SqliteWriter`]).
    writer: Option<Arc<tokio::sync::Mutex<SqliteWriter>>>,
    /// SQLite only: units of work waiting for the writer.
    queued: AtomicUsize,
    /// PostgreSQL only: the pool units of work take their connection from.
    pool: Option<PgPool>,
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
    /// SQLite only: wakes the [`Checkpointer`] after a commit.
    checkpoint: Option<Checkpointer>,
    /// The event types the service declares it publishes, once the process has said
    /// ([`Db::declare_produces`]); a unit of work publishing another is a bug.
    produces: std::sync::OnceLock<&'static [&'static str]>,
}

/// Copies SQLite's WAL back into the database file on a thread and connection of its own, a
/// moment after commits, so that no commit pays for it. Left to the writer (SQLite's
/// `wal_autocheckpoint`), every 1,000th page appended made one commit copy them all and wait for
/// the disk while every other unit waited for the writer. A passive checkpoint runs beside the
/// writer and its readers without blocking them; durability is the same, since a checkpoint only
/// moves pages already committed to the WAL. The thread ends when the database is dropped.
///
/// SQLite starts the WAL file over only once a checkpoint has caught up with every commit, and
/// under a steady stream of writes a passive one never quite does. So the writer still checkpoints
/// itself at [`WAL_BACKSTOP`] pages, finding most of them already copied, and the
/// WAL of a busy database grows to about that size (40 MiB) before it starts over.
struct Checkpointer {
    wake: std::sync::mpsc::SyncSender<()>,
}

/// How long after a commit the checkpointer runs, so that the pages of the commits meanwhile are
/// copied together: a hot page (an index's, the outbox's tail) once per checkpoint, not per commit.
const CHECKPOINT_AFTER: Duration = Duration::from_millis(100);
/// The WAL size, in pages, at which the writer checkpoints itself after all. At 4,000, bookings
/// were 20 % slower: the writer's own checkpoints came 2.5 times as often.
const WAL_BACKSTOP: u32 = 10_000;

impl Checkpointer {
    fn start(path: &Path, synchronous: &'static str) -> Result<Checkpointer, DbError> {
        let conn = sqlite_open(path, synchronous)?;
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let file = path.display().to_string();
        std::thread::Builder::new()
            .name("sqlite-ckpt".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    std::thread::sleep(CHECKPOINT_AFTER);
                    // The commits meanwhile are in this checkpoint.
                    let _ = woken.try_recv();
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(e) = done {
                        // Busy (the writer is checkpointing itself) or I/O: the next commit
                        // brings another try, and the backstop holds meanwhile.
                        tracing::debug!(db = %file, error = %e, "checkpoint skipped");
                    }
                }
            })
            .map_err(sqlx::Error::Io)?;
        Ok(Checkpointer { wake })
    }

    fn after_commit(&self) {
        // Full: one is pending already, and it will see this commit's pages.
        let _ = self.wake.try_send(());
    }
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

/// SQLite's read connections. A read runs on the calling thread from start to end, so no more
/// connections are ever in use than there are threads running tasks; idle ones are kept.
#[doc(hidden)]
pub struct SqliteReaders {
    path: PathBuf,
    synchronous: &'static str,
    idle: Mutex<Vec<rusqlite::Connection>>,
    closed: AtomicBool,
}

impl SqliteReaders {
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(DbError::Closed(self.path.display().to_string()));
        }
        let idle = self.idle.lock().expect("reader list").pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => sqlite_open(&self.path, self.synchronous)?,
        };
        let outcome = f(&mut conn);
        let mut idle = self.idle.lock().expect("reader list");
        if idle.len() < 8 {
            idle.push(conn);
        }
        outcome
    }
}

impl Db {
    /// Opens (creating if needed) the SQLite file `dir/{name}.db`. SQLite allows one writer at a
    /// time, so writes go through a single connection: commands on one service are serialised
    /// in-process instead of failing with `SQLITE_BUSY`. The directory and the files are its
    /// owner's alone ([`private_dir`], [`private_sqlite_file`]).
    pub async fn open_sqlite(
        dir: &Path,
        name: &str,
        durability: Durability,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, DbError> {
        private_dir(dir).map_err(sqlx::Error::Io)?;
        let path = dir.join(format!("{name}.db"));
        private_sqlite_file(&path).map_err(sqlx::Error::Io)?;
        let synchronous = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        let writer = sqlite_open(&path, synchronous)?;
        writer.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP)?;
        let checkpoint = Checkpointer::start(&path, synchronous)?;
        let readers = SqliteReaders {
            path,
            synchronous,
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        };
        Ok(Self::build(
            name,
            Dialect::Sqlite,
            durability,
            Some((writer, checkpoint)),
            None,
            Reader(ReaderKind::Sqlite(readers)),
            clock,
        ))
    }

    /// The URL of database `name` on the PostgreSQL server at `server_url` (a URL without a
    /// database path, e.g. `postgres://postgres@127.0.0.1:5432?sslmode=require`): its query, and
    /// so `sslmode` and the other connection parameters, kept.
    pub fn postgres_database_url(server_url: &str, name: &str) -> Result<String, DbError> {
        let mut url = reqwest::Url::parse(server_url)
            .map_err(|e| DbError::Config(format!("the PostgreSQL URL: {e}")))?;
        url.set_path(&format!("/{name}"));
        Ok(url.into())
    }

    /// Creates database `name` on the PostgreSQL server at `server_url` (see
    /// [`Db::postgres_database_url`]) unless it exists; returns its URL.
    pub async fn ensure_postgres_database(server_url: &str, name: &str) -> Result<String, DbError> {
        let admin_url = Self::postgres_database_url(server_url, "postgres")?;
        let mut admin = PgConnection::connect(&admin_url).await?;
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
                // Another instance created it meanwhile: PostgreSQL says so as 42P04
                // (duplicate_database), or, when the two commands overlap, as a unique violation
                // of its catalog (23505).
                Err(sqlx::Error::Database(e))
                    if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
                other => {
                    other?;
                }
            }
        }
        Self::postgres_database_url(server_url, name)
    }

    /// Connects to a PostgreSQL database (one per service).
    pub async fn open_postgres(
        url: &str,
        name: &str,
        max_connections: u32,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, DbError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self::build(
            name,
            Dialect::Postgres,
            Durability::Full,
            None,
            Some(pool.clone()),
            Reader(ReaderKind::Postgres(pool)),
            clock,
        ))
    }

    fn build(
        name: &str,
        dialect: Dialect,
        durability: Durability,
        writer: Option<(rusqlite::Connection, Checkpointer)>,
        pool: Option<PgPool>,
        reader: Reader,
        clock: Arc<dyn Clock>,
    ) -> Self {
        // The recorder must exist before the commit counter is registered with it.
        crate::host::metrics_handle();
        let (writer, checkpoint) = writer.unzip();
        Self {
            inner: Arc::new(DbInner {
                name: name.to_owned(),
                dialect,
                durability,
                checkpoint,
                writer: writer.map(|conn| {
                    Arc::new(tokio::sync::Mutex::new(SqliteWriter {
                        conn,
                        group: None,
                        savepoint: false,
                    }))
                }),
                queued: AtomicUsize::new(0),
                pool,
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
        self.inner.dialect
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

    /// Applies the core tables (outbox, inbox, cursors, timers, dead letters, idempotency) and then
    /// the service's own migrations, each once, each in a transaction of its own. Instances that
    /// start together take turns (on PostgreSQL each transaction first takes an advisory lock of
    /// the database's migrations), and each applied migration's checksum is kept: a migration
    /// whose text changed after it was applied stops the start, rather than leave the schema
    /// silently different from what the code says.
    pub async fn migrate(&self, service: &[Migration]) -> Result<(), DbError> {
        let mut uow = self.begin_migration().await?;
        query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL, applied_at BIGINT NOT NULL,
                 checksum VARCHAR(64))",
        )
        .execute(uow.conn())
        .await?;
        self.add_checksum_column(&mut uow).await?;
        uow.commit().await?;
        let core = match self.dialect() {
            Dialect::Sqlite => CORE_SQLITE,
            Dialect::Postgres => CORE_POSTGRES,
        };
        for m in core.iter().chain(service) {
            let mut uow = self.begin_migration().await?;
            let checksum = m.checksum();
            let applied = query("SELECT checksum FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(uow.conn())
                .await?;
            match applied.map(|row| row.get::<Option<String>, _>("checksum")) {
                Some(Some(kept)) if kept == checksum => continue,
                Some(Some(_)) => {
                    return Err(DbError::MigrationChanged {
                        version: m.version,
                        name: m.name.to_owned(),
                    });
                }
                // Applied before checksums were kept: this text is taken as the one applied.
                Some(None) => {
                    query("UPDATE schema_migrations SET checksum = $1 WHERE version = $2")
                        .bind(checksum)
                        .bind(m.version)
                        .execute(uow.conn())
                        .await?;
                }
                None => {
                    crate::sql::execute_script(m.sql, uow.conn()).await?;
                    let now = uow.now();
                    query(
                        "INSERT INTO schema_migrations (version, name, applied_at, checksum)
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(m.version)
                    .bind(m.name)
                    .bind(now)
                    .bind(checksum)
                    .execute(uow.conn())
                    .await?;
                }
            }
            uow.commit().await?;
        }
        Ok(())
    }

    /// A unit of work for a migration: on PostgreSQL, one at a time among every instance on this
    /// database (a transaction-scoped advisory lock, released by its commit or rollback).
    async fn begin_migration(&self) -> Result<Uow, DbError> {
        let mut uow = self.begin().await?;
        if self.dialect() == Dialect::Postgres {
            let key = stable_hash(&format!("{}/migrations", self.name())) as i64;
            query("SELECT pg_advisory_xact_lock($1)")
                .bind(key)
                .execute(uow.conn())
                .await?;
        }
        Ok(uow)
    }

    /// `schema_migrations.checksum`, for a table made before it existed.
    async fn add_checksum_column(&self, uow: &mut Uow) -> Result<(), DbError> {
        match self.dialect() {
            Dialect::Postgres => {
                query(
                    "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum VARCHAR(64)",
                )
                .execute(uow.conn())
                .await?;
            }
            Dialect::Sqlite => {
                let has: i64 = query_scalar(
                    "SELECT COUNT(*) FROM pragma_table_info('schema_migrations') WHERE name = 'checksum'",
                )
                .fetch_one(uow.conn())
                .await?;
                if has == 0 {
                    query("ALTER TABLE schema_migrations ADD COLUMN checksum VARCHAR(64)")
                        .execute(uow.conn())
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Starts a unit of work on the writer.
    pub async fn begin(&self) -> Result<Uow, DbError> {
        let tx = match (&self.inner.writer, &self.inner.pool) {
            (Some(writer), _) => {
                let mut writer = {
                    let _queued = Queued::enter(&self.inner.queued);
                    writer.clone().lock_owned().await
                };
                writer.start_unit()?;
                TxState::Sqlite(writer)
            }
            (None, Some(pool)) => TxState::Postgres(pool.begin().await?),
            (None, None) => unreachable!("a database has a writer or a pool"),
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
        let Some(pool) = &self.inner.pool else {
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

/// Opens one SQLite connection with Tanda's settings.
/// Creates `dir` (and its missing parents) readable by its owner only, or takes the group's and
/// others' access away from one that exists: it holds every service's data. A directory this
/// process may not change (not its owner's) is left as it is, with a warning.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        if let Err(e) = owner_only(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "the data directory stays readable by others");
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// The database file `path` read- and writable by its owner only: created so when new (SQLite
/// then creates its `-wal` and `-shm` files with the same permissions), tightened when it, its
/// WAL or its shared memory file was left open to others.
fn private_sqlite_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            // SQLite takes an empty file for a new database.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let mut files = vec![path.to_path_buf()];
        for suffix in ["-wal", "-shm"] {
            let mut companion = path.as_os_str().to_owned();
            companion.push(suffix);
            files.push(PathBuf::from(companion));
        }
        for file in files {
            match owner_only(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "a database file stays readable by others");
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Takes the group's and others' permissions off `path`, if it has any.
#[cfg(unix)]
fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7700))?;
    }
    Ok(())
}

fn sqlite_open(path: &Path, synchronous: &str) -> Result<rusqlite::Connection, DbError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};"
    ))?;
    // Two processes on one file (a test sabotaging a table) wait for each other.
    conn.busy_timeout(Duration::from_secs(10))?;
    // Every statement a service runs, prepared once per connection.
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
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
    tx: Tx,
    db: Db,
    wrote_outbox: bool,
    wrote_timers: bool,
    after_commit: Vec<Box<dyn FnOnce() + Send>>,
}

impl Uow {
    /// The connection to run the service's own SQL on.
    pub fn conn(&mut self) -> &mut Tx {
        &mut self.tx
    }
    pub fn now(&self) -> Timestamp {
        self.db.now()
    }
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Appends an event to the outbox; it is published only if this unit of work commits.
    pub async fn publish(&mut self, event: &Envelope) -> Result<(), DbError> {
        debug_assert!(
            self.db
                .inner
                .produces
                .get()
                .is_none_or(|types| types.contains(&event.kind.as_str())),
            "{} publishes {}, which its registry entry does not list",
            self.db.name(),
            event.kind
        );
        let json = serde_json::to_string(event).expect("envelopes serialize");
        query(
            "INSERT INTO outbox (id, type, aggregate_id, envelope, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&event.id)
        .bind(&event.kind)
        .bind(&event.aggregate_id)
        .bind(json)
        .bind(self.now())
        .execute(&mut self.tx)
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
        query("INSERT INTO timers (id, kind, key, fire_at, payload) VALUES ($1, $2, $3, $4, $5)")
            .bind(new_id())
            .bind(kind)
            .bind(key)
            .bind(fire_at)
            .bind(payload.to_string())
            .execute(&mut self.tx)
            .await?;
        self.wrote_timers = true;
        Ok(())
    }

    /// Schedules `timer` at `fire_at`, replacing any of its kind and key.
    pub async fn set_timer<T: crate::timers::Timed>(
        &mut self,
        timer: &T,
        fire_at: Timestamp,
    ) -> Result<(), DbError> {
        self.schedule(timer.kind(), timer.key(), fire_at, timer.payload())
            .await
    }

    /// Removes the timer of this kind and key, if any.
    pub async fn cancel_timer(&mut self, kind: &str, key: &str) -> Result<(), DbError> {
        query("DELETE FROM timers WHERE kind = $1 AND key = $2")
            .bind(kind)
            .bind(key)
            .execute(&mut self.tx)
            .await?;
        Ok(())
    }

    /// Claims a due timer: true if this unit of work removed it (so it fires exactly once, even
    /// with several instances racing for it).
    pub(crate) async fn claim_timer(&mut self, id: &str) -> Result<bool, DbError> {
        let done = query("DELETE FROM timers WHERE id = $1")
            .bind(id)
            .execute(&mut self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that `consumer` handled `event_id`; false if it already had (a redelivery).
    pub(crate) async fn record_inbox(
        &mut self,
        consumer: &str,
        event_id: &str,
    ) -> Result<bool, DbError> {
        let done = query(
            "INSERT INTO inbox (consumer, event_id, processed_at) VALUES ($1, $2, $3)
             ON CONFLICT (consumer, event_id) DO NOTHING",
        )
        .bind(consumer)
        .bind(event_id)
        .bind(self.now())
        .execute(&mut self.tx)
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
        let row = query(
            "SELECT request_hash, status, body FROM idempotency WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&mut self.tx)
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
        query(
            "INSERT INTO idempotency (scope, key, request_hash, status, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(scope)
        .bind(key)
        .bind(request_hash(request))
        .bind(i32::from(status))
        .bind(body.to_string())
        .bind(self.now())
        .execute(&mut self.tx)
        .await
        .map_err(|e| match e {
            // A concurrent request with the same key won: retrying replays its response.
            e if e.is_unique_violation() => DbError::Conflict(format!("idempotency key {key}")),
            e => e,
        })?;
        Ok(())
    }

    pub(crate) async fn set_cursor(
        &mut self,
        consumer: &str,
        source: &str,
        position: i64,
    ) -> Result<(), DbError> {
        query(
            "INSERT INTO consumer_cursors (consumer, source, position) VALUES ($1, $2, $3)
             ON CONFLICT (consumer, source) DO UPDATE SET position = excluded.position",
        )
        .bind(consumer)
        .bind(source)
        .bind(position)
        .execute(&mut self.tx)
        .await?;
        Ok(())
    }

    /// Runs `f` once this unit of work has committed (never if it rolls back): for in-memory
    /// caches and live streams that must only ever show committed state.
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(f));
    }

    /// Commits, runs the after-commit hooks, then wakes whoever waits on this database's outbox
    /// or timers. On SQLite under load the commit may be shared with the units around it; it
    /// returns once that shared commit is done.
    pub async fn commit(self) -> Result<(), DbError> {
        self.commit_unit().await?;
        crate::failpoint::committed();
        Ok(())
    }

    async fn commit_unit(self) -> Result<(), DbError> {
        let Uow {
            mut tx,
            db,
            wrote_outbox,
            wrote_timers,
            after_commit,
        } = self;
        let mut writer = match std::mem::replace(&mut tx.0, TxState::Committed) {
            TxState::Sqlite(writer) => writer,
            TxState::Postgres(pg) => {
                pg.commit().await?;
                db.inner.commits.increment(1);
                db.inner.transactions.increment(1);
                for f in after_commit {
                    f();
                }
                db.signal(wrote_outbox, wrote_timers);
                return Ok(());
            }
            TxState::Committed => return Ok(()),
        };
        if let Err(e) = writer.finish_unit() {
            writer.abandon_unit();
            return Err(e.into());
        }
        let group = writer
            .group
            .as_mut()
            .expect("a unit runs inside a transaction");
        group.finished += 1;
        group.hooks.extend(after_commit);
        group.wrote_outbox |= wrote_outbox;
        group.wrote_timers |= wrote_timers;
        if db.inner.queued.load(Ordering::Relaxed) == 0 || group.finished >= GROUP_MAX {
            return db.commit_group(writer);
        }
        // Others wait for the writer: leave the transaction open for them. The last of them, or
        // the committer started here (queued behind them), commits it.
        let mut done = group.done.subscribe();
        if !std::mem::replace(&mut group.committer, true) {
            let db = db.clone();
            tokio::spawn(async move {
                let writer = db.sqlite_writer().clone().lock_owned().await;
                // Whatever transaction is open now (this one may have been committed already);
                // its units hear of a failure through `done`.
                let _ = db.commit_group(writer);
            });
        }
        drop(writer);
        match done.wait_for(Option::is_some).await {
            Ok(outcome) => match outcome.as_ref().expect("waited for an outcome") {
                Ok(()) => Ok(()),
                Err(e) => Err(DbError::Commit(e.clone())),
            },
            Err(_) => Err(DbError::Commit(
                "the transaction this unit of work shared was rolled back".into(),
            )),
        }
    }
}

impl Db {
    fn sqlite_writer(&self) -> &Arc<tokio::sync::Mutex<SqliteWriter>> {
        self.inner.writer.as_ref().expect("a SQLite database")
    }

    /// Commits the open SQLite transaction for every unit in it, runs their after-commit hooks in
    /// order while still holding the writer, then answers them.
    fn commit_group(&self, mut writer: OwnedMutexGuard<SqliteWriter>) -> Result<(), DbError> {
        let Some(group) = writer.group.take() else {
            return Ok(());
        };
        let commit = |conn: &mut rusqlite::Connection| conn.execute_batch("COMMIT");
        let done = match self.inner.durability {
            // NORMAL: the commit appends to the WAL without waiting for the disk.
            Durability::Normal => commit(&mut writer.conn),
            // FULL waits for the disk: let the runtime move other tasks off this thread.
            Durability::Full => blocking(|| commit(&mut writer.conn)),
        };
        if let Err(e) = done {
            // Leaves the connection as the next unit expects it: outside a transaction.
            if !writer.conn.is_autocommit() {
                let _ = writer.conn.execute_batch("ROLLBACK");
            }
            drop(writer);
            group.done.send_replace(Some(Err(e.to_string().into())));
            return Err(e.into());
        }
        self.inner.commits.increment(group.finished);
        self.inner.transactions.increment(1);
        if let Some(checkpoint) = &self.inner.checkpoint {
            checkpoint.after_commit();
        }
        // Before the next unit can begin, so that in-memory state follows the commits in order.
        for f in group.hooks {
            f();
        }
        drop(writer);
        self.signal(group.wrote_outbox, group.wrote_timers);
        group.done.send_replace(Some(Ok(())));
        Ok(())
    }

    fn signal(&self, outbox: bool, timers: bool) {
        if outbox {
            self.inner.outbox_signal.send_modify(|n| *n += 1);
        }
        if timers {
            self.inner.timer_signal.send_modify(|n| *n += 1);
        }
    }
}

/// Counts a task waiting for the SQLite writer for as long as it waits, even if it gives up.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
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
/// The row `Db::writable` overwrites.
const READINESS_PROBE: &str = "CREATE TABLE IF NOT EXISTS readiness_probe (id INTEGER PRIMARY KEY, checked_at BIGINT NOT NULL)";
/// The core's own migrations count down from 0; a service's count up from 1.
const CORE_SQLITE: &[Migration] = &[
    Migration {
        version: 0,
        name: "core",
        sql: core_tables!("INTEGER PRIMARY KEY AUTOINCREMENT"),
    },
    // All-in-one, consumers tail the outbox itself and nothing marks rows published.
    Migration {
        version: -1,
        name: "core: outbox rows not yet relayed",
        sql: "",
    },
    Migration {
        version: -2,
        name: "core: readiness probe",
        sql: READINESS_PROBE,
    },
];
const CORE_POSTGRES: &[Migration] = &[
    Migration {
        version: 0,
        name: "core",
        sql: core_tables!("BIGSERIAL PRIMARY KEY"),
    },
    // The relay looks for what is left to publish; without this it reads past every published
    // row housekeeping still keeps, on every wake-up.
    Migration {
        version: -1,
        name: "core: outbox rows not yet relayed",
        sql: "CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL",
    },
    Migration {
        version: -2,
        name: "core: readiness probe",
        sql: READINESS_PROBE,
    },
];
