//! notify — the seeds' Kakao/alarm service (DESIGN §2): turns taxi and flight events into
//! messages for customers, drivers and users, stores them, streams them live over Server-Sent
//! Events and, when configured, POSTs each one to a webhook. Each receiver reads them in their
//! own language, Korean (the default) or English, as identity tells it.
//!
//! Code map: `domain` (receivers and the messages each event causes), `wording` (the words of
//! each message in each language, `locales/*/notify.ftl`), `locales` (each receiver's language),
//! `policy` (the consumer), `store` (the `notifications` table), `http` (list and live stream),
//! `webhook` (delivery task).

mod domain;
mod http;
mod locales;
mod policy;
mod store;
mod webhook;
mod wording;

use std::sync::Arc;

use tanda_core::consumer::Consumer;
use tanda_core::db::Migration;
use tanda_core::event::DecodeError;
use tanda_core::lifecycle::Lifecycle;
use tanda_core::service::ServiceParts;
use tanda_core::{Db, DbError};
use tokio::sync::watch;
use tracing::Instrument;

use crate::domain::InvalidReceiver;
use crate::policy::Notifier;
use crate::webhook::Webhook;

pub const NAME: &str = "notify";

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "notifications",
    sql: "CREATE TABLE notifications (
              notification_id VARCHAR(64) PRIMARY KEY, receiver VARCHAR(100) NOT NULL,
              subject VARCHAR(100) NOT NULL, message TEXT NOT NULL,
              correlation_id VARCHAR(200) NOT NULL, created_at BIGINT NOT NULL, delivered_at BIGINT);
          CREATE INDEX notifications_by_receiver ON notifications (receiver, notification_id);
          CREATE INDEX notifications_by_delivery ON notifications (delivered_at, notification_id)",
}, Migration {
    version: 2,
    name: "notifications in the order things happened",
    // Older rows keep the time notify learned of them: the best it knows of when they happened.
    sql: "ALTER TABLE notifications ADD COLUMN occurred_at BIGINT NOT NULL DEFAULT 0;
          ALTER TABLE notifications ADD COLUMN event_id VARCHAR(64) NOT NULL DEFAULT '';
          UPDATE notifications SET occurred_at = created_at, event_id = notification_id;
          CREATE INDEX notifications_by_occurrence
              ON notifications (receiver, occurred_at, event_id, notification_id)",
}, Migration {
    version: 3,
    name: "notifications worded when read",
    // Rows before this keep their English text; later ones a message key and its arguments.
    sql: "ALTER TABLE notifications RENAME COLUMN message TO legacy_message;
          ALTER TABLE notifications ADD COLUMN message_key VARCHAR(100);
          ALTER TABLE notifications ADD COLUMN message_args TEXT",
}, locales::MIGRATION];

/// The service as the binary's registry lists it.
pub const SPEC: tanda_core::service::ServiceSpec = tanda_core::service::ServiceSpec {
    name: NAME,
    paths: &[tanda_core::service::OwnedPath::all("/notifications")],
    produces: &[],
    calls: &[],
    migrations: MIGRATIONS,
    openapi,
};

/// The service's public operations, documented (the same routes `build` serves).
pub use http::openapi;

/// Notify's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize)]
#[group(skip)] // each service calls its settings `Config`
pub struct Config {
    /// POST every notification as JSON to this http:// URL (at least once, in order).
    #[arg(global = true, long = "notify-webhook", env = "TANDA_NOTIFY_WEBHOOK")]
    pub webhook: Option<String>,
}

/// Everything that can go wrong in notify.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidReceiver(#[from] InvalidReceiver),
    #[error("limit must be a whole number from 1 to 500")]
    InvalidLimit,
    #[error("Last-Event-ID must be the id of a notification")]
    InvalidLastEventId,
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("webhook `{0}` is not an absolute http:// URL")]
    InvalidWebhook(String),
    #[error("webhook: {0}")]
    Webhook(#[from] reqwest::Error),
    #[error("webhook answered {0}")]
    WebhookStatus(u16),
    #[error("{0}")]
    Db(#[from] DbError),
}

/// Wires notify: its routes, its consumers (of the taxi and flight events, and of identity's for
/// each receiver's language) and, with a webhook configured, the delivery task (stopped by
/// `lifecycle`).
pub async fn build(db: Db, config: Config, lifecycle: &Lifecycle) -> Result<ServiceParts, Error> {
    let wake = watch::Sender::new(0);
    if let Some(url) = &config.webhook {
        let webhook = Webhook::new(db.clone(), url)?;
        let task = webhook.run(wake.subscribe(), lifecycle.token());
        lifecycle.spawn(task.instrument(tracing::info_span!("webhook")));
    }
    let router = http::router(http::AppState {
        db: db.clone(),
        wake: wake.clone(),
        lifecycle: lifecycle.clone(),
    });
    let notifier = Consumer {
        name: NAME,
        db: db.clone(),
        types: &policy::TYPES,
        handler: Arc::new(Notifier { wake }),
    };
    let languages = Consumer::new(locales::CONSUMER, db.clone(), locales::Locales);
    Ok(ServiceParts {
        name: NAME,
        db,
        router,
        internal: axum::Router::new(),
        consumers: vec![notifier, languages],
        timers: None,
        breakers: Vec::new(),
    })
}
