//! Crash points, for the crash tests: "kill the process right after this request's N-th commit".
//!
//! The tests must kill Tanda between every two commits on a path (the booking, the end of a
//! trip), not only where a timer happens to let them: a path that ever splits what must commit
//! together shows up as a state nobody can leave. A request carrying `tanda-failpoint:
//! exit-after-commit=N` makes the process exit, abruptly and at once (no shutdown, nothing
//! flushed: as SIGKILL would), once the N-th unit of work it commits has committed. Units the
//! request's task commits count (in all-in-one, dispatch's in-process call to pay included);
//! background work does not.
//!
//! Only a build with the `failpoints` feature honours the header, and only the test build turns
//! it on (the `tanda` package's dev-dependency on this crate): `cargo build --release`, and so
//! every binary that ships, carries none of it.

#[cfg(feature = "failpoints")]
#[expect(
    unsafe_code,
    reason = "`_exit` is the only way to die as abruptly as SIGKILL"
)]
mod armed {
    use std::cell::Cell;

    use axum::extract::Request;
    use axum::middleware::Next;
    use axum::response::Response;

    /// The request header that arms a crash point.
    pub const HEADER: &str = "tanda-failpoint";

    tokio::task_local! {
        /// Commits left before the process exits, for the request this task serves.
        static COMMITS_LEFT: Cell<u32>;
    }

    /// Middleware: serves a request carrying `tanda-failpoint: exit-after-commit=N` with its
    /// crash point armed.
    pub async fn arm(request: Request, next: Next) -> Response {
        let commits = request
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("exit-after-commit="))
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| *n > 0);
        match commits {
            Some(n) => COMMITS_LEFT.scope(Cell::new(n), next.run(request)).await,
            None => next.run(request).await,
        }
    }

    /// Called once a unit of work has committed.
    pub fn committed() {
        let _ = COMMITS_LEFT.try_with(|left| {
            left.set(left.get() - 1);
            if left.get() == 0 {
                eprintln!("failpoint: exiting after a commit, as if killed");
                // `_exit`: no destructors, no buffered writes, no shutdown; what is committed
                // is all that survives, as after SIGKILL.
                unsafe { libc_exit(137) }
            }
        });
    }

    unsafe extern "C" {
        #[link_name = "_exit"]
        fn libc_exit(status: i32) -> !;
    }
}

#[cfg(feature = "failpoints")]
pub use armed::{HEADER, arm, committed};

/// Called once a unit of work has committed: nothing, in a build without crash points.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn committed() {}
