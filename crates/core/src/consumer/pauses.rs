//! The operator's pause switch of each consumer, kept in the consumer's database so that it holds
//! for every instance of the service and across restarts.
//!
//! `POST /admin/consumers/{name}/pause` reaches one instance; the switch it stores reaches the
//! others through [`follow`], which reads the stored switches every [`POLL`] and applies any that
//! changed. Until an instance has read them once, its consumers wait: one that was paused before
//! a restart never takes an event after it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{AdminError, Consumers};
use crate::db::{Db, DbError};
use crate::sql::{query, query_scalar};

/// How often each instance reads the stored switches: another instance's pause or resume takes
/// effect here within it.
pub const POLL: Duration = Duration::from_secs(1);

/// Stores the switch of the consumer `name`, then applies it here at once. Serialised with
/// [`follow`]'s reads, so that a read from before the switch is never applied after it.
async fn switch(consumers: &Consumers, name: &str, paused: bool) -> Result<(), AdminError> {
    let entry = consumers.entry(name)?;
    let _turn = consumers.switching.lock().await;
    let c = &entry.consumer;
    let mut uow = c.db.begin().await?;
    let stored = if paused {
        query(
            "INSERT INTO paused_consumers (consumer, paused_at) VALUES ($1, $2)
             ON CONFLICT (consumer) DO NOTHING",
        )
        .bind(c.name)
        .bind(uow.now())
    } else {
        query("DELETE FROM paused_consumers WHERE consumer = $1").bind(c.name)
    };
    stored.execute(uow.conn()).await?;
    uow.commit().await?;
    entry.paused.send_replace(paused);
    Ok(())
}

/// Applies the stored switches of `consumers` until `cancel`: at once, then every [`POLL`]. Only
/// a switch that changed in the database since the last read is applied, so a pause made in this
/// process alone ([`Consumers::pause_here`]) holds until the stored one next moves.
pub(super) async fn follow(consumers: Consumers, cancel: CancellationToken) {
    let mut dbs: Vec<&Db> = Vec::new();
    for entry in consumers.entries() {
        if dbs.iter().all(|db| db.name() != entry.consumer.db.name()) {
            dbs.push(&entry.consumer.db);
        }
    }
    let mut seen: HashMap<&'static str, bool> = HashMap::new();
    loop {
        for db in &dbs {
            let _turn = consumers.switching.lock().await;
            match stored(db).await {
                Ok(paused) => apply(&consumers, db, &paused, &mut seen),
                // Read again at the next look: until then, what was applied holds.
                Err(e) => {
                    warn!(error = %e, database = db.name(), "cannot read the pause switches; retrying");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// The consumers paused on `db`.
async fn stored(db: &Db) -> Result<HashSet<String>, DbError> {
    let names: Vec<String> = query_scalar("SELECT consumer FROM paused_consumers")
        .fetch_all(db.reader())
        .await?;
    Ok(names.into_iter().collect())
}

fn apply(
    consumers: &Consumers,
    db: &Db,
    paused: &HashSet<String>,
    seen: &mut HashMap<&'static str, bool>,
) {
    for entry in consumers
        .entries()
        .iter()
        .filter(|e| e.consumer.db.name() == db.name())
    {
        let name = entry.consumer.name;
        let now = paused.contains(name);
        if seen.insert(name, now) != Some(now) {
            entry.paused.send_replace(now);
        }
    }
}

impl Consumers {
    /// Stops delivering to `name` after the event in hand, on every instance (an operator's
    /// maintenance switch, kept until resumed).
    pub async fn pause(&self, name: &str) -> Result<(), AdminError> {
        switch(self, name, true).await
    }

    /// Lets a paused consumer take events again, on every instance.
    pub async fn resume(&self, name: &str) -> Result<(), AdminError> {
        switch(self, name, false).await
    }

    /// Pauses `name` in this process only, without a word to the database (until its stored
    /// switch next changes): for a test's handler that pauses its own consumer while its unit of
    /// work holds the database.
    pub fn pause_here(&self, name: &str) -> Result<(), AdminError> {
        self.entry(name)?.paused.send_replace(true);
        Ok(())
    }

    pub fn is_paused(&self, name: &str) -> Result<bool, AdminError> {
        Ok(*self.entry(name)?.paused.borrow())
    }
}
