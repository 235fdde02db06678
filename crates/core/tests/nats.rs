//! The distributed bus against a real NATS JetStream server and real PostgreSQL (both started by
//! `.ci/run`): relay in order, broker dedup, competing consumers sharing the work, per-aggregate
//! order, effectively-once handling when the relay publishes twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tanda_core::consumer::{Consumer, Consumers, Handler, HandlerError};
use tanda_core::db::Migration;
use tanda_core::lifecycle::Lifecycle;
use tanda_core::nats::{self, NatsBus, NatsSource};
use tanda_core::sql::{query, query_scalar};
use tanda_core::{Db, Envelope, Event, SystemClock, Uow};

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
const NATS: &str = "nats://127.0.0.1:4222";

#[derive(Debug, Serialize, Deserialize)]
struct Counted {
    key: String,
    n: i64,
}
impl Event for Counted {
    const TYPE: &'static str = "test.Counted";
    fn aggregate_id(&self) -> &str {
        &self.key
    }
}
const PRODUCES: &[&str] = &[Counted::TYPE];

const SEEN: &[Migration] = &[Migration {
    version: 1,
    name: "seen",
    sql: "CREATE TABLE seen (id BIGSERIAL PRIMARY KEY, key VARCHAR(50) NOT NULL, n BIGINT NOT NULL, instance VARCHAR(10) NOT NULL)",
}];

/// A fresh database and a service name no other test run uses (streams outlive a test).
async fn fresh(role: &str) -> (Db, &'static str) {
    let unique = format!(
        "t{}{role}",
        uuid::Uuid::new_v4().simple().to_string().get(..10).unwrap()
    );
    let name: &'static str = Box::leak(unique.into_boxed_str());
    let url = Db::ensure_postgres_database(POSTGRES, name)
        .await
        .expect("PostgreSQL is running (see .ci/run)");
    let db = Db::open_postgres(&url, name, 5, Arc::new(SystemClock))
        .await
        .unwrap();
    db.migrate(SEEN).await.unwrap();
    (db, name)
}

/// Drops a test's database and its stream (if it produced one), so runs leave nothing behind.
async fn discard(db: Db) {
    use sqlx::Connection;
    let name = db.name().to_owned();
    db.close().await;
    let mut admin = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres"))
        .await
        .unwrap();
    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Ok(client) = async_nats::connect(NATS).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(format!("TEST_{}", name.to_ascii_uppercase()))
            .await;
    }
}

struct Recorder {
    instance: &'static str,
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, uow: &mut Uow, event: &Envelope) -> Result<(), HandlerError> {
        let c: Counted = event.decode()?;
        query("INSERT INTO seen (key, n, instance) VALUES ($1, $2, $3)")
            .bind(&c.key)
            .bind(c.n)
            .bind(self.instance)
            .execute(uow.conn())
            .await?;
        Ok(())
    }
}

async fn publish(db: &Db, keys: usize, per_key: i64) {
    for n in 0..per_key {
        let mut uow = db.begin().await.unwrap();
        for k in 0..keys {
            let e = Envelope::new(
                &Counted {
                    key: format!("k{k}"),
                    n,
                },
                "saga",
                None,
                uow.now(),
            );
            uow.publish(&e).await.unwrap();
        }
        uow.commit().await.unwrap();
    }
}

async fn seen(db: &Db) -> Vec<(String, i64, String)> {
    query("SELECT key, n, instance FROM seen ORDER BY id")
        .fetch_all(db.reader())
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get("key"), row.get("n"), row.get("instance")))
        .collect()
}

