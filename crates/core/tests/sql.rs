//! The SQL layer behaves the same on SQLite (in-process) and PostgreSQL (started by `.ci/run`):
//! `$N` placeholders bound by number, typed NULLs, affected-row counts, unique violations,
//! decode errors instead of panics, reads through either a unit of work or the readers, and
//! rollback of a unit of work that is dropped.

use std::sync::Arc;

use tanda_core::db::{Durability, Migration};
use tanda_core::sql::{Conn, query, query_scalar};
use tanda_core::{Db, DbError, SystemClock};

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

const ITEMS: &[Migration] = &[Migration {
    version: 1,
    name: "items",
    sql: "CREATE TABLE items (
            id VARCHAR(64) PRIMARY KEY, label VARCHAR(50), amount BIGINT, share DOUBLE PRECISION,
            flag INTEGER NOT NULL)",
}];

async fn sqlite(dir: &tempfile::TempDir, durability: Durability) -> Db {
    let db = Db::open_sqlite(dir.path(), "items", durability, Arc::new(SystemClock))
        .await
        .unwrap();
    db.migrate(ITEMS).await.unwrap();
    db
}

async fn postgres() -> Db {
    let name = format!(
        "tsql{}",
        uuid::Uuid::new_v4().simple().to_string().get(..10).unwrap()
    );
    let url = Db::ensure_postgres_database(POSTGRES, &name)
        .await
        .expect("PostgreSQL is running (see .ci/run)");
    let db = Db::open_postgres(&url, &name, 4, Arc::new(SystemClock))
        .await
        .unwrap();
    db.migrate(ITEMS).await.unwrap();
    db
}

async fn drop_postgres(db: Db) {
    use sqlx::Connection;
    let name = db.name().to_owned();
    db.close().await;
    let mut admin = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres"))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

/// Every behaviour below, on one database of either engine.
async fn behaves(db: &Db) {
    // Placeholders are bound by number, whatever order the SQL names them in.
    let mut uow = db.begin().await.unwrap();
    let inserted =
        query("INSERT INTO items (flag, id, label, amount, share) VALUES ($5, $1, $2, $3, $4)")
            .bind("a")
            .bind("first")
            .bind(7_000_i64)
            .bind(0.25_f64)
            .bind(1_i32)
            .execute(uow.conn())
            .await
            .unwrap();
    assert_eq!(inserted.rows_affected(), 1);
    // A NULL keeps its type: PostgreSQL accepts it for a BIGINT and a VARCHAR column.
    query("INSERT INTO items (id, label, amount, share, flag) VALUES ($1, $2, $3, $4, $5)")
        .bind("b")
        .bind(None::<&str>)
        .bind(None::<i64>)
        .bind(None::<f64>)
        .bind(false)
        .execute(uow.conn())
        .await
        .unwrap();
    // A unit of work reads its own writes, through `Conn` as through its connection.
    let mut conn = Conn::from(uow.conn());
    let count: i64 = query_scalar("SELECT COUNT(*) FROM items")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 2);
    uow.commit().await.unwrap();

    // Nothing inserted on conflict: zero rows affected.
    let mut uow = db.begin().await.unwrap();
    let ignored = query("INSERT INTO items (id, flag) VALUES ($1, 0) ON CONFLICT (id) DO NOTHING")
        .bind("a")
        .execute(uow.conn())
        .await
        .unwrap();
    assert_eq!(ignored.rows_affected(), 0);
    // A duplicate key is recognisable as such on both engines.
    let duplicate = query("INSERT INTO items (id, flag) VALUES ($1, 0)")
        .bind("a")
        .execute(uow.conn())
        .await
        .unwrap_err();
    assert!(duplicate.is_unique_violation(), "{duplicate}");
    drop(uow);

    // Values read back as written, by column name, through the readers.
    let rows = query("SELECT id, label, amount, share, flag FROM items ORDER BY id")
        .fetch_all(db.reader())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].try_get::<String, _>("id").unwrap(), "a");
    assert_eq!(
        rows[0]
            .try_get::<Option<String>, _>("label")
            .unwrap()
            .as_deref(),
        Some("first")
    );
    assert_eq!(rows[0].try_get::<i64, _>("amount").unwrap(), 7_000);
    assert_eq!(rows[0].try_get::<f64, _>("share").unwrap(), 0.25);
    assert!(rows[0].try_get::<bool, _>("flag").unwrap());
    assert_eq!(rows[1].try_get::<Option<String>, _>("label").unwrap(), None);
    assert_eq!(rows[1].try_get::<Option<i64>, _>("amount").unwrap(), None);
    assert!(!rows[1].try_get::<bool, _>("flag").unwrap());
    // Reading a column as the wrong type, or a column that is not there, is an error, not a panic.
    assert!(matches!(
        rows[0].try_get::<i64, _>("label"),
        Err(DbError::Decode(_))
    ));
    assert!(matches!(
        rows[0].try_get::<i64, _>("missing"),
        Err(DbError::Decode(_))
    ));
    assert!(matches!(
        rows[1].try_get::<String, _>("label"),
        Err(DbError::Decode(_))
    ));

    // A dropped unit of work rolls back, and the database is usable at once.
    {
        let mut uow = db.begin().await.unwrap();
        query("DELETE FROM items")
            .execute(uow.conn())
            .await
            .unwrap();
    }
    let mut uow = db.begin().await.unwrap();
    let kept: i64 = query_scalar("SELECT COUNT(*) FROM items")
        .fetch_one(uow.conn())
        .await
        .unwrap();
    assert_eq!(kept, 2, "the dropped unit's delete never committed");
    uow.commit().await.unwrap();

    // A query that yields rows can be run for its effect alone.
    query("SELECT 1").execute(db.reader()).await.unwrap();
    query("SELECT id FROM items")
        .execute(db.reader())
        .await
        .unwrap();

    // fetch_one on no rows is an error; fetch_optional is None.
    let none = query("SELECT id FROM items WHERE id = $1")
        .bind("zzz")
        .fetch_optional(db.reader())
        .await
        .unwrap();
    assert!(none.is_none());
    let missing = query("SELECT id FROM items WHERE id = $1")
        .bind("zzz")
        .fetch_one(db.reader())
        .await;
    assert!(matches!(missing, Err(DbError::RowNotFound)));
}

