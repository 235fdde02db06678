//! The core guarantees on a real SQLite database: no dual writes, effectively-once delivery,
//! poison events parked without blocking the stream, durable timers that fire once after a restart.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tanda_core::consumer::{Consumer, Consumers, Handler, HandlerError, Source};
use tanda_core::db::{Durability, Migration, Timer};
use tanda_core::lifecycle::Lifecycle;
use tanda_core::sql::{AssertSqlSafe, query, query_scalar};
use tanda_core::timers::{self, TimerHandler};
use tanda_core::{Db, Envelope, Event, SystemClock, Uow};
use tanda_testkit::eventually;

#[derive(Debug, Serialize, Deserialize)]
struct Noted {
    key: String,
    text: String,
}
impl Event for Noted {
    const TYPE: &'static str = "test.Noted";
    fn aggregate_id(&self) -> &str {
        &self.key
    }
}
const PRODUCES: &[&str] = &[Noted::TYPE];

const NOTES: &[Migration] = &[Migration {
    version: 1,
    name: "notes",
    sql: "CREATE TABLE notes (text VARCHAR(100) NOT NULL)",
}];

/// A database whose clock the test moves.
async fn open_on(dir: &Path, name: &str, clock: &tanda_core::clock::ManualClock) -> Db {
    let db = Db::open_sqlite(dir, name, Durability::Normal, Arc::new(clock.clone()))
        .await
        .unwrap();
    db.migrate(NOTES).await.unwrap();
    db
}

async fn open(dir: &Path, name: &str) -> Db {
    let db = Db::open_sqlite(dir, name, Durability::Normal, Arc::new(SystemClock))
        .await
        .unwrap();
    db.migrate(NOTES).await.unwrap();
    db
}

/// Appends each event's text to `notes`; fails on "poison" while `poisoned` is set.
struct Recorder {
    poisoned: AtomicBool,
    calls: AtomicUsize,
    /// Whether it lets the runtime apply several events per unit of work.
    batch: bool,
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, uow: &mut Uow, event: &Envelope) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let noted: Noted = event.decode()?;
        if noted.text == "poison" && self.poisoned.load(Ordering::SeqCst) {
            return Err("cannot digest poison".into());
        }
        query("INSERT INTO notes (text) VALUES ($1)")
            .bind(&noted.text)
            .execute(uow.conn())
            .await?;
        Ok(())
    }

    fn batchable(&self) -> bool {
        self.batch
    }
}

async fn publish(db: &Db, texts: &[&str]) {
    let mut uow = db.begin().await.unwrap();
    for t in texts {
        let e = Envelope::new(
            &Noted {
                key: "k".into(),
                text: (*t).into(),
            },
            "k",
            None,
            uow.now(),
        );
        uow.publish(&e).await.unwrap();
    }
    uow.commit().await.unwrap();
}

async fn notes(db: &Db) -> Vec<String> {
    query_scalar("SELECT text FROM notes ORDER BY rowid")
        .fetch_all(db.reader())
        .await
        .unwrap()
}

fn start(producer: &Db, consumer: &Db, handler: Arc<Recorder>) -> (Consumers, Lifecycle) {
    let lifecycle = Lifecycle::new();
    let consumers = Consumers::new(vec![Consumer {
        name: "recorder",
        db: consumer.clone(),
        types: PRODUCES,
        handler,
    }]);
    consumers.start(
        &[Source {
            db: producer.clone(),
            produces: PRODUCES,
        }],
        &lifecycle,
    );
    (consumers, lifecycle)
}

fn recorder() -> Arc<Recorder> {
    Arc::new(Recorder {
        poisoned: AtomicBool::new(true),
        calls: AtomicUsize::new(0),
        batch: false,
    })
}

fn batching_recorder() -> Arc<Recorder> {
    Arc::new(Recorder {
        batch: true,
        ..Arc::into_inner(recorder()).unwrap()
    })
}

