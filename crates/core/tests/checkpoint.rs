//! SQLite's WAL is copied back into the database file by a checkpointer of the database's own, a
//! moment after commits, rather than by whichever commit crosses SQLite's threshold while every
//! other unit waits for the writer. Its thread lives as long as the database.
//!
//! One test in this binary, so that the threads counted are this test's.

use std::sync::Arc;

use tanda_core::db::{Durability, Migration};
use tanda_core::sql::{query, query_scalar};
use tanda_core::{Db, SystemClock};
use tanda_testkit::eventually;

const DOCS: &[Migration] = &[Migration {
    version: 1,
    name: "docs",
    sql: "CREATE TABLE docs (id VARCHAR(64) PRIMARY KEY, body TEXT NOT NULL)",
}];

fn checkpoint_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == "sqlite-ckpt")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpointer_copies_commits_into_the_file_and_ends_with_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_sqlite(
        dir.path(),
        "docs",
        Durability::Normal,
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    db.migrate(DOCS).await.unwrap();
    // A thread takes its name once it runs, not when it is spawned: on a loaded machine the
    // checkpointer may not have run yet. Exactly one must appear (two never equal one).
    eventually("the database's one checkpointer is running", async || {
        checkpoint_threads() == 1
    })
    .await;
    let file = dir.path().join("docs.db");
    let size = || std::fs::metadata(&file).unwrap().len();
    let before = size();

    // About 100 pages of 4 KiB, each row in a commit of its own: far below the 1,000 pages at
    // which SQLite would have the committing writer checkpoint (and Tanda's writer waits for
    // 10,000), so only the checkpointer can bring them into the file.
    let body = "x".repeat(4000);
    for i in 0..100 {
        let mut uow = db.begin().await.unwrap();
        query("INSERT INTO docs (id, body) VALUES ($1, $2)")
            .bind(format!("doc-{i}").as_str())
            .bind(body.as_str())
            .execute(uow.conn())
            .await
            .unwrap();
        uow.commit().await.unwrap();
    }
    eventually(
        "the committed pages are copied into the database file",
        async || size() >= before + 100 * 4000,
    )
    .await;
    let rows: i64 = query_scalar("SELECT COUNT(*) FROM docs")
        .fetch_one(db.reader())
        .await
        .unwrap();
    assert_eq!(rows, 100);

    drop(db);
    eventually(
        "the checkpointer's thread ends with its database",
        async || checkpoint_threads() == 0,
    )
    .await;
}
