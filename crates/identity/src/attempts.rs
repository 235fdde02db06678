//! Sign-in throttling: after repeated failures for one account, or from one client address,
//! further attempts are refused until the window they fell in has passed (429 + `Retry-After`),
//! so that passwords cannot be guessed at speed. Each map is bounded: when full, windows that
//! have passed are dropped first, then the oldest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Failures allowed per account within [`WINDOW`].
pub const ACCOUNT_FAILURES: u32 = 5;
/// Failures allowed per client address within [`WINDOW`] (several people may share one).
pub const ADDRESS_FAILURES: u32 = 20;
pub const WINDOW: Duration = Duration::from_secs(300);
/// The most accounts or addresses remembered at once.
const CAPACITY: usize = 100_000;

pub struct Attempts {
    limit: u32,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Attempts {
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` while `key` has used up its failures.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let failures = self.failures.lock().expect("attempts lock");
        match failures.get(key) {
            Some(&(n, since)) if n >= self.limit && now < since + WINDOW => {
                Err(since + WINDOW - now)
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, key: &str) {
        let now = Instant::now();
        let mut failures = self.failures.lock().expect("attempts lock");
        if failures.len() >= CAPACITY && !failures.contains_key(key) {
            failures.retain(|_, (_, since)| now < *since + WINDOW);
            if failures.len() >= CAPACITY
                && let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(k, _)| k.clone())
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(key.to_owned()).or_insert((0, now));
        if now >= entry.1 + WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    pub fn succeeded(&self, key: &str) {
        self.failures.lock().expect("attempts lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_lock_a_key_until_their_window_passes() {
        let attempts = Attempts::new(3);
        for _ in 0..3 {
            assert!(attempts.check("kim").is_ok());
            attempts.failed("kim");
        }
        let wait = attempts.check("kim").unwrap_err();
        assert!(wait <= WINDOW && wait > WINDOW - Duration::from_secs(1));
        assert!(attempts.check("lee").is_ok(), "other keys are not affected");
        tokio::time::advance(WINDOW).await;
        assert!(attempts.check("kim").is_ok());
        attempts.failed("kim");
        assert!(attempts.check("kim").is_ok(), "a new window starts afresh");
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_clears_the_failures() {
        let attempts = Attempts::new(2);
        attempts.failed("kim");
        attempts.succeeded("kim");
        attempts.failed("kim");
        assert!(attempts.check("kim").is_ok());
    }
}