/// `tanda_commits_total` of the database named `db` (names are unique per test).
fn commits(db: &str) -> f64 {
    let prefix = format!("tanda_commits_total{{db=\"{db}\"}} ");
    tanda_core::host::metrics_handle()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str())?.parse().ok())
        .unwrap_or(0.0)
}

/// A service publishes only what its registry entry says it produces: consumers look for each
/// type at the service that lists it, so an unlisted one would reach nobody.
#[tokio::test]
#[should_panic(expected = "publishes test.Noted, which its registry entry does not list")]
async fn publishing_a_type_the_service_does_not_declare_is_a_bug() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), "producer").await;
    db.declare_produces(&["test.Other"]);
    publish(&db, &["unlisted"]).await;
}

#[tokio::test]
async fn a_rolled_back_unit_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let producer = open(dir.path(), "producer").await;
    let mut uow = producer.begin().await.unwrap();
    uow.publish(&Envelope::new(
        &Noted {
            key: "k".into(),
            text: "never".into(),
        },
        "k",
        None,
        0,
    ))
    .await
    .unwrap();
    drop(uow);
    let rows: i64 = query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(producer.reader())
        .await
        .unwrap();
    assert_eq!(rows, 0);

    // The writer is usable at once, and what the dropped unit wrote never commits with the next.
    publish(&producer, &["next"]).await;
    let envelopes: Vec<String> = query_scalar("SELECT envelope FROM outbox")
        .fetch_all(producer.reader())
        .await
        .unwrap();
    assert_eq!(envelopes.len(), 1);
    assert!(envelopes[0].contains("next") && !envelopes[0].contains("never"));
}

/// Whether the consumer's stored cursor has reached the end of the producer's outbox: the cursor
/// is stored in the unit that applies an event, so every event up to there has been handled.
async fn caught_up(producer: &Db, consumer: &Db) -> bool {
    let head: i64 = query_scalar("SELECT COALESCE(MAX(seq), 0) FROM outbox")
        .fetch_one(producer.reader())
        .await
        .unwrap();
    let position: Option<i64> = query_scalar("SELECT MAX(position) FROM consumer_cursors")
        .fetch_one(consumer.reader())
        .await
        .unwrap();
    position == Some(head)
}

#[tokio::test]
async fn delivers_in_order_once_even_when_redelivered() {
    redelivered_events_change_nothing(recorder()).await;
}

/// The batch path (projections: several events per unit) holds to the inbox as the one-at-a-time
/// path does.
#[tokio::test]
async fn a_batchable_consumer_applies_a_redelivered_backlog_once() {
    redelivered_events_change_nothing(batching_recorder()).await;
}

async fn redelivered_events_change_nothing(handler: Arc<Recorder>) {
    let dir = tempfile::tempdir().unwrap();
    let producer = open(dir.path(), "producer").await;
    let consumer = open(dir.path(), "consumer").await;
    let (_, lifecycle) = start(&producer, &consumer, handler.clone());
    publish(&producer, &["a", "b"]).await;
    publish(&producer, &["c"]).await;
    eventually("three notes", async || notes(&consumer).await.len() == 3).await;
    assert_eq!(notes(&consumer).await, ["a", "b", "c"]);
    lifecycle.stop_background().await;

    // Rewind the cursor, as a broker redelivering after a lost ack would: the inbox absorbs it.
    query("UPDATE consumer_cursors SET position = 0")
        .execute(consumer.reader())
        .await
        .unwrap();
    let (_, lifecycle) = start(&producer, &consumer, handler.clone());
    publish(&producer, &["d"]).await;
    eventually("the redelivered events and the new one", async || {
        caught_up(&producer, &consumer).await
    })
    .await;
    assert_eq!(notes(&consumer).await, ["a", "b", "c", "d"]);
    lifecycle.stop_background().await;
}

