//! The NATS JetStream bus (distributed mode, DESIGN §1).
//!
//! Each producing service has a stream `<NAMESPACE>_<SERVICE>` with subjects
//! `<namespace>.<service>.<partition>.<event type>`; the partition is a stable hash of the event's
//! aggregate id. A relay publishes the service's outbox in order, with `Nats-Msg-Id` = event id so
//! the broker drops duplicates, and marks rows published only after the broker acknowledged them.
//! A consuming service reads each (source, partition) through one durable pull consumer shared by
//! all its instances (competing consumers) with at most one unacknowledged message, so events of
//! one aggregate are handled in order and by one instance at a time. A message is acknowledged
//! only after the consumer's transaction committed; a crash before that means redelivery, which
//! the inbox absorbs.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::consumer::Consumers;
use crate::db::{Db, DbError, Leadership, stable_hash};
use crate::event::Envelope;
use crate::lifecycle::Lifecycle;
use crate::retry;
use crate::sql::{AssertSqlSafe, query};

/// Partitions per stream: the parallelism of one consuming service per source.
pub const PARTITIONS: u64 = 8;
/// How long the broker waits for an acknowledgement before redelivering (e.g. to another instance
/// after a crash).
pub const ACK_WAIT: Duration = Duration::from_secs(10);
/// How long the broker remembers message ids for dedup.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long a stream keeps an event: a consumer may be away this long and catch up.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);
const RELAY_BATCH: i64 = 256;
/// Another instance may write the outbox: look at least this often.
const RELAY_POLL: Duration = Duration::from_millis(100);
/// How often an instance that does not relay asks whether the relaying one is gone.
const LEAD_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn nats_err(e: impl std::fmt::Display) -> BusError {
    BusError::Nats(e.to_string())
}

/// A connection to JetStream.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    /// Prefix of streams and subjects, so several deployments can share one server.
    namespace: String,
    /// Servers each stream this bus creates is kept on.
    replicas: usize,
}

/// A producing service, as consumers see it in distributed mode.
#[derive(Debug, Clone, Copy)]
pub struct NatsSource {
    pub service: &'static str,
    pub produces: &'static [&'static str],
}

impl NatsBus {
    /// Connects to the NATS server at `url` (retrying in the background if it is not up yet);
    /// the streams this bus creates are named after `namespace` and kept on `replicas` servers.
    pub async fn connect(url: &str, namespace: &str, replicas: u32) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .connect(url)
            .await
            .map_err(nats_err)?;
        let js = jetstream::new(client.clone());
        Ok(Self {
            client,
            js,
            namespace: namespace.to_owned(),
            replicas: replicas as usize,
        })
    }

    /// True while connected (for `/readyz`).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn stream_name(&self, service: &str) -> String {
        format!("{}_{}", self.namespace, service.replace('-', "_")).to_ascii_uppercase()
    }

    /// The subjects of one partition of a service's stream.
    fn partition_filter(&self, service: &str, partition: u64) -> String {
        format!("{}.{service}.{partition}.>", self.namespace)
    }

    /// Creates the service's stream if it does not exist yet.
    pub async fn ensure_stream(&self, service: &str) -> Result<stream::Stream, BusError> {
        self.js
            .get_or_create_stream(stream::Config {
                name: self.stream_name(service),
                subjects: vec![format!("{}.{service}.>", self.namespace)],
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                max_age: RETENTION,
                num_replicas: self.replicas,
                ..Default::default()
            })
            .await
            .map_err(nats_err)
    }

    /// Where an event of `service` is published.
    pub fn subject(&self, service: &str, event: &Envelope) -> String {
        let partition = stable_hash(&event.aggregate_id) % PARTITIONS;
        format!("{}.{service}.{partition}.{}", self.namespace, event.kind)
    }
}

/// Starts the relay of `db`'s outbox to its stream. Only one instance per service relays at a time
/// (leadership in the database), so events go out in outbox order.
pub fn start_relay(db: Db, bus: NatsBus, lifecycle: &Lifecycle) {
    let cancel = lifecycle.token();
    let span = info_span!("relay", service = db.name().to_owned());
    lifecycle.spawn(relay(db, bus, cancel).instrument(span));
}

async fn relay(db: Db, bus: NatsBus, cancel: CancellationToken) {
    let relay = Relay {
        service: db.name().to_owned(),
        db,
        bus,
        cancel,
    };
    while let Some(mut leadership) = relay.take_lead().await {
        match relay.while_leading(&mut leadership).await {
            Led::Lost => {}
            Led::ShuttingDown => {
                relay.flush().await;
                return;
            }
        }
    }
}

/// One service's outbox relay.
struct Relay {
    db: Db,
    bus: NatsBus,
    service: String,
    cancel: CancellationToken,
}

