//! Graceful shutdown (DESIGN §5.9) as a small explicit value handed to every task: a cancellation
//! token to stop on, a tracker to wait for, and the readiness flag that turns false first.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct Lifecycle {
    token: CancellationToken,
    tracker: TaskTracker,
    stopping: Arc<AtomicBool>,
}

impl Lifecycle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancelled when background work should stop.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Runs a background task that shutdown will wait for.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// True once shutdown began: `/readyz` answers 503 so load balancers drain this instance.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// First step of shutdown: refuse new traffic (readiness false).
    pub fn begin_shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Last step: stop background work after the unit in hand, and wait for it.
    pub async fn stop_background(&self) {
        self.begin_shutdown();
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