#[tokio::test]
async fn a_poison_event_is_parked_and_the_stream_goes_on_then_redrive_applies_it_once() {
    poison_is_parked_alone(recorder()).await;
}

#[tokio::test]
async fn a_poison_event_in_a_batch_is_parked_alone_and_the_others_applied_once() {
    let handler = batching_recorder();
    poison_is_parked_alone(handler.clone()).await;
    // The three arrived together and were tried as one unit, which "poison" rolled back
    // ("before" and "poison": 2 calls); then one at a time: "before" once, "poison" until parked,
    // "after" once; then the two redrives. The notes show each applied exactly once.
    let one_at_a_time = 1 + tanda_core::consumer::MAX_ATTEMPTS as usize + 1 + 2;
    assert_eq!(handler.calls.load(Ordering::SeqCst), 2 + one_at_a_time);
}

async fn poison_is_parked_alone(handler: Arc<Recorder>) {
    let dir = tempfile::tempdir().unwrap();
    let producer = open(dir.path(), "producer").await;
    let consumer = open(dir.path(), "consumer").await;
    let (consumers, lifecycle) = start(&producer, &consumer, handler.clone());
    publish(&producer, &["before", "poison", "after"]).await;
    eventually("the event after the poison", async || {
        notes(&consumer).await.contains(&"after".to_owned())
    })
    .await;
    assert_eq!(notes(&consumer).await, ["before", "after"]);

    let parked = consumers.dead_letters().await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].kind, Noted::TYPE);
    assert_eq!(
        parked[0].attempts,
        tanda_core::consumer::MAX_ATTEMPTS as i32
    );
    assert!(parked[0].error.contains("poison"));
    assert_eq!(consumers.dead_letter_count().await.unwrap(), 1);

    // Still failing: redrive reports it and keeps the letter parked.
    assert!(consumers.redrive(&parked[0].id).await.is_err());
    assert_eq!(consumers.dead_letter_count().await.unwrap(), 1);

    handler.poisoned.store(false, Ordering::SeqCst);
    let redriven = consumers.redrive(&parked[0].id).await.unwrap();
    assert!(redriven.redriven_at.is_some());
    assert_eq!(notes(&consumer).await, ["before", "after", "poison"]);
    assert!(
        consumers.redrive(&parked[0].id).await.is_err(),
        "a letter is redriven once"
    );
    assert_eq!(consumers.dead_letter_count().await.unwrap(), 0);
    lifecycle.stop_background().await;
}

#[tokio::test]
async fn a_paused_consumer_catches_up_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let producer = open(dir.path(), "producer").await;
    let consumer = open(dir.path(), "consumer").await;
    let witness = open(dir.path(), "witness").await;
    let (consumers, lifecycle) = recorder_and_witness(&producer, &consumer, &witness);
    consumers.pause("recorder").await.unwrap();
    publish(&producer, &["x", "y"]).await;
    eventually("the witness", async || notes(&witness).await.len() == 2).await;
    assert!(notes(&consumer).await.is_empty());
    assert_eq!(consumers.lag("recorder").await.unwrap(), 2);
    consumers.resume("recorder").await.unwrap();
    eventually("catch-up", async || notes(&consumer).await.len() == 2).await;
    lifecycle.stop_background().await;
}

/// An instance of the consumers (a process): `recorder` on `consumer`, then `witness` on
/// `witness`, both tailing `producer`. The witness is woken by the same commits: once it has an
/// event, a recorder that was not paused has had every chance to take it too.
fn recorder_and_witness(producer: &Db, consumer: &Db, witness: &Db) -> (Consumers, Lifecycle) {
    let lifecycle = Lifecycle::new();
    let consumers = Consumers::new(vec![
        Consumer {
            name: "recorder",
            db: consumer.clone(),
            types: PRODUCES,
            handler: recorder(),
        },
        Consumer {
            name: "witness",
            db: witness.clone(),
            types: PRODUCES,
            handler: recorder(),
        },
    ]);
    let sources = [Source {
        db: producer.clone(),
        produces: PRODUCES,
    }];
    consumers.start(&sources, &lifecycle);
    (consumers, lifecycle)
}