async fn wait_for(db: &Db, count: usize) {
    for _ in 0..600 {
        if seen(db).await.len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("only {} of {count} events arrived", seen(db).await.len());
}

/// Waits until everything `producer` wrote is in its stream and every message the stream holds has
/// been delivered to and acknowledged by the recorder, which acknowledges only after its handling
/// committed: from then on the `seen` table is final, with no delivery still on its way.
async fn settled(producer: &Db, service: &str) {
    let client = async_nats::connect(NATS).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream_name = format!("TEST_{}", service.replace('-', "_")).to_ascii_uppercase();
    for _ in 0..600 {
        let unpublished: i64 =
            query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(producer.reader())
                .await
                .unwrap();
        let stream = js.get_stream(&stream_name).await.unwrap();
        let mut outstanding = 0;
        for partition in 0..nats::PARTITIONS {
            let durable = format!("recorder-{service}-p{partition}");
            if let Ok(info) = stream.consumer_info(&durable).await {
                outstanding += info.num_pending + info.num_ack_pending as u64;
            }
        }
        if unpublished == 0 && outstanding == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the stream of {service} never settled");
}

fn instance(consumer_db: &Db, bus: &NatsBus, source: &'static str, tag: &'static str) -> Lifecycle {
    let lifecycle = Lifecycle::new();
    let consumers = Consumers::new(vec![Consumer {
        name: "recorder",
        db: consumer_db.clone(),
        types: PRODUCES,
        handler: Arc::new(Recorder { instance: tag }),
    }]);
    nats::start_consumers(
        &consumers,
        bus,
        &[NatsSource {
            service: source,
            produces: PRODUCES,
        }],
        &lifecycle,
    );
    lifecycle
}

#[tokio::test]
async fn competing_instances_share_the_work_in_order_and_once() {
    let bus = NatsBus::connect(NATS, "test", 1)
        .await
        .expect("NATS is running (see .ci/run)");
    let (producer, source) = fresh("p").await;
    let (consumer, _) = fresh("c").await;
    let relays = [Lifecycle::new(), Lifecycle::new()];
    for r in &relays {
        nats::start_relay(producer.clone(), bus.clone(), r); // two instances: one leads
    }
    let a = instance(&consumer, &bus, source, "a");
    let b = instance(&consumer, &bus, source, "b");

    publish(&producer, 16, 25).await; // 400 events over 16 aggregates
    wait_for(&consumer, 400).await;
    settled(&producer, source).await;
    let all = seen(&consumer).await;
    assert_eq!(all.len(), 400, "each event handled once");

    let mut last: HashMap<String, i64> = HashMap::new();
    let mut by_instance: HashMap<String, usize> = HashMap::new();
    for (key, n, tag) in &all {
        let previous = last.insert(key.clone(), *n);
        assert_eq!(
            previous.map_or(0, |p| p + 1),
            *n,
            "aggregate {key} out of order"
        );
        *by_instance.entry(tag.clone()).or_default() += 1;
    }
    assert_eq!(
        by_instance.len(),
        2,
        "both instances did work: {by_instance:?}"
    );
    let unpublished: i64 = query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(producer.reader())
        .await
        .unwrap();
    assert_eq!(unpublished, 0);

    // The relay publishes everything again (as after a crash between publish and mark): the
    // broker's dedup and the inbox keep the effect single.
    for lifecycle in relays {
        lifecycle.stop_background().await;
    }
    query("UPDATE outbox SET published_at = NULL")
        .execute(producer.reader())
        .await
        .unwrap();
    let again = Lifecycle::new();
    nats::start_relay(producer.clone(), bus.clone(), &again);
    publish(&producer, 1, 1).await; // one genuinely new event, behind the replayed ones
    wait_for(&consumer, 401).await;
    settled(&producer, source).await;
    assert_eq!(seen(&consumer).await.len(), 401);

    // Past the broker's dedup window a republished event is a new message to it, and only the
    // inbox keeps the effect single: events sent again under message ids the broker has not seen.
    republish_as_new(&bus, &producer, source, 20).await;
    publish(&producer, 1, 1).await;
    wait_for(&consumer, 402).await;
    settled(&producer, source).await;
    assert_eq!(
        seen(&consumer).await.len(),
        402,
        "redelivered events applied again"
    );
    for lifecycle in [again, a, b] {
        lifecycle.stop_background().await;
    }
    discard(producer).await;
    discard(consumer).await;
}

/// Publishes the first `n` events of `producer`'s outbox again, each under a message id the
/// broker has not seen: what a republish looks like to it once its dedup window has passed.
async fn republish_as_new(bus: &NatsBus, producer: &Db, service: &str, n: i64) {
    let client = async_nats::connect(NATS).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let rows = query("SELECT envelope FROM outbox ORDER BY seq LIMIT $1")
        .bind(n)
        .fetch_all(producer.reader())
        .await
        .unwrap();
    assert_eq!(rows.len() as i64, n);
    for row in rows {
        let raw: String = row.get("envelope");
        let event: Envelope = serde_json::from_str(&raw).unwrap();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!("{}-after-the-window", event.id).as_str(),
        );
        let subject = bus.subject(service, &event);
        js.publish_with_headers(subject, headers, raw.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn events_wait_in_the_outbox_while_nobody_relays_and_flow_when_a_relay_starts() {
    let bus = NatsBus::connect(NATS, "test", 1)
        .await
        .expect("NATS is running (see .ci/run)");
    let (producer, source) = fresh("p").await;
    let (consumer, _) = fresh("c").await;
    let consumers = instance(&consumer, &bus, source, "a");
    publish(&producer, 3, 5).await;
    // Nothing relays, so nothing may arrive: watched for a while, not just looked at once.
    let quiet = Instant::now() + Duration::from_millis(300);
    while Instant::now() < quiet {
        assert!(
            seen(&consumer).await.is_empty(),
            "an event went round the outbox"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let relay = Lifecycle::new();
    nats::start_relay(producer.clone(), bus.clone(), &relay);
    wait_for(&consumer, 15).await;
    relay.stop_background().await;
    consumers.stop_background().await;
    discard(producer).await;
    discard(consumer).await;
}

#[tokio::test]
async fn on_postgres_a_concurrent_reuse_of_an_idempotency_key_is_a_retryable_conflict() {
    use tanda_core::DbError;
    let (db, _) = fresh("i").await;
    let request = serde_json::json!({"a": 1});
    let body = serde_json::json!({"id": "first"});
    let mut first = db.begin().await.unwrap();
    assert!(
        first
            .idempotent_response("s", "k", &request)
            .await
            .unwrap()
            .is_none()
    );
    let mut second = db.begin().await.unwrap();
    assert!(
        second
            .idempotent_response("s", "k", &request)
            .await
            .unwrap()
            .is_none()
    );
    first
        .save_idempotent_response("s", "k", &request, 201, &body)
        .await
        .unwrap();
    let other = serde_json::json!({"id": "second"});
    let (committed, raced) = tokio::join!(
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            first.commit().await
        },
        second.save_idempotent_response("s", "k", &request, 201, &other),
    );
    committed.unwrap();
    assert!(matches!(raced, Err(DbError::Conflict(_))), "{raced:?}");
    drop(second);
    // The retry finds the winner's response.
    let mut retry = db.begin().await.unwrap();
    let stored = retry
        .idempotent_response("s", "k", &request)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.body, body);
    drop(retry);
    discard(db).await;
}

/// Readiness reads the connection: not connected while the server cannot be reached (the bus
/// keeps trying in the background), connected once it is.
#[tokio::test]
async fn the_bus_says_whether_it_is_connected() {
    let nowhere = NatsBus::connect("nats://127.0.0.1:1", "test", 1)
        .await
        .expect("a bus that keeps trying");
    assert!(!nowhere.is_connected());
    let bus = NatsBus::connect(NATS, "test", 1)
        .await
        .expect("NATS is running (see .ci/run)");
    tanda_testkit::eventually("the bus is connected", async || bus.is_connected()).await;
}

/// What the relay's guarantees rest on, read back from the broker: a service's stream keeps its
/// events on disk (a stream in memory loses them when the broker restarts) for the retention
/// time, on as many servers as asked, and remembers message ids for the dedup window.
#[tokio::test]
async fn a_services_stream_keeps_its_events_on_disk_and_remembers_their_ids() {
    let bus = NatsBus::connect(NATS, "test", 1)
        .await
        .expect("NATS is running (see .ci/run)");
    let service = format!("s{}", uuid::Uuid::new_v4().simple());
    let mut stream = bus.ensure_stream(&service).await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    let client = async_nats::connect(NATS).await.unwrap();
    async_nats::jetstream::new(client)
        .delete_stream(&config.name)
        .await
        .unwrap();
    assert_eq!(
        config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    assert_eq!(config.max_age, nats::RETENTION);
    assert_eq!(
        nats::RETENTION,
        Duration::from_secs(7 * 24 * 60 * 60),
        "a week"
    );
    assert_eq!(config.duplicate_window, nats::DUPLICATE_WINDOW);
    assert_eq!(config.num_replicas, 1);
}

/// Each partition's consumer is durable and takes its own partition's subjects and no other: one
/// aggregate's events reach one consumer, in order, however many instances share the partitions.
#[tokio::test]
async fn each_partitions_consumer_takes_only_that_partition() {
    let bus = NatsBus::connect(NATS, "test", 1)
        .await
        .expect("NATS is running (see .ci/run)");
    let (producer, source) = fresh("p").await;
    let (consumer, _) = fresh("c").await;
    bus.ensure_stream(source).await.unwrap();
    let a = instance(&consumer, &bus, source, "a");
    let client = async_nats::connect(NATS).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream_name = format!("TEST_{}", source.replace('-', "_")).to_ascii_uppercase();
    let stream = js.get_stream(&stream_name).await.unwrap();
    let mut filters = Vec::new();
    for partition in 0..nats::PARTITIONS {
        let durable = format!("recorder-{source}-p{partition}");
        let info = tanda_testkit::poll(
            "the partition's consumer",
            tanda_testkit::WITHIN,
            async || {
                stream
                    .consumer_info(&durable)
                    .await
                    .map_err(|e| e.to_string())
            },
        )
        .await;
        // Durable: the broker keeps where it is however long every instance is away. Each
        // message acknowledged on its own, one at a time, and handed to another instance when
        // one is not acknowledged within the ack wait (its instance died).
        assert_eq!(info.config.durable_name.as_deref(), Some(durable.as_str()));
        assert_eq!(
            info.config.ack_policy,
            async_nats::jetstream::consumer::AckPolicy::Explicit
        );
        assert_eq!(info.config.max_ack_pending, 1);
        assert_eq!(info.config.ack_wait, nats::ACK_WAIT);
        filters.push(info.config.filter_subject.clone());
    }
    let expected: Vec<String> = (0..nats::PARTITIONS)
        .map(|p| format!("test.{source}.{p}.>"))
        .collect();
    assert_eq!(filters, expected);
    a.stop_background().await;
    discard(producer).await;
    discard(consumer).await;
}
