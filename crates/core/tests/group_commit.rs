//! Group commit on SQLite: units of work that find others waiting for the writer share one
//! transaction, each in a savepoint of its own. These tests pin down what that must not change:
//! a caller hears "committed" only once the rows are committed, a unit that fails rolls back
//! alone, after-commit hooks run once each in commit order and never for a unit that rolled back,
//! and a unit left waiting is committed even if every unit queued behind it gives up.
//!
//! Units are put in a known order on a current-thread runtime: a unit holding the writer yields,
//! so the units spawned before run up to the point where they wait for it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tanda_core::db::{Durability, Migration};
use tanda_core::sql::{query, query_scalar};
use tanda_core::{Db, SystemClock};

const ITEMS: &[Migration] = &[Migration {
    version: 1,
    name: "items",
    sql: "CREATE TABLE items (id VARCHAR(64) PRIMARY KEY)",
}];

async fn open(dir: &tempfile::TempDir, name: &str, durability: Durability) -> Db {
    let db = Db::open_sqlite(dir.path(), name, durability, Arc::new(SystemClock))
        .await
        .unwrap();
    db.migrate(ITEMS).await.unwrap();
    db
}

/// A Prometheus counter of the database named `db` (names are unique per test).
fn counter(metric: &str, db: &str) -> u64 {
    let prefix = format!("{metric}{{db=\"{db}\"}} ");
    tanda_core::host::metrics_handle()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str())?.parse().ok())
        .unwrap_or(0)
}

async fn committed(db: &Db) -> Vec<String> {
    query_scalar("SELECT id FROM items ORDER BY id")
        .fetch_all(db.reader())
        .await
        .unwrap()
}

async fn insert(uow: &mut tanda_core::Uow, id: &str) -> Result<(), tanda_core::DbError> {
    query("INSERT INTO items (id) VALUES ($1)")
        .bind(id)
        .execute(uow.conn())
        .await
        .map(drop)
}

/// Lets every other ready task run up to its next wait.
async fn let_others_queue() {
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn units_waiting_for_the_writer_share_one_commit_and_each_hears_only_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, "gc_share", Durability::Normal).await;
    let (commits, transactions) = (
        counter("tanda_commits_total", "gc_share"),
        counter("tanda_transactions_total", "gc_share"),
    );

    let mut a = db.begin().await.unwrap();
    insert(&mut a, "a").await.unwrap();
    let b = tokio::spawn({
        let db = db.clone();
        async move {
            let mut b = db.begin().await.unwrap();
            // Inside the shared transaction, a's row is there; outside it, not yet.
            let inside: i64 = query_scalar("SELECT COUNT(*) FROM items WHERE id = 'a'")
                .fetch_one(b.conn())
                .await
                .unwrap();
            let outside = committed(&db).await;
            insert(&mut b, "b").await.unwrap();
            b.commit().await.unwrap();
            (inside, outside)
        }
    });
    let_others_queue().await;
    a.commit().await.unwrap();
    assert_eq!(
        committed(&db).await,
        ["a", "b"],
        "a hears committed only once the shared commit is done"
    );
    let (inside, outside) = b.await.unwrap();
    assert_eq!(inside, 1, "b ran in the transaction a left open");
    assert!(
        outside.is_empty(),
        "nothing was committed before b: {outside:?}"
    );
    assert_eq!(counter("tanda_commits_total", "gc_share") - commits, 2);
    assert_eq!(
        counter("tanda_transactions_total", "gc_share") - transactions,
        1,
        "two units, one transaction"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_failing_unit_in_a_shared_transaction_rolls_back_alone_and_its_hooks_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, "gc_fail", Durability::Normal).await;
    let ran = Arc::new(Mutex::new(Vec::new()));
    let hook = |uow: &mut tanda_core::Uow, name: &'static str| {
        let ran = ran.clone();
        uow.after_commit(move || ran.lock().unwrap().push(name));
    };

    let mut a = db.begin().await.unwrap();
    insert(&mut a, "a").await.unwrap();
    hook(&mut a, "a");
    let b = tokio::spawn({
        let db = db.clone();
        let ran = ran.clone();
        async move {
            let mut b = db.begin().await.unwrap();
            insert(&mut b, "b").await.unwrap();
            b.after_commit(move || ran.lock().unwrap().push("b"));
            // A unique violation: the command fails and its unit is dropped uncommitted.
            let duplicate = insert(&mut b, "a").await.unwrap_err();
            assert!(duplicate.is_unique_violation(), "{duplicate}");
        }
    });
    let c = tokio::spawn({
        let db = db.clone();
        let ran = ran.clone();
        async move {
            let mut c = db.begin().await.unwrap();
            insert(&mut c, "c").await.unwrap();
            c.after_commit(move || ran.lock().unwrap().push("c"));
            c.commit().await.unwrap();
        }
    });
    let_others_queue().await;
    a.commit().await.unwrap();
    b.await.unwrap();
    c.await.unwrap();

    assert_eq!(committed(&db).await, ["a", "c"]);
    assert_eq!(
        *ran.lock().unwrap(),
        ["a", "c"],
        "in commit order, b's never"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_waiting_unit_is_committed_even_when_the_units_queued_behind_it_give_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, "gc_abandon", Durability::Normal).await;

    let mut a = db.begin().await.unwrap();
    insert(&mut a, "a").await.unwrap();
    let b = tokio::spawn({
        let db = db.clone();
        async move {
            let mut b = db.begin().await.unwrap();
            insert(&mut b, "b").await.unwrap();
            b.commit().await.unwrap();
        }
    });
    let_others_queue().await;
    // b is queued for the writer, so a leaves the transaction open for it; then b goes away
    // before it ever runs (a client that hung up).
    b.abort();
    tokio::time::timeout(Duration::from_secs(5), a.commit())
        .await
        .expect("a's commit does not wait forever for a unit that never comes")
        .unwrap();
    assert!(b.await.unwrap_err().is_cancelled());
    assert_eq!(committed(&db).await, ["a"]);
}

/// Many writers at once on a multi-threaded runtime, with every third failing half-way: each
/// success is readable the moment its commit returns, and no failure leaves a row.
async fn many_writers(durability: Durability, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, name, durability).await;
    let migrations = counter("tanda_commits_total", name);
    let mut tasks = Vec::new();
    for i in 0..300 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("{i:03}");
            let mut uow = db.begin().await.unwrap();
            insert(&mut uow, &id).await.unwrap();
            if i % 3 == 0 {
                // Fails after writing: the unit is dropped uncommitted.
                let _ = insert(&mut uow, &id).await.unwrap_err();
                return None;
            }
            uow.commit().await.unwrap();
            let seen: i64 = query_scalar("SELECT COUNT(*) FROM items WHERE id = $1")
                .bind(id.as_str())
                .fetch_one(db.reader())
                .await
                .unwrap();
            assert_eq!(seen, 1, "{id} is committed once its commit returns");
            Some(id)
        }));
    }
    let mut expected = Vec::new();
    for task in tasks {
        expected.extend(task.await.unwrap());
    }
    expected.sort();
    assert_eq!(expected.len(), 200);
    assert_eq!(committed(&db).await, expected);
    assert_eq!(
        counter("tanda_commits_total", name) - migrations,
        200,
        "every unit that committed, and no other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_writers_at_once_each_commit_or_roll_back_alone() {
    many_writers(Durability::Normal, "gc_many").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_writers_at_once_with_full_durability() {
    many_writers(Durability::Full, "gc_many_full").await;
}