/// How a spell of leading the relay ended.
enum Led {
    /// The database ended the lock's session: ask for the lead again.
    Lost,
    ShuttingDown,
}

impl Relay {
    /// Waits until this instance leads the relay, with the service's stream in place; `None` if
    /// shutdown came first. Another instance leading is waited out: it may go away.
    async fn take_lead(&self) -> Option<Leadership> {
        let mut waits = retry::backoff();
        loop {
            let pause = match self.bus.ensure_stream(&self.service).await {
                Err(e) => {
                    warn!(error = %e, "cannot reach the stream; retrying");
                    waits.next().unwrap_or(retry::CAP)
                }
                Ok(_) => match self.db.try_lead("outbox-relay").await {
                    Ok(Some(leadership)) => return Some(leadership),
                    Ok(None) => LEAD_POLL,
                    Err(e) => {
                        warn!(error = %e, "cannot take the relay lead; retrying");
                        waits.next().unwrap_or(retry::CAP)
                    }
                },
            };
            if sleep_or_cancel(pause, &self.cancel).await {
                return None;
            }
        }
    }

    /// Publishes the outbox as it fills, batch by batch, while `leadership` holds.
    async fn while_leading(&self, leadership: &mut Leadership) -> Led {
        let mut changes = self.db.outbox_changes();
        let mut waits = retry::backoff();
        loop {
            changes.borrow_and_update();
            // Fenced: an instance whose lock went with its session stops here, within a batch,
            // and asks for the lead again like any other.
            if !leadership.held().await {
                warn!("lost the relay lead (the database ended its session)");
                return Led::Lost;
            }
            match publish_pending(&self.db, &self.bus, &self.service).await {
                Ok(n) if n as i64 == RELAY_BATCH => {
                    waits = retry::backoff();
                    continue;
                }
                Ok(_) => waits = retry::backoff(),
                Err(e) => {
                    warn!(error = %e, "relay failed; the outbox keeps the events until it succeeds");
                    if sleep_or_cancel(waits.next().unwrap_or(retry::CAP), &self.cancel).await {
                        return Led::ShuttingDown;
                    }
                    continue;
                }
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(RELAY_POLL) => {}
                _ = self.cancel.cancelled() => return Led::ShuttingDown,
            }
        }
    }

    /// Shutting down, still leading: publishes what is left, briefly.
    async fn flush(&self) {
        let flushed = tokio::time::timeout(
            Duration::from_secs(5),
            publish_pending(&self.db, &self.bus, &self.service),
        );
        match flushed.await {
            Ok(Ok(n)) if n > 0 => info!(events = n, "outbox flushed"),
            Ok(Err(e)) => {
                warn!(error = %e, "could not flush the outbox; it is relayed after restart");
            }
            _ => {}
        }
    }
}

/// Publishes the oldest unpublished outbox rows and marks them; returns how many.
async fn publish_pending(db: &Db, bus: &NatsBus, service: &str) -> Result<usize, BusError> {
    let rows =
        query("SELECT seq, envelope FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1")
            .bind(RELAY_BATCH)
            .fetch_all(db.reader())
            .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut acks = Vec::with_capacity(rows.len());
    let mut seqs = Vec::with_capacity(rows.len());
    for row in &rows {
        let raw: String = row.get("envelope");
        let event: Envelope = serde_json::from_str(&raw).map_err(nats_err)?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.id.as_str());
        let ack = bus
            .js
            .publish_with_headers(bus.subject(service, &event), headers, raw.into())
            .await
            .map_err(nats_err)?;
        acks.push(ack);
        seqs.push(row.get::<i64, _>("seq"));
    }
    for ack in acks {
        ack.await.map_err(nats_err)?;
    }
    let mut uow = db.begin().await?;
    let placeholders: Vec<String> = (0..seqs.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "UPDATE outbox SET published_at = $1 WHERE seq IN ({})",
        placeholders.join(", ")
    );
    let mut query = query(AssertSqlSafe(sql)).bind(uow.now());
    for seq in &seqs {
        query = query.bind(*seq);
    }
    query.execute(uow.conn()).await?;
    uow.commit().await?;
    metrics::counter!("tanda_outbox_relayed_total", "service" => service.to_owned())
        .increment(seqs.len() as u64);
    Ok(seqs.len())
}

/// Starts this process's consumers on JetStream: one task per (consumer, source, partition).
pub fn start_consumers(
    consumers: &Consumers,
    bus: &NatsBus,
    sources: &[NatsSource],
    lifecycle: &Lifecycle,
) {
    consumers.follow_pauses(lifecycle);
    for (index, entry) in consumers.entries().iter().enumerate() {
        let c = &entry.consumer;
        for source in sources
            .iter()
            .filter(|s| c.types.iter().any(|t| s.produces.contains(t)))
        {
            for partition in 0..PARTITIONS {
                let (consumers, bus, source, cancel) =
                    (consumers.clone(), bus.clone(), *source, lifecycle.token());
                let span = info_span!(
                    "consumer",
                    consumer = c.name,
                    source = source.service,
                    partition
                );
                lifecycle.spawn(
                    async move { consume(consumers, index, bus, source, partition, cancel).await }
                        .instrument(span),
                );
            }
        }
    }
}

