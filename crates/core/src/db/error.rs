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

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    /// A PostgreSQL error as the server would send it: just its SQLSTATE.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl sqlx::error::DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            match self.0 {
                "23505" => sqlx::error::ErrorKind::UniqueViolation,
                _ => sqlx::error::ErrorKind::Other,
            }
        }
    }

    fn postgres(code: &'static str) -> DbError {
        DbError::from(sqlx::Error::Database(Box::new(Sqlstate(code))))
    }

    /// A real unique violation of SQLite's.
    fn sqlite_duplicate() -> DbError {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
            .unwrap();
        DbError::from(conn.execute("INSERT INTO t VALUES (1)", []).unwrap_err())
    }

    #[test]
    fn a_server_out_of_room_or_reach_is_transient_and_a_refusal_is_not() {
        for code in [
            "53300", "08006", "57P01", "55006", "57014", "25006", "40001", "40P01",
        ] {
            assert!(postgres(code).is_transient(), "{code}");
        }
        for code in ["23505", "42601", "42P01", "22001"] {
            assert!(!postgres(code).is_transient(), "{code}");
        }
        assert!(!DbError::from(sqlx::Error::RowNotFound).is_transient());
        assert!(!sqlite_duplicate().is_transient());
        assert!(DbError::from(std::io::Error::other("no such directory")).is_transient());
    }

    #[test]
    fn too_many_connections_comes_with_what_to_do_about_it() {
        let hint = postgres("53300").hint().expect("a hint for 53300");
        assert!(hint.contains("--postgres-pool"), "{hint}");
        assert_eq!(postgres("08006").hint(), None);
        assert_eq!(DbError::RowNotFound.hint(), None);
    }

    #[test]
    fn duplicates_and_conflicts_are_told_apart_from_other_failures() {
        assert!(postgres("23505").is_unique_violation());
        assert!(sqlite_duplicate().is_unique_violation());
        assert!(!postgres("23503").is_unique_violation());
        assert!(!DbError::RowNotFound.is_unique_violation());

        assert!(DbError::Conflict("dispatch d1".into()).is_conflict());
        assert!(!DbError::RowNotFound.is_conflict());
        assert!(!sqlite_duplicate().is_conflict());
    }
}
