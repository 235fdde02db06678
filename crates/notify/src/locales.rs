//! Each receiver's language, as identity tells it (`AccountOpened`, `LocaleChanged`): a local
//! projection, so that reading a notification never asks identity. `customer:{id}`,
//! `driver:{id}` and `user:{id}` are the same person, the account `{id}`. Someone notify has not
//! heard of (no account, or its event not arrived yet) reads Korean, the default; since messages
//! are worded when read, what they were told before notify learned their language reads in it
//! afterwards all the same.

use async_trait::async_trait;
use tanda_catalog::identity::{AccountOpened, LocaleChanged};
use tanda_core::clock::parse_rfc3339;
use tanda_core::consumer::HandlerError;
use tanda_core::db::Migration;
use tanda_core::locale::Locale;
use tanda_core::sql::{query, query_scalar};
use tanda_core::subscription::Policy;
use tanda_core::{Db, DbError, Envelope, Uow};

pub const MIGRATION: Migration = Migration {
    version: 4,
    name: "receivers' languages",
    sql: "CREATE TABLE receiver_locales (
              user_id VARCHAR(64) PRIMARY KEY, locale VARCHAR(8) NOT NULL,
              changed_at BIGINT NOT NULL, event_id VARCHAR(64) NOT NULL)",
};

/// The consumer's name.
pub const CONSUMER: &str = "notify-locales";

tanda_core::subscription! {
    /// What the `notify-locales` consumer takes: identity's word of each account's language.
    pub enum Takes {
        AccountOpened(AccountOpened),
        LocaleChanged(LocaleChanged),
    }
}

/// Keeps `receiver_locales`. A user's events come in order (their ordering key is the user id),
/// yet the latest change wins whatever the order, by the time identity made it.
pub struct Locales;

#[async_trait]
impl Policy for Locales {
    type Takes = Takes;

    fn batchable(&self) -> bool {
        true
    }

    async fn apply(
        &self,
        uow: &mut Uow,
        taken: Takes,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let (user_id, locale) = match taken {
            Takes::AccountOpened(e) => (e.user_id, e.locale),
            Takes::LocaleChanged(e) => (e.user_id, e.locale),
        };
        let changed_at = parse_rfc3339(&event.occurred_at).unwrap_or_else(|| uow.now());
        query(
            "INSERT INTO receiver_locales (user_id, locale, changed_at, event_id)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id) DO UPDATE
                 SET locale = excluded.locale, changed_at = excluded.changed_at,
                     event_id = excluded.event_id
                 WHERE receiver_locales.changed_at < excluded.changed_at
                    OR (receiver_locales.changed_at = excluded.changed_at
                        AND receiver_locales.event_id < excluded.event_id)",
        )
        .bind(user_id.as_str())
        .bind(locale.as_str())
        .bind(changed_at)
        .bind(event.id.as_str())
        .execute(uow.conn())
        .await?;
        Ok(())
    }
}

/// The language `user_id` reads: the one they chose, else Korean. A language this version does
/// not speak (a later one's) reads as the default too.
pub async fn of(db: &Db, user_id: &str) -> Result<Locale, DbError> {
    let chosen: Option<String> =
        query_scalar("SELECT locale FROM receiver_locales WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(db.reader())
            .await?;
    Ok(chosen
        .as_deref()
        .and_then(Locale::parse)
        .unwrap_or_default())
}
