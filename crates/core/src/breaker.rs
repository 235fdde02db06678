//! A circuit breaker on tokio's clock (so tests can pause time): after `failure_threshold`
//! consecutive failures it opens and fails fast for `open_for`, then lets one trial call through
//! (half-open); the trial's outcome closes or re-opens it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 half-open, 2 open: the `/metrics` gauge value.
    /// `CLOSED`, `OPEN` or `HALF_OPEN`, as `/admin/services` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "CLOSED",
            Self::Open => "OPEN",
            Self::HalfOpen => "HALF_OPEN",
        }
    }

    pub fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

#[derive(Debug)]
pub struct CircuitBreaker {
    failure_threshold: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// The breaker refused the call; retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub retry_after: Duration,
}

impl CircuitBreaker {
    pub fn new(failure_threshold: u32, open_for: Duration) -> Self {
        Self {
            failure_threshold: failure_threshold.max(1),
            open_for,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    pub fn state(&self) -> BreakerState {
        let mut inner = self.inner.lock().expect("breaker lock is never poisoned");
        Self::refresh(&mut inner);
        match *inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn refresh(inner: &mut Inner) {
        if let Inner::Open { until } = *inner
            && Instant::now() >= until
        {
            *inner = Inner::HalfOpen {
                trial_in_flight: false,
            };
        }
    }

    /// Asks to make a call. Report its outcome with [`Self::on_success`] or [`Self::on_failure`].
    pub fn acquire(&self) -> Result<(), Rejected> {
        let mut inner = self.inner.lock().expect("breaker lock is never poisoned");
        Self::refresh(&mut inner);
        match &mut *inner {
            Inner::Closed { .. } => Ok(()),
            Inner::Open { until } => Err(Rejected {
                retry_after: until.saturating_duration_since(Instant::now()),
            }),
            Inner::HalfOpen { trial_in_flight } if *trial_in_flight => Err(Rejected {
                retry_after: self.open_for,
            }),
            Inner::HalfOpen { trial_in_flight } => {
                *trial_in_flight = true;
                Ok(())
            }
        }
    }

    pub fn on_success(&self) {
        *self.inner.lock().expect("breaker lock is never poisoned") = Inner::Closed { failures: 0 };
    }

    pub fn on_failure(&self) {
        let mut inner = self.inner.lock().expect("breaker lock is never poisoned");
        let open = Inner::Open {
            until: Instant::now() + self.open_for,
        };
        *inner = match *inner {
            Inner::Closed { failures } if failures + 1 < self.failure_threshold => Inner::Closed {
                failures: failures + 1,
            },
            _ => open,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_then_half_opens_after_the_wait() {
        let b = CircuitBreaker::new(3, Duration::from_secs(10));
        for _ in 0..2 {
            b.acquire().unwrap();
            b.on_failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.acquire().unwrap();
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Open);
        let rejected = b.acquire().unwrap_err();
        assert_eq!(rejected.retry_after, Duration::from_secs(10));

        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.acquire().unwrap();
        assert!(b.acquire().is_err(), "only one trial call while half-open");
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Open);

        tokio::time::advance(Duration::from_secs(10)).await;
        b.acquire().unwrap();
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_failure_count() {
        let b = CircuitBreaker::new(2, Duration::from_secs(1));
        b.on_failure();
        b.on_success();
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