/// The pause switch is kept in the consumer's database: another instance follows it, and an
/// instance started while it is on takes nothing until it is resumed, from any instance.
#[tokio::test]
async fn a_pause_reaches_every_instance_and_outlives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let producer = open(dir.path(), "producer").await;
    let consumer = open(dir.path(), "consumer").await;
    let witness = open(dir.path(), "witness").await;
    let (one, one_running) = recorder_and_witness(&producer, &consumer, &witness);
    let (two, two_running) = recorder_and_witness(&producer, &consumer, &witness);
    eventually("both instances running", async || {
        !one.is_paused("recorder").unwrap() && !two.is_paused("recorder").unwrap()
    })
    .await;
    one.pause("recorder").await.unwrap();
    eventually("the other instance paused", async || {
        two.is_paused("recorder").unwrap()
    })
    .await;
    one_running.stop_background().await;
    two_running.stop_background().await;

    // Started again while paused: the switches are read before anything is taken. The witness
    // is read after the recorder, so once it has both events the recorder's switch was applied
    // and the recorder had every chance to take them too.
    let (again, running) = recorder_and_witness(&producer, &consumer, &witness);
    publish(&producer, &["x", "y"]).await;
    eventually("the witness", async || notes(&witness).await.len() == 2).await;
    assert!(again.is_paused("recorder").unwrap());
    assert!(notes(&consumer).await.is_empty());
    again.resume("recorder").await.unwrap();
    eventually("catch-up", async || notes(&consumer).await.len() == 2).await;
    running.stop_background().await;
}

#[tokio::test]
async fn housekeeping_sweeps_at_start_and_keeps_relayed_events_and_idempotency_records_a_while() {
    use tanda_core::clock::ManualClock;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_800_000_000_000);
    let db = open_on(dir.path(), "service", &clock).await;
    let count = async |table: &str| -> i64 {
        query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(db.reader())
            .await
            .unwrap()
    };
    // What a service in distributed mode leaves: events the relay published, and the answer
    // to a POST with an Idempotency-Key.
    publish(&db, &["relayed"]).await;
    let mut uow = db.begin().await.unwrap();
    let now = uow.now();
    query("UPDATE outbox SET published_at = $1")
        .bind(now)
        .execute(uow.conn())
        .await
        .unwrap();
    query(
        "INSERT INTO idempotency (scope, key, request_hash, status, body, created_at)
         VALUES ('books', 'k1', 'h', 201, '{}', $1)",
    )
    .bind(now)
    .execute(uow.conn())
    .await
    .unwrap();
    uow.commit().await.unwrap();
    let sweep = async || {
        let consumers = Consumers::new(Vec::new());
        tanda_core::housekeeping::sweep(std::slice::from_ref(&db), &[], &consumers)
            .await
            .unwrap();
    };
    let minute = Duration::from_secs(60);
    clock.advance(59 * minute);
    sweep().await;
    assert_eq!(count("outbox").await, 1, "a relayed event is kept an hour");
    clock.advance(2 * minute);
    sweep().await;
    assert_eq!(count("outbox").await, 0);
    clock.advance(24 * 60 * minute - 61 * minute - minute);
    sweep().await;
    assert_eq!(count("idempotency").await, 1, "an answer is kept a day");
    // The day runs out; the loop's first sweep comes as it starts, not ten minutes later.
    clock.advance(2 * minute);
    let lifecycle = Lifecycle::new();
    tanda_core::housekeeping::start(
        vec![db.clone()],
        Vec::new(),
        Consumers::new(Vec::new()),
        &lifecycle,
    );
    eventually("the first sweep", async || count("idempotency").await == 0).await;
    lifecycle.stop_background().await;
}

