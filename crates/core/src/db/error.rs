//! What can go wrong with a database, and whether waiting helps (`DbError::is_transient`).

use super::*;

/// A database failure. The engine's own error stays inside ([`EngineError`]): callers ask what
/// it means (`is_transient`, `is_unique_violation`, `hint`), never which engine said it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Engine(EngineError),
    /// The database's directory or files could not be made private or opened.
    #[error("database files: {0}")]
    Io(#[from] std::io::Error),
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

/// An error of SQLite or PostgreSQL, opaque outside storage.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct EngineError(Engine);

#[derive(Debug, thiserror::Error)]
enum Engine {
    #[error(transparent)]
    Postgres(sqlx::Error),
    #[error(transparent)]
    Sqlite(rusqlite::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError::Engine(EngineError(Engine::Postgres(e)))
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Engine(EngineError(Engine::Sqlite(e)))
    }
}

impl DbError {
    /// What an operator can do about this failure, when there is something specific.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            DbError::Engine(EngineError(Engine::Postgres(sqlx::Error::Database(e))))
                if e.code().as_deref() == Some("53300") =>
            {
                Some(
                    "PostgreSQL refuses more connections (max_connections): lower --postgres-pool, \
                 run fewer replicas, or raise max_connections; README \"Deploy\" has the budget",
                )
            }
            _ => None,
        }
    }

    /// The database could not be reached or had no room for the request (down, restarting,
    /// refusing more connections, a lost connection, a serialization failure): the same request
    /// may well succeed later. Everything else (bad SQL, a constraint, a wrong password) will not.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Engine(EngineError(Engine::Postgres(e))) => sql_is_transient(e),
            DbError::Engine(EngineError(Engine::Sqlite(rusqlite::Error::SqliteFailure(e, _)))) => {
                matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::SystemIoFailure
                        | rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::ReadOnly
                )
            }
            // A group commit failed for every unit in it (a full disk, an I/O error): no unit's
            // own doing.
            DbError::Commit(_) | DbError::Closed(_) => true,
            // The files of a database that is there (its directory, its WAL) not reachable now.
            DbError::Io(_) => true,
            _ => false,
        }
    }

    /// An insert hit a primary key or unique index.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Engine(EngineError(Engine::Postgres(sqlx::Error::Database(e)))) => {
                e.is_unique_violation()
            }
            DbError::Engine(EngineError(Engine::Sqlite(rusqlite::Error::SqliteFailure(e, _)))) => {
                matches!(
                    e.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                )
            }
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
pub(super) fn sql_is_transient(e: &sqlx::Error) -> bool {
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

impl IsConflict for DbError {
    fn is_conflict(&self) -> bool {
        matches!(self, DbError::Conflict(_))
    }
}