async fn consume(
    consumers: Consumers,
    index: usize,
    bus: NatsBus,
    source: NatsSource,
    partition: u64,
    cancel: CancellationToken,
) {
    let entry = &consumers.entries()[index];
    let c = &entry.consumer;
    let durable = format!("{}-{}-p{partition}", c.name, source.service);
    let Some(pull) = durable_consumer(&bus, source.service, &durable, partition, &cancel).await
    else {
        return;
    };
    let mut waits = retry::backoff();
    let mut paused = entry.paused.subscribe();
    let lag = consumers.lag_meter(
        index,
        vec![
            ("source", source.service.to_owned()),
            ("partition", partition.to_string()),
        ],
    );
    loop {
        while *paused.borrow_and_update() {
            tokio::select! {
                _ = paused.changed() => {}
                _ = cancel.cancelled() => return,
            }
        }
        let batch = tokio::select! {
            b = pull.fetch().max_messages(1).expires(Duration::from_secs(1)).messages() => b,
            _ = cancel.cancelled() => return,
        };
        let mut batch = match batch {
            Ok(b) => {
                waits = retry::backoff();
                b
            }
            Err(e) => {
                warn!(error = %e, "fetch failed; retrying");
                if sleep_or_cancel(waits.next().unwrap_or(retry::CAP), &cancel).await {
                    return;
                }
                continue;
            }
        };
        while let Some(message) = batch.next().await {
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    warn!(error = %e, "bad message from the broker");
                    continue;
                }
            };
            if *paused.borrow() {
                // Paused during the long poll: hand it back; it is fetched again on resume.
                if let Err(e) = message.ack_with(jetstream::AckKind::Nak(None)).await {
                    warn!(error = %e, "nak failed; the broker redelivers after the ack wait");
                }
                break;
            }
            if !handle(&consumers, c, &message, &lag, &cancel).await {
                return;
            }
        }
    }
}

/// The durable pull consumer of one partition of `service`'s stream, created (or found) until it
/// can be; `None` if shutdown came first.
async fn durable_consumer(
    bus: &NatsBus,
    service: &str,
    durable: &str,
    partition: u64,
    cancel: &CancellationToken,
) -> Option<jetstream::consumer::Consumer<pull::Config>> {
    let mut waits = retry::backoff();
    loop {
        let created = async {
            let stream = bus.ensure_stream(service).await?;
            stream
                .get_or_create_consumer(
                    durable,
                    pull::Config {
                        durable_name: Some(durable.to_owned()),
                        filter_subject: bus.partition_filter(service, partition),
                        ack_policy: jetstream::consumer::AckPolicy::Explicit,
                        ack_wait: ACK_WAIT,
                        max_ack_pending: 1,
                        ..Default::default()
                    },
                )
                .await
                .map_err(nats_err)
        };
        match created.await {
            Ok(consumer) => return Some(consumer),
            Err(e) => {
                warn!(error = %e, "cannot create the durable consumer; retrying");
                if sleep_or_cancel(waits.next().unwrap_or(retry::CAP), cancel).await {
                    return None;
                }
            }
        }
    }
}

/// Handles one delivered message, if it is of a type `c` takes, then acks it. False if shutdown
/// interrupted it (unacked: the broker redelivers it).
async fn handle(
    consumers: &Consumers,
    c: &crate::consumer::Consumer,
    message: &jetstream::Message,
    lag: &crate::consumer::LagMeter,
    cancel: &CancellationToken,
) -> bool {
    // Yet to handle: this one, and what the broker holds behind it.
    let behind = message.info().map(|info| info.pending).ok();
    if let Some(behind) = behind {
        lag.set(behind + 1);
    }
    let kind = message.subject.as_str().splitn(4, '.').nth(3);
    if kind.is_some_and(|kind| c.types.contains(&kind)) {
        let raw = String::from_utf8_lossy(&message.payload);
        // Handled (or parked) and committed before the ack; shutdown mid-way means no ack, so
        // the broker redelivers it.
        if !consumers.deliver(c, None, &raw, cancel).await {
            return false;
        }
    }
    if let Some(behind) = behind {
        lag.set(behind);
    }
    // Not waiting for the broker to confirm: a lost ack means one redelivery after ACK_WAIT,
    // which the inbox absorbs, while waiting costs a round trip per message.
    if let Err(e) = message.ack().await {
        // The broker will redeliver; the inbox makes that harmless.
        warn!(error = %e, "ack failed");
    }
    true
}

async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.cancelled() => true,
    }
}