/// Notes each event, marking one it is handed while its consumer is paused; pauses its own
/// consumer on the event `pause`, from inside the handler: mid-backlog, with the rest of the
/// fetched batch in hand.
#[derive(Default)]
struct PausesItself(std::sync::OnceLock<Consumers>);

#[async_trait]
impl Handler for PausesItself {
    async fn handle(&self, uow: &mut Uow, event: &Envelope) -> Result<(), HandlerError> {
        let consumers = self.0.get().expect("started");
        let noted: Noted = event.decode()?;
        let text = match consumers.is_paused("recorder").unwrap() {
            true => format!("{} while paused", noted.text),
            false => noted.text.clone(),
        };
        query("INSERT INTO notes (text) VALUES ($1)")
            .bind(&text)
            .execute(uow.conn())
            .await?;
        if noted.text == "pause" {
            // Not stored: this unit of work holds the database's one writer.
            consumers.pause_here("recorder").unwrap();
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_consumer_paused_mid_backlog_stops_after_the_event_in_hand() {
    let dir = tempfile::tempdir().unwrap();
    let producer = open(dir.path(), "producer").await;
    let consumer = open(dir.path(), "consumer").await;
    let backlog = ["a", "b", "pause", "c", "d", "e", "f", "g"];
    publish(&producer, &backlog).await;
    let handler = Arc::new(PausesItself::default());
    let lifecycle = Lifecycle::new();
    let consumers = Consumers::new(vec![Consumer {
        name: "recorder",
        db: consumer.clone(),
        types: PRODUCES,
        handler: handler.clone(),
    }]);
    assert!(handler.0.set(consumers.clone()).is_ok());
    let sources = [Source {
        db: producer.clone(),
        produces: PRODUCES,
    }];
    consumers.start(&sources, &lifecycle);
    eventually("the pause", async || {
        notes(&consumer).await.contains(&"pause".to_owned())
    })
    .await;
    assert!(consumers.is_paused("recorder").unwrap());
    consumers.resume("recorder").await.unwrap();
    eventually("the rest", async || {
        notes(&consumer).await.len() == backlog.len()
    })
    .await;
    assert_eq!(
        notes(&consumer).await,
        backlog,
        "none handed over while paused"
    );
    lifecycle.stop_background().await;
}

/// Counts firings; each holds its unit open a while, so that a second loop polling the same table
/// finds the timer still there while the first is firing it.
struct CountingTimers(AtomicUsize);

#[async_trait]
impl TimerHandler for CountingTimers {
    async fn fire(&self, uow: &mut Uow, timer: &Timer) -> Result<(), HandlerError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        query("INSERT INTO notes (text) VALUES ($1)")
            .bind(&timer.key)
            .execute(uow.conn())
            .await?;
        Ok(())
    }
}

#[tokio::test]
async fn timers_survive_a_restart_and_fire_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path(), "svc").await;
        let mut uow = db.begin().await.unwrap();
        let now = uow.now();
        uow.schedule("deadline", "due-soon", now + 150, serde_json::json!({}))
            .await
            .unwrap();
        uow.schedule("deadline", "cancelled", now + 100, serde_json::json!({}))
            .await
            .unwrap();
        uow.schedule("deadline", "later", now + 60_000, serde_json::json!({}))
            .await
            .unwrap();
        uow.cancel_timer("deadline", "cancelled").await.unwrap();
        uow.commit().await.unwrap();
        db.close().await; // the process "dies" before any timer fires
    }
    let db = open(dir.path(), "svc").await;
    let handler = Arc::new(CountingTimers(AtomicUsize::new(0)));
    let lifecycle = Lifecycle::new();
    timers::start(db.clone(), handler.clone(), &lifecycle);
    // A second loop on the same table: the claim makes each timer fire once.
    timers::start(db.clone(), handler.clone(), &lifecycle);
    eventually("the due timer", async || !notes(&db).await.is_empty()).await;
    // Stopping waits for both loops to finish what they were doing: a second firing of the same
    // timer, had the claim let one through, has happened by then.
    lifecycle.stop_background().await;
    assert_eq!(notes(&db).await, ["due-soon"]);
    assert_eq!(handler.0.load(Ordering::SeqCst), 1);
    let left: i64 = query_scalar("SELECT COUNT(*) FROM timers")
        .fetch_one(db.reader())
        .await
        .unwrap();
    assert_eq!(left, 1, "the later timer is still pending");
}