#[tokio::test]
async fn sqlite_behaves_as_specified() {
    let dir = tempfile::tempdir().unwrap();
    behaves(&sqlite(&dir, Durability::Normal).await).await;
}

/// `synchronous=FULL` commits wait for the disk: on a multi-threaded runtime that wait steps aside
/// for other tasks, on a single-threaded one it simply runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_with_full_durability_behaves_as_specified_on_a_multi_threaded_runtime() {
    let dir = tempfile::tempdir().unwrap();
    behaves(&sqlite(&dir, Durability::Full).await).await;
}

#[tokio::test]
async fn sqlite_with_full_durability_behaves_as_specified_on_one_thread() {
    let dir = tempfile::tempdir().unwrap();
    behaves(&sqlite(&dir, Durability::Full).await).await;
}

#[tokio::test]
async fn postgres_behaves_as_specified() {
    let db = postgres().await;
    behaves(&db).await;
    drop_postgres(db).await;
}

/// What one process committed, another opening the same file reads: the data is on disk, not in
/// a connection's cache.
#[tokio::test]
async fn sqlite_commits_are_visible_to_a_fresh_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sqlite(&dir, Durability::Normal).await;
        let mut uow = db.begin().await.unwrap();
        query("INSERT INTO items (id, flag) VALUES ($1, 1)")
            .bind("kept")
            .execute(uow.conn())
            .await
            .unwrap();
        uow.commit().await.unwrap();
    }
    let db = sqlite(&dir, Durability::Normal).await;
    let ids: Vec<String> = query_scalar("SELECT id FROM items")
        .fetch_all(db.reader())
        .await
        .unwrap();
    assert_eq!(ids, ["kept"]);
}

/// A migration is a script run as the engine splits it (a `;` inside a string is text), applied
/// once; and one whose text changed after it was applied stops the start, on both engines.
async fn migrations_are_scripts_applied_once_and_kept_unchanged(db: &Db) {
    const NOTES: &[Migration] = &[Migration {
        version: 7,
        name: "notes",
        sql: "CREATE TABLE notes (id INTEGER PRIMARY KEY, text VARCHAR(50) NOT NULL);
              INSERT INTO notes (id, text) VALUES (1, 'one; two');",
    }];
    db.migrate(NOTES).await.unwrap();
    db.migrate(NOTES).await.expect("applied once, then skipped");
    let text: String = query_scalar("SELECT text FROM notes WHERE id = 1")
        .fetch_one(db.reader())
        .await
        .unwrap();
    assert_eq!(text, "one; two");

    const CHANGED: &[Migration] = &[Migration {
        version: 7,
        name: "notes",
        sql: "CREATE TABLE notes (id INTEGER PRIMARY KEY, text VARCHAR(80) NOT NULL)",
    }];
    match db.migrate(CHANGED).await {
        Err(DbError::MigrationChanged { version: 7, .. }) => {}
        other => panic!("a changed migration must stop the start: {other:?}"),
    }
}

#[tokio::test]
async fn sqlite_migrations_are_scripts_applied_once_and_kept_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(&dir, Durability::Normal).await;
    migrations_are_scripts_applied_once_and_kept_unchanged(&db).await;
}

#[tokio::test]
async fn postgres_migrations_are_scripts_applied_once_and_kept_unchanged() {
    let db = postgres().await;
    migrations_are_scripts_applied_once_and_kept_unchanged(&db).await;
    drop_postgres(db).await;
}
