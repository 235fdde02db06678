//! Waiting out the infrastructure: one policy for every loop that retries (consumers, the relay,
//! timers, the pay call, the webhook, the start-up), and the one rule that tells a failure of
//! the infrastructure from a failure of the work itself.
//!
//! A database that is down, read-only or out of disk, a lost connection, a broker that does not
//! answer: none of these says anything about the event or command in hand, and all of them pass.
//! They are retried for as long as they last, with a capped, jittered exponential backoff (so
//! that a hundred consumers do not knock on a recovering database at the same instant). Only a
//! handler's own deterministic refusal is poison: it alone counts toward the attempts after
//! which an event is parked as a dead letter.

use std::error::Error;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::db::DbError;

/// The first pause after a transient failure; each next one doubles, up to [`CAP`].
pub const FIRST: Duration = Duration::from_millis(50);
/// The longest pause between two tries: how late, at most, work resumes after an outage ends.
pub const CAP: Duration = Duration::from_secs(5);

/// The pauses between tries: 50 ms, doubling to 5 s, each with up to as much again of random
/// jitter; endless (the caller decides when to stop, e.g. at shutdown).
pub fn backoff() -> impl Iterator<Item = Duration> + Send {
    ExponentialBuilder::new()
        .with_min_delay(FIRST)
        .with_max_delay(CAP)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// A failure the caller marks as the infrastructure's (e.g. the broker or a called service did
/// not answer), for errors that are not a [`DbError`] or an I/O error already.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// True if `e`, or any error it wraps, is a failure of the infrastructure rather than of the
/// work: see the module docs.
pub fn is_transient(e: &(dyn Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(db) = err.downcast_ref::<DbError>() {
            return db.is_transient();
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io_is_transient(io);
        }
        if err.is::<Unavailable>() {
            return true;
        }
        next = err.source();
    }
    false
}

/// The I/O failures that pass: a full disk, a connection refused, reset or timed out.
pub fn io_is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        StorageFull
            | QuotaExceeded
            | ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | BrokenPipe
            | TimedOut
            | Interrupted
            | WouldBlock
            | ResourceBusy
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pauses_grow_to_the_cap_and_never_end() {
        let pauses: Vec<Duration> = backoff().take(40).collect();
        assert_eq!(pauses.len(), 40, "the policy never gives up");
        assert!(pauses[0] >= FIRST && pauses[0] <= FIRST * 2, "{pauses:?}");
        assert!(pauses.iter().all(|p| *p <= CAP * 2), "{pauses:?}");
        assert!(pauses[39] >= CAP, "{pauses:?}");
    }

    #[test]
    fn infrastructure_failures_are_transient_and_refusals_are_not() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(is_transient(&DbError::from(sqlx::Error::Io(refused))));
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert!(is_transient(&DbError::from(full)));
        assert!(is_transient(&DbError::Commit("disk I/O error".into())));
        assert!(is_transient(&Unavailable("pay".into())));

        assert!(!is_transient(&DbError::RowNotFound));
        assert!(!is_transient(&DbError::Decode("no such column".into())));
        let refusal: Box<dyn Error + Send + Sync> = "a negative price".into();
        assert!(!is_transient(refusal.as_ref()));
    }

    #[test]
    fn a_wrapped_database_failure_is_found_through_its_sources() {
        #[derive(Debug, thiserror::Error)]
        enum ServiceError {
            #[error("{0}")]
            Db(#[from] DbError),
        }
        let wrapped: Box<dyn Error + Send + Sync> =
            Box::new(ServiceError::from(DbError::from(sqlx::Error::PoolTimedOut)));
        assert!(is_transient(wrapped.as_ref()));
    }
}