/// Fails its first firing, then notes each one.
struct FailsFirst(AtomicUsize);

#[async_trait]
impl TimerHandler for FailsFirst {
    async fn fire(&self, uow: &mut Uow, timer: &Timer) -> Result<(), HandlerError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err("not yet".into());
        }
        query("INSERT INTO notes (text) VALUES ($1)")
            .bind(&timer.key)
            .execute(uow.conn())
            .await?;
        Ok(())
    }
}

/// A timer whose handler fails is tried again a second later (on the database's clock), not at
/// once and not never.
#[tokio::test]
async fn a_timer_whose_handler_fails_is_tried_again_a_second_later() {
    use tanda_core::clock::ManualClock;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_800_000_000_000);
    let db = open_on(dir.path(), "svc", &clock).await;
    let now = tanda_core::clock::Clock::now(&clock);
    let mut uow = db.begin().await.unwrap();
    uow.schedule("deadline", "d1", now, serde_json::json!({}))
        .await
        .unwrap();
    uow.commit().await.unwrap();
    let handler = Arc::new(FailsFirst(AtomicUsize::new(0)));
    let lifecycle = Lifecycle::new();
    timers::start(db.clone(), handler.clone(), &lifecycle);
    let fire_at = async || -> Option<i64> {
        query_scalar("SELECT fire_at FROM timers WHERE key = 'd1'")
            .fetch_optional(db.reader())
            .await
            .unwrap()
    };
    eventually("the failed firing put off", async || {
        fire_at().await == Some(now + 1000)
    })
    .await;
    clock.advance(Duration::from_secs(1));
    eventually("the second firing", async || notes(&db).await == ["d1"]).await;
    lifecycle.stop_background().await;
    assert_eq!(handler.0.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn housekeeping_prunes_only_what_every_consumer_has_passed() {
    use tanda_core::clock::ManualClock;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_800_000_000_000);
    let open_at = async |name: &str| open_on(dir.path(), name, &clock).await;
    let producer = open_at("producer").await;
    let consumer = open_at("consumer").await;
    let (consumers, lifecycle) = start(&producer, &consumer, recorder());
    publish(&producer, &["a", "b"]).await;
    eventually("two notes", async || notes(&consumer).await.len() == 2).await;
    // The consumer stops (its loops have ended when this returns), so "c" waits unconsumed.
    lifecycle.stop_background().await;
    publish(&producer, &["c"]).await;

    let sources = [Source {
        db: producer.clone(),
        produces: PRODUCES,
    }];
    let all = [producer.clone(), consumer.clone()];
    let outbox = async || -> i64 {
        query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(producer.reader())
            .await
            .unwrap()
    };
    let inbox = async || -> i64 {
        query_scalar("SELECT COUNT(*) FROM inbox")
            .fetch_one(consumer.reader())
            .await
            .unwrap()
    };

    tanda_core::housekeeping::sweep(&all, &sources, &consumers)
        .await
        .unwrap();
    assert_eq!(outbox().await, 3, "consumed rows are kept for a while");
    // Kept for as long as the retention says (an hour for consumed events, a week for the inbox's
    // record of them), and no longer.
    let minute = Duration::from_secs(60);
    let (outbox_keep, inbox_keep) = (60 * minute, 7 * 24 * 60 * minute);
    clock.advance(outbox_keep - minute);
    tanda_core::housekeeping::sweep(&all, &sources, &consumers)
        .await
        .unwrap();
    assert_eq!(outbox().await, 3, "kept until the retention ends");
    clock.advance(2 * minute);
    tanda_core::housekeeping::sweep(&all, &sources, &consumers)
        .await
        .unwrap();
    assert_eq!(outbox().await, 1, "the unconsumed event stays");
    assert_eq!(inbox().await, 2);
    clock.advance(inbox_keep - outbox_keep - 2 * minute);
    tanda_core::housekeeping::sweep(&all, &sources, &consumers)
        .await
        .unwrap();
    assert_eq!(
        inbox().await,
        2,
        "the inbox is kept until its retention ends"
    );
    clock.advance(2 * minute);
    tanda_core::housekeeping::sweep(&all, &sources, &consumers)
        .await
        .unwrap();
    assert_eq!(inbox().await, 0);

    // Started again, it takes up where its stored cursor says.
    let (_, lifecycle) = start(&producer, &consumer, recorder());
    eventually("the last note", async || notes(&consumer).await.len() == 3).await;
    lifecycle.stop_background().await;
}

