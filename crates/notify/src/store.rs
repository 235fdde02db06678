//! The `notifications` table: what was said to whom. Readers get it newest first by when the fact
//! it tells of happened (`occurred_at`, the event's own time; ties by the event's id, UUIDv7, so in
//! the order its producer made them), so one ride's story reads in order even when notify learned
//! of its events out of order. The live tail and the webhook read it in the order it was stored,
//! each remembering how far it got (notification ids are time-ordered UUIDv7).

use serde::Serialize;
use tanda_core::clock::rfc3339;
use tanda_core::id::new_id;
use tanda_core::sql::{Row, query, query_scalar};
use tanda_core::{Db, DbError, Timestamp, Uow};

use crate::domain::{Message, Receiver};

/// A stored notification, as `GET /notifications`, the SSE stream and the webhook show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    #[schema(format = "uuid")]
    pub notification_id: String,
    /// `customer:{customerId}`, `driver:{driverId}` or `user:{userId}`.
    #[schema(example = "customer:kim-minji")]
    pub receiver: String,
    /// Short and machine-friendly.
    #[schema(example = "taxi.dispatched")]
    pub subject: String,
    pub message: String,
    /// The saga it belongs to: the booking id for taxi events, the reservation id for flight ones.
    pub correlation_id: String,
    /// When the fact it tells of happened (not when notify learned of it).
    #[schema(format = DateTime)]
    pub occurred_at: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// `SELECT` with the columns every read takes, then the rest of the statement.
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT notification_id, receiver, subject, message, correlation_id, occurred_at, ",
            "created_at FROM notifications ",
            $rest
        )
    };
}

fn notification(row: &Row) -> Result<Notification, DbError> {
    Ok(Notification {
        notification_id: row.try_get("notification_id")?,
        receiver: row.try_get("receiver")?,
        subject: row.try_get("subject")?,
        message: row.try_get("message")?,
        correlation_id: row.try_get("correlation_id")?,
        occurred_at: rfc3339(row.try_get("occurred_at")?),
        created_at: rfc3339(row.try_get("created_at")?),
    })
}

/// What a notification is about: the event that told of it.
pub struct Fact<'a> {
    pub event_id: &'a str,
    pub correlation_id: &'a str,
    pub occurred_at: Timestamp,
}

/// Stores `message` in `uow`: it exists only if the unit of work commits.
pub async fn insert(uow: &mut Uow, message: &Message, fact: &Fact<'_>) -> Result<(), DbError> {
    let now = uow.now();
    query(
        "INSERT INTO notifications (notification_id, receiver, subject, message, correlation_id,
                                    occurred_at, event_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(message.receiver.to_string())
    .bind(message.subject)
    .bind(&message.text)
    .bind(fact.correlation_id)
    .bind(fact.occurred_at)
    .bind(fact.event_id)
    .bind(now)
    .execute(uow.conn())
    .await?;
    Ok(())
}

/// The receiver's latest `limit` notifications, newest first.
pub async fn newest(
    db: &Db,
    receiver: &Receiver,
    limit: i64,
) -> Result<Vec<Notification>, DbError> {
    let rows = query(select!(
        "WHERE receiver = $1 ORDER BY occurred_at DESC, event_id DESC, notification_id DESC
         LIMIT $2"
    ))
    .bind(receiver.to_string())
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(notification).collect::<Result<_, _>>()
}

/// The receiver's notifications after `after` (an id; `""` for all), oldest first.
pub async fn after(
    db: &Db,
    receiver: &Receiver,
    after: &str,
    limit: i64,
) -> Result<Vec<Notification>, DbError> {
    let rows = query(select!(
        "WHERE receiver = $1 AND notification_id > $2 ORDER BY notification_id LIMIT $3"
    ))
    .bind(receiver.to_string())
    .bind(after)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(notification).collect::<Result<_, _>>()
}

/// The id of the receiver's newest notification, if any: where a live stream starts.
pub async fn latest_id(db: &Db, receiver: &Receiver) -> Result<Option<String>, DbError> {
    let id: Option<String> =
        query_scalar("SELECT MAX(notification_id) FROM notifications WHERE receiver = $1")
            .bind(receiver.to_string())
            .fetch_one(db.reader())
            .await?;
    Ok(id)
}

/// The oldest notifications the webhook has not delivered yet, in order.
pub async fn undelivered(db: &Db, limit: i64) -> Result<Vec<Notification>, DbError> {
    let rows = query(select!(
        "WHERE delivered_at IS NULL ORDER BY notification_id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(notification).collect::<Result<_, _>>()
}

/// Records that the webhook accepted notification `id`.
pub async fn mark_delivered(db: &Db, id: &str) -> Result<(), DbError> {
    let mut uow = db.begin().await?;
    let now = uow.now();
    query(
        "UPDATE notifications SET delivered_at = $1 WHERE notification_id = $2 AND delivered_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(uow.conn())
    .await?;
    uow.commit().await
}
