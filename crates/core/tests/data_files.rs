//! The data directory and its SQLite files are readable by their owner only, whatever the umask;
//! a directory or file an older version left open is closed when a database opens; and SQLite
//! runs with the durability asked for.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tanda_core::db::{Durability, Migration};
use tanda_core::sql::{query, query_scalar};
use tanda_core::{Db, SystemClock};

const DOCS: &[Migration] = &[Migration {
    version: 1,
    name: "docs",
    sql: "CREATE TABLE docs (id VARCHAR(64) PRIMARY KEY)",
}];

/// The permission bits of `path`, in octal.
fn mode(path: &Path) -> String {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("{:o}", meta.permissions().mode() & 0o777)
}

async fn open_and_write(dir: &Path, id: &str) -> Db {
    let db = Db::open_sqlite(dir, "docs", Durability::Normal, Arc::new(SystemClock))
        .await
        .unwrap();
    db.migrate(DOCS).await.unwrap();
    let mut uow = db.begin().await.unwrap();
    query("INSERT INTO docs (id) VALUES ($1)")
        .bind(id)
        .execute(uow.conn())
        .await
        .unwrap();
    uow.commit().await.unwrap();
    db
}

fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), "700", "the data directory");
    for file in ["docs.db", "docs.db-wal", "docs.db-shm"] {
        assert_eq!(mode(&dir.join(file)), "600", "{file}");
    }
}

#[tokio::test]
async fn a_new_data_dir_and_its_files_are_private() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let _db = open_and_write(&dir, "a").await;
    assert_private(&dir);
}

#[tokio::test]
async fn an_open_data_dir_and_files_are_tightened() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    drop(open_and_write(&dir, "a").await);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for file in ["docs.db", "docs.db-wal", "docs.db-shm"] {
        let path = dir.join(file);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let _db = open_and_write(&dir, "b").await;
    assert_private(&dir);
}

/// `synchronous` as SQLite reports it on the writer and on a reader of `db`.
async fn synchronous(db: &Db) -> (i64, i64) {
    let mut uow = db.begin().await.unwrap();
    let writer = query_scalar::<i64>("PRAGMA synchronous")
        .fetch_one(uow.conn())
        .await
        .unwrap();
    uow.commit().await.unwrap();
    let reader = query_scalar::<i64>("PRAGMA synchronous")
        .fetch_one(db.reader())
        .await
        .unwrap();
    (writer, reader)
}

/// DESIGN §5.8: the durability asked for is the one SQLite runs with, read back from SQLite
/// itself (1 = NORMAL, 2 = FULL), in WAL mode.
#[tokio::test]
async fn the_durability_asked_for_is_what_sqlite_runs_with() {
    for (durability, expected) in [(Durability::Normal, 1), (Durability::Full, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(dir.path(), "docs", durability, Arc::new(SystemClock))
            .await
            .unwrap();
        assert_eq!(
            synchronous(&db).await,
            (expected, expected),
            "{durability:?}"
        );
        let journal = query_scalar::<String>("PRAGMA journal_mode")
            .fetch_one(db.reader())
            .await
            .unwrap();
        assert_eq!(journal, "wal", "{durability:?}");
    }
}
