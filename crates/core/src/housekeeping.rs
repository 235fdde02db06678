//! Housekeeping: keeps the bookkeeping tables from growing forever, deleting only what can no
//! longer matter — outbox rows every consumer has passed, inbox records far older than any
//! redelivery, and idempotency records older than a client would retry.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span, warn};

use crate::consumer::{Consumers, Source};
use crate::db::{Db, DbError};
use crate::lifecycle::Lifecycle;
use crate::sql::query;

/// Consumed outbox rows are kept this long (for inspection) before they go.
pub const OUTBOX_KEEP: Duration = Duration::from_secs(60 * 60);
/// A redelivery older than this cannot happen: the cursor (or the broker's ack) has moved on.
pub const INBOX_KEEP: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Clients retry a POST within minutes; a day is generous.
pub const IDEMPOTENCY_KEEP: Duration = Duration::from_secs(24 * 60 * 60);
const EVERY: Duration = Duration::from_secs(10 * 60);

/// Starts the periodic clean-up of every database of this process: a sweep at once, then every
/// ten minutes, so that an instance restarted more often than that (a redeploy, a scale-down)
/// still sweeps.
pub fn start(
    databases: Vec<Db>,
    sources: Vec<Source>,
    consumers: Consumers,
    lifecycle: &Lifecycle,
) {
    let cancel = lifecycle.token();
    lifecycle
        .spawn(run(databases, sources, consumers, cancel).instrument(info_span!("housekeeping")));
}

async fn run(
    databases: Vec<Db>,
    sources: Vec<Source>,
    consumers: Consumers,
    cancel: CancellationToken,
) {
    loop {
        if let Err(e) = sweep(&databases, &sources, &consumers).await {
            warn!(error = %e, "housekeeping failed; trying again later");
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// One pass over every database.
pub async fn sweep(
    databases: &[Db],
    sources: &[Source],
    consumers: &Consumers,
) -> Result<(), DbError> {
    for source in sources {
        if let Some(passed) = consumers.slowest_position(source).await? {
            let mut uow = source.db.begin().await?;
            let cutoff = uow.now() - OUTBOX_KEEP.as_millis() as i64;
            query("DELETE FROM outbox WHERE seq <= $1 AND created_at < $2")
                .bind(passed)
                .bind(cutoff)
                .execute(uow.conn())
                .await?;
            uow.commit().await?;
        }
    }
    for db in databases {
        let mut uow = db.begin().await?;
        let now = uow.now();
        // Relayed to the broker (distributed mode): the stream has them now.
        query("DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1")
            .bind(now - OUTBOX_KEEP.as_millis() as i64)
            .execute(uow.conn())
            .await?;
        query("DELETE FROM inbox WHERE processed_at < $1")
            .bind(now - INBOX_KEEP.as_millis() as i64)
            .execute(uow.conn())
            .await?;
        query("DELETE FROM idempotency WHERE created_at < $1")
            .bind(now - IDEMPOTENCY_KEEP.as_millis() as i64)
            .execute(uow.conn())
            .await?;
        uow.commit().await?;
    }
    Ok(())
}
