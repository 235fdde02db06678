//! The `notifications` table: what was said to whom. Readers get it newest first by when the fact
//! it tells of happened (`occurred_at`, the event's own time; ties by the event's id, UUIDv7, so in
//! the order its producer made them), so one ride's story reads in order even when notify learned
//! of its events out of order. The live tail and the webhook read it in the order it was stored,
//! each remembering how far it got (notification ids are time-ordered UUIDv7).
//!
//! A row keeps a message key and its arguments, not words: every read words it in the receiver's
//! language at that moment (`locales`, `wording`). Rows stored before that keep their English
//! text (`legacy_message`) and read as it.

use std::collections::HashMap;

use serde::Serialize;
use tanda_core::clock::rfc3339;
use tanda_core::id::new_id;
use tanda_core::locale::Locale;
use tanda_core::sql::{Row, query, query_scalar};
use tanda_core::{Db, DbError, Timestamp, Uow};

use crate::domain::{Message, Receiver};
use crate::locales;
use crate::wording::{self, Args};

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
    /// In the receiver's language as they read it: the one they chose (`locale` at sign-up, or
    /// `PUT /auth/users/{userId}/locale` since), Korean by default.
    #[schema(
        example = "택시가 배차됐어요: 12가3456 (Kim Minsu 기사님, 010-1234-5678). 약 5분 후 도착해요."
    )]
    pub message: String,
    /// The language `message` is in: `ko` or `en`.
    #[schema(example = "ko")]
    pub locale: &'static str,
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
            "SELECT notification_id, receiver, subject, message_key, message_args, legacy_message, ",
            "correlation_id, occurred_at, created_at FROM notifications ",
            $rest
        )
    };
}

/// The row, worded in `locale`.
fn notification(row: &Row, locale: Locale) -> Result<Notification, DbError> {
    let id: String = row.try_get("notification_id")?;
    let (message, locale) = match row.try_get::<Option<String>, _>("message_key")? {
        Some(key) => {
            let args: Args = match row.try_get::<Option<String>, _>("message_args")? {
                Some(json) => serde_json::from_str(&json)
                    .map_err(|e| DbError::Decode(format!("notification {id}: arguments: {e}")))?,
                None => Args::new(),
            };
            (wording::render(locale, &key, &args), locale)
        }
        // Stored before messages were worded when read: English, as it was then.
        None => (row.try_get("legacy_message")?, Locale::En),
    };
    Ok(Notification {
        notification_id: id,
        receiver: row.try_get("receiver")?,
        subject: row.try_get("subject")?,
        message,
        locale: locale.as_str(),
        correlation_id: row.try_get("correlation_id")?,
        occurred_at: rfc3339(row.try_get("occurred_at")?),
        created_at: rfc3339(row.try_get("created_at")?),
    })
}

/// One receiver's rows, worded in their language now.
async fn worded(db: &Db, receiver: &Receiver, rows: &[Row]) -> Result<Vec<Notification>, DbError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let locale = locales::of(db, receiver.id().as_str()).await?;
    rows.iter().map(|row| notification(row, locale)).collect()
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
        "INSERT INTO notifications (notification_id, receiver, subject, message_key, message_args,
                                    legacy_message, correlation_id, occurred_at, event_id,
                                    created_at)
         VALUES ($1, $2, $3, $4, $5, '', $6, $7, $8, $9)",
    )
    .bind(new_id())
    .bind(message.receiver.to_string())
    .bind(message.subject)
    .bind(message.key)
    .bind(serde_json::to_string(&message.args).expect("arguments serialize"))
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
    worded(db, receiver, &rows).await
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
    worded(db, receiver, &rows).await
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

/// The oldest notifications the webhook has not delivered yet, in order, each worded in its
/// receiver's language now.
pub async fn undelivered(db: &Db, limit: i64) -> Result<Vec<Notification>, DbError> {
    let rows = query(select!(
        "WHERE delivered_at IS NULL ORDER BY notification_id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    let mut languages: HashMap<String, Locale> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let receiver: String = row.try_get("receiver")?;
        let user_id = receiver
            .split_once(':')
            .map_or(receiver.as_str(), |(_, id)| id);
        let locale = match languages.get(user_id) {
            Some(locale) => *locale,
            None => {
                let locale = locales::of(db, user_id).await?;
                languages.insert(user_id.to_owned(), locale);
                locale
            }
        };
        out.push(notification(row, locale)?);
    }
    Ok(out)
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