/// Wraps `DbError` the way the services' error types do.
#[derive(Debug, thiserror::Error)]
enum ServiceError {
    #[error("{0}")]
    Db(#[from] tanda_core::DbError),
}

/// Loses an optimistic-concurrency race `races` times, then applies the event.
struct Racer {
    races: AtomicUsize,
}

#[async_trait]
impl Handler for Racer {
    async fn handle(&self, uow: &mut Uow, event: &Envelope) -> Result<(), HandlerError> {
        if self.races.load(Ordering::SeqCst) > 0 {
            self.races.fetch_sub(1, Ordering::SeqCst);
            return Err(ServiceError::from(tanda_core::DbError::Conflict("the row".into())).into());
        }
        let noted: Noted = event.decode()?;
        query("INSERT INTO notes (text) VALUES ($1)")
            .bind(&noted.text)
            .execute(uow.conn())
            .await?;
        Ok(())
    }
}

/// A consumer whose handler loses its race `races` times before it applies the event.
fn start_racer(producer: &Db, consumer: &Db, races: usize) -> (Consumers, Lifecycle) {
    let lifecycle = Lifecycle::new();
    let consumers = Consumers::new(vec![Consumer {
        name: "racer",
        db: consumer.clone(),
        types: PRODUCES,
        handler: Arc::new(Racer {
            races: AtomicUsize::new(races),
        }),
    }]);
    consumers.start(
        &[Source {
            db: producer.clone(),
            produces: PRODUCES,
        }],
        &lifecycle,
    );
    (consumers, lifecycle)
}

#[tokio::test]
async fn lost_races_are_retried_without_counting_as_failures() {
    let dir = tempfile::tempdir().unwrap();
    let producer = open(dir.path(), "producer").await;
    let consumer = open(dir.path(), "consumer").await;
    let races = tanda_core::consumer::MAX_ATTEMPTS as usize * 3;
    let (consumers, lifecycle) = start_racer(&producer, &consumer, races);
    publish(&producer, &["contended"]).await;
    eventually("the contended note", async || {
        notes(&consumer).await.len() == 1
    })
    .await;
    assert!(
        consumers.dead_letters().await.unwrap().is_empty(),
        "a lost race is not a poison event"
    );
    lifecycle.stop_background().await;
}

/// Losing a race is not the event's fault, but an event that loses every one of them would hold
/// its consumer forever: after `MAX_RACES` it counts as the handler's failure, and is parked.
#[tokio::test]
async fn an_event_that_loses_every_race_is_parked_in_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let producer = open(dir.path(), "producer").await;
    let consumer = open(dir.path(), "consumer").await;
    let (consumers, lifecycle) = start_racer(&producer, &consumer, usize::MAX);
    publish(&producer, &["contested forever"]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while consumers.dead_letter_count().await.unwrap() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "an event losing every race was never parked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(notes(&consumer).await.is_empty());
    lifecycle.stop_background().await;
}

#[tokio::test]
async fn a_batchable_consumer_applies_a_backlog_in_a_few_units_in_order_and_once() {
    let dir = tempfile::tempdir().unwrap();
    let producer = open(dir.path(), "batch-producer").await;
    let consumer = open(dir.path(), "batch-consumer").await;
    let handler = batching_recorder();
    let (consumers, lifecycle) = start(&producer, &consumer, handler.clone());
    consumers.pause("recorder").await.unwrap();
    let texts: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    publish(&producer, &refs).await;
    let before = commits("batch-consumer");
    consumers.resume("recorder").await.unwrap();
    eventually("the backlog", async || notes(&consumer).await.len() == 100).await;
    assert_eq!(notes(&consumer).await, texts, "in order, each once");
    let spent = commits("batch-consumer") - before;
    assert!(
        (1.0..=10.0).contains(&spent),
        "100 events in {spent} commits (batches of at most 32)"
    );
    assert_eq!(handler.calls.load(Ordering::SeqCst), 100);

    // Restarted on the same cursor, nothing is applied again.
    lifecycle.stop_background().await;
    let (_, lifecycle) = start(&producer, &consumer, batching_recorder());
    publish(&producer, &["last"]).await;
    eventually("the next event", async || {
        notes(&consumer).await.len() == 101
    })
    .await;
    lifecycle.stop_background().await;
}

/// An event the test consumer does not take.
#[derive(Debug, Serialize, Deserialize)]
struct Ignored {
    key: String,
}
impl Event for Ignored {
    const TYPE: &'static str = "test.Ignored";
    fn aggregate_id(&self) -> &str {
        &self.key
    }
}

#[tokio::test]
async fn a_consumer_passes_over_events_it_does_not_take_so_they_can_be_pruned() {
    use tanda_core::clock::ManualClock;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_800_000_000_000);
    let open_at = async |name: &str| open_on(dir.path(), name, &clock).await;
    let producer = open_at("producer").await;
    let consumer = open_at("consumer").await;
    let sources = [Source {
        db: producer.clone(),
        produces: &[Noted::TYPE, Ignored::TYPE],
    }];
    let lifecycle = Lifecycle::new();
    let consumers = Consumers::new(vec![Consumer {
        name: "recorder",
        db: consumer.clone(),
        types: PRODUCES,
        handler: recorder(),
    }]);
    consumers.start(&sources, &lifecycle);

