//! The unit of work: one transaction holding a state change with its outbox events, timers,
//! inbox record and idempotency record; committed alone or, on SQLite, in a shared group commit.

use super::sqlite::GROUP_MAX;
use super::*;

/// A timer to fire at `fire_at`: `kind` names the handler, `key` the aggregate it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Timer {
    pub id: String,
    pub kind: String,
    pub key: String,
    pub fire_at: Timestamp,
    pub payload: serde_json::Value,
}

/// A response kept for an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

/// One local transaction: the state change, its outbox events, its timers, its inbox record and
/// its idempotency record all commit together or not at all.
pub struct Uow {
    pub(super) tx: Tx,
    pub(super) db: Db,
    pub(super) wrote_outbox: bool,
    pub(super) wrote_timers: bool,
    pub(super) after_commit: Vec<Box<dyn FnOnce() + Send>>,
}

impl Uow {
    /// The connection to run the service's own SQL on.
    pub fn conn(&mut self) -> &mut Tx {
        &mut self.tx
    }
    pub fn now(&self) -> Timestamp {
        self.db.now()
    }
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Appends an event to the outbox; it is published only if this unit of work commits.
    pub async fn publish(&mut self, event: &Envelope) -> Result<(), DbError> {
        debug_assert!(
            self.db
                .inner
                .produces
                .get()
                .is_none_or(|types| types.contains(&event.kind.as_str())),
            "{} publishes {}, which its registry entry does not list",
            self.db.name(),
            event.kind
        );
        let json = serde_json::to_string(event).expect("envelopes serialize");
        query(
            "INSERT INTO outbox (id, type, aggregate_id, envelope, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&event.id)
        .bind(&event.kind)
        .bind(&event.aggregate_id)
        .bind(json)
        .bind(self.now())
        .execute(&mut self.tx)
        .await?;
        self.wrote_outbox = true;
        Ok(())
    }

    /// Schedules a durable timer (replacing any timer of the same kind and key).
    pub async fn schedule(
        &mut self,
        kind: &str,
        key: &str,
        fire_at: Timestamp,
        payload: serde_json::Value,
    ) -> Result<(), DbError> {
        self.cancel_timer(kind, key).await?;
        query("INSERT INTO timers (id, kind, key, fire_at, payload) VALUES ($1, $2, $3, $4, $5)")
            .bind(new_id())
            .bind(kind)
            .bind(key)
            .bind(fire_at)
            .bind(payload.to_string())
            .execute(&mut self.tx)
            .await?;
        self.wrote_timers = true;
        Ok(())
    }

    /// Schedules `timer` at `fire_at`, replacing any of its kind and key.
    pub async fn set_timer<T: crate::timers::Timed>(
        &mut self,
        timer: &T,
        fire_at: Timestamp,
    ) -> Result<(), DbError> {
        self.schedule(timer.kind(), timer.key(), fire_at, timer.payload())
            .await
    }

    /// Removes the timer of this kind and key, if any.
    pub async fn cancel_timer(&mut self, kind: &str, key: &str) -> Result<(), DbError> {
        query("DELETE FROM timers WHERE kind = $1 AND key = $2")
            .bind(kind)
            .bind(key)
            .execute(&mut self.tx)
            .await?;
        Ok(())
    }

    /// Claims a due timer: true if this unit of work removed it (so it fires exactly once, even
    /// with several instances racing for it).
    pub(crate) async fn claim_timer(&mut self, id: &str) -> Result<bool, DbError> {
        let done = query("DELETE FROM timers WHERE id = $1")
            .bind(id)
            .execute(&mut self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that `consumer` handled `event_id`; false if it already had (a redelivery).
    pub(crate) async fn record_inbox(
        &mut self,
        consumer: &str,
        event_id: &str,
    ) -> Result<bool, DbError> {
        let done = query(
            "INSERT INTO inbox (consumer, event_id, processed_at) VALUES ($1, $2, $3)
             ON CONFLICT (consumer, event_id) DO NOTHING",
        )
        .bind(consumer)
        .bind(event_id)
        .bind(self.now())
        .execute(&mut self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The response stored under an idempotency key, if this key was used before. The same key with
    /// a different request is an error: the client is reusing keys.
    pub async fn idempotent_response(
        &mut self,
        scope: &str,
        key: &str,
        request: &serde_json::Value,
    ) -> Result<Option<StoredResponse>, DbError> {
        let row = query(
            "SELECT request_hash, status, body FROM idempotency WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&mut self.tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        if row.try_get::<String, _>("request_hash")? != request_hash(request) {
            return Err(DbError::IdempotencyMismatch);
        }
        let body: String = row.try_get("body")?;
        Ok(Some(StoredResponse {
            status: row.try_get::<i32, _>("status")? as u16,
            body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        }))
    }

    /// Keeps the response for an idempotency key, in this transaction.
    pub async fn save_idempotent_response(
        &mut self,
        scope: &str,
        key: &str,
        request: &serde_json::Value,
        status: u16,
        body: &serde_json::Value,
    ) -> Result<(), DbError> {
        query(
            "INSERT INTO idempotency (scope, key, request_hash, status, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(scope)
        .bind(key)
        .bind(request_hash(request))
        .bind(i32::from(status))
        .bind(body.to_string())
        .bind(self.now())
        .execute(&mut self.tx)
        .await
        .map_err(|e| match e {
            // A concurrent request with the same key won: retrying replays its response.
            e if e.is_unique_violation() => DbError::Conflict(format!("idempotency key {key}")),
            e => e,
        })?;
        Ok(())
    }

    pub(crate) async fn set_cursor(
        &mut self,
        consumer: &str,
        source: &str,
        position: i64,
    ) -> Result<(), DbError> {
        query(
            "INSERT INTO consumer_cursors (consumer, source, position) VALUES ($1, $2, $3)
             ON CONFLICT (consumer, source) DO UPDATE SET position = excluded.position",
        )
        .bind(consumer)
        .bind(source)
        .bind(position)
        .execute(&mut self.tx)
        .await?;
        Ok(())
    }

    /// Runs `f` once this unit of work has committed (never if it rolls back): for in-memory
    /// caches and live streams that must only ever show committed state.
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(f));
    }

    /// Commits, runs the after-commit hooks, then wakes whoever waits on this database's outbox
    /// or timers. On SQLite under load the commit may be shared with the units around it; it
    /// returns once that shared commit is done.
    pub async fn commit(self) -> Result<(), DbError> {
        self.commit_unit().await?;
        crate::failpoint::committed();
        Ok(())
    }

    pub(super) async fn commit_unit(self) -> Result<(), DbError> {
        let Uow {
            mut tx,
            db,
            wrote_outbox,
            wrote_timers,
            after_commit,
        } = self;
        let mut writer = match std::mem::replace(&mut tx.0, TxState::Committed) {
            TxState::Sqlite(writer) => writer,
            TxState::Postgres(pg) => {
                pg.commit().await?;
                db.inner.commits.increment(1);
                db.inner.transactions.increment(1);
                for f in after_commit {
                    f();
                }
                db.signal(wrote_outbox, wrote_timers);
                return Ok(());
            }
            TxState::Committed => return Ok(()),
        };
        if let Err(e) = writer.finish_unit() {
            writer.abandon_unit();
            return Err(e.into());
        }
        let group = writer
            .group
            .as_mut()
            .expect("a unit runs inside a transaction");
        group.finished += 1;
        group.hooks.extend(after_commit);
        group.wrote_outbox |= wrote_outbox;
        group.wrote_timers |= wrote_timers;
        if db.sqlite().queued.load(Ordering::Relaxed) == 0 || group.finished >= GROUP_MAX {
            return db.commit_group(writer);
        }
        // Others wait for the writer: leave the transaction open for them. The last of them, or
        // the committer started here (queued behind them), commits it.
        let mut done = group.done.subscribe();
        if !std::mem::replace(&mut group.committer, true) {
            let db = db.clone();
            tokio::spawn(async move {
                let writer = db.sqlite().writer.clone().lock_owned().await;
                // Whatever transaction is open now (this one may have been committed already);
                // its units hear of a failure through `done`.
                let _ = db.commit_group(writer);
            });
        }
        drop(writer);
        match done.wait_for(Option::is_some).await {
            Ok(outcome) => match outcome.as_ref().expect("waited for an outcome") {
                Ok(()) => Ok(()),
                Err(e) => Err(DbError::Commit(e.clone())),
            },
            Err(_) => Err(DbError::Commit(
                "the transaction this unit of work shared was rolled back".into(),
            )),
        }
    }
}

pub(super) fn request_hash(request: &serde_json::Value) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(request.to_string().as_bytes()))
}