    publish(&producer, &["first"]).await;
    eventually("the first note", async || notes(&consumer).await.len() == 1).await;
    let mut uow = producer.begin().await.unwrap();
    for n in 0..3000 {
        let key = format!("k{n}");
        let e = Envelope::new(&Ignored { key: key.clone() }, &key, None, uow.now());
        uow.publish(&e).await.unwrap();
    }
    uow.commit().await.unwrap();
    let last: i64 = query_scalar("SELECT MAX(seq) FROM outbox")
        .fetch_one(producer.reader())
        .await
        .unwrap();
    eventually("the cursor past the ignored events", async || {
        let position: i64 = query_scalar("SELECT position FROM consumer_cursors")
            .fetch_one(consumer.reader())
            .await
            .unwrap();
        position == last
    })
    .await;

    clock.advance(Duration::from_secs(2 * 60 * 60));
    tanda_core::housekeeping::sweep(&[producer.clone(), consumer.clone()], &sources, &consumers)
        .await
        .unwrap();
    let left: i64 = query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(producer.reader())
        .await
        .unwrap();
    assert_eq!(
        left, 0,
        "nothing is kept for a consumer that will never take it"
    );

    // And it still takes what it does take, after them.
    publish(&producer, &["second"]).await;
    eventually("the second note", async || {
        notes(&consumer).await.len() == 2
    })
    .await;
    assert_eq!(notes(&consumer).await, ["first", "second"]);
    lifecycle.stop_background().await;
}
