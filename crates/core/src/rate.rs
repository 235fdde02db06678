//! Per-caller rate limits: a caller's writes (POST, PUT, PATCH, DELETE) beyond a steady rate and
//! a burst are answered `429` with `Retry-After`. Each caller's allowance is one instant (GCRA:
//! when its bucket would be empty again), kept in a map that never grows past a fixed number of
//! callers, so a stranger with many addresses cannot make it hold unbounded memory.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

/// Who a request is counted against, set by a layer that knows better than the peer's address
/// (authentication: the user id). [`rate_key`] prefers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateKey(pub String);

/// The caller `request` is counted against: its [`RateKey`] when a layer before set one, else its
/// peer's address (an IPv6 peer by its /64 network, which one subscriber holds whole), else
/// `unknown`.
pub fn rate_key<B>(request: &axum::http::Request<B>) -> String {
    if let Some(RateKey(key)) = request.extensions().get::<RateKey>() {
        return key.clone();
    }
    match request.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => match peer.ip().to_canonical() {
            IpAddr::V4(ip) => format!("ip:{ip}"),
            IpAddr::V6(ip) => {
                let network = Ipv6Addr::from(u128::from(ip) & (u128::MAX << 64));
                format!("ip:{network}/64")
            }
        },
        None => "unknown".to_owned(),
    }
}

/// A steady rate and the burst allowed on top of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Callers whose allowance is remembered at most; past it the callers closest to a full
/// allowance are forgotten (which gives them a full one: no more than a fresh caller gets).
pub const MAX_CALLERS: usize = 100_000;

/// Allowances by caller.
pub struct RateLimiter {
    /// Time one request uses up.
    interval: Duration,
    /// How far ahead of now a caller's allowance may be spent: the burst.
    tolerance: Duration,
    capacity: usize,
    /// When each caller's allowance is whole again; a time already past means whole.
    callers: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self::with_capacity(limit, MAX_CALLERS)
    }

    /// `limit` with at most `capacity` callers remembered.
    pub fn with_capacity(limit: RateLimit, capacity: usize) -> Self {
        let interval = Duration::from_secs(1) / limit.per_second.max(1);
        Self {
            interval,
            tolerance: interval * limit.burst.max(1),
            capacity: capacity.max(8),
            callers: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `key` at `now`: `Err` with how long until it may try again when it
    /// is over its limit (and then it is not counted).
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut callers = self.callers.lock().expect("rate limiter");
        let whole_at = callers.get(key).copied().filter(|t| *t > now);
        let next = whole_at.unwrap_or(now) + self.interval;
        if next > now + self.tolerance {
            return Err(next - (now + self.tolerance));
        }
        match callers.get_mut(key) {
            Some(at) => *at = next,
            None => {
                if callers.len() >= self.capacity {
                    self.make_room(&mut callers, now);
                }
                callers.insert(key.to_owned(), next);
            }
        }
        Ok(())
    }

    /// Callers remembered now.
    pub fn callers(&self) -> usize {
        self.callers.lock().expect("rate limiter").len()
    }

    /// Forgets every caller whose allowance is whole (remembering it changes nothing); if that
    /// frees less than an eighth of the room, also the callers closest to whole, down to seven
    /// eighths, so that making room is rare however many callers there are.
    fn make_room(&self, callers: &mut HashMap<String, Instant>, now: Instant) {
        callers.retain(|_, at| *at > now);
        let keep = self.capacity - self.capacity / 8;
        if callers.len() > keep {
            let mut times: Vec<Instant> = callers.values().copied().collect();
            let drop = times.len() - keep;
            let (_, cut, _) = times.select_nth_unstable(drop - 1);
            let cut = *cut;
            callers.retain(|_, at| *at > cut);
        }
    }
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Middleware: a caller's ([`rate_key`]) writes beyond `limiter`'s limit are answered `429`
/// (`rate_limited`) with `Retry-After`, before their body is read. Reads pass.
pub async fn limit_writes(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    if is_write(request.method())
        && let Err(wait) = limiter.check(&rate_key(&request), Instant::now())
    {
        metrics::counter!("tanda_http_rate_limited_total").increment(1);
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Problem::too_many_requests(
            "rate_limited",
            "too many changes from this caller; retry after the time in Retry-After",
            secs.max(1),
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 10,
        burst: 5,
    };

    #[test]
    fn a_burst_passes_then_the_steady_rate() {
        let limiter = RateLimiter::new(LIMIT);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(limiter.check("a", t0), Ok(()));
        }
        let wait = limiter.check("a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // Another caller has its own allowance.
        assert_eq!(limiter.check("b", t0), Ok(()));
        // One interval later, one more; not two.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(limiter.check("a", t1), Ok(()));
        assert!(limiter.check("a", t1).is_err());
        // Long idle: the whole burst again.
        let t2 = t1 + Duration::from_secs(10);
        for _ in 0..5 {
            assert_eq!(limiter.check("a", t2), Ok(()));
        }
        assert!(limiter.check("a", t2).is_err());
    }

    #[test]
    fn a_refused_request_does_not_use_up_the_allowance() {
        let limiter = RateLimiter::new(LIMIT);
        let t0 = Instant::now();
        for _ in 0..5 {
            limiter.check("a", t0).unwrap();
        }
        for _ in 0..100 {
            assert!(limiter.check("a", t0).is_err());
        }
        assert_eq!(limiter.check("a", t0 + Duration::from_millis(100)), Ok(()));
    }

    #[test]
    fn many_callers_never_grow_the_map_past_its_capacity() {
        let limiter = RateLimiter::with_capacity(LIMIT, 1000);
        let t0 = Instant::now();
        // Each a microsecond after the last, all within one interval (100 ms): every one of
        // them is still active, none idle to forget first.
        let at = |i: u64| t0 + Duration::from_micros(i);
        for i in 0..1000 {
            limiter.check(&format!("caller-{i}"), at(i)).unwrap();
        }
        assert_eq!(limiter.callers(), 1000);
        // Full: room is made an eighth at once (so rarely), the earliest callers going first.
        limiter.check("caller-1000", at(1000)).unwrap();
        assert_eq!(limiter.callers(), 1000 - 1000 / 8 + 1);
        for i in 1001..50_000 {
            limiter.check(&format!("caller-{i}"), at(i)).unwrap();
            assert!(limiter.callers() <= 1000);
        }
    }

    #[test]
    fn idle_callers_are_forgotten_before_active_ones() {
        let limiter = RateLimiter::with_capacity(LIMIT, 100);
        let t0 = Instant::now();
        // One busy caller, its burst spent.
        for _ in 0..5 {
            limiter.check("busy", t0).unwrap();
        }
        for i in 0..99 {
            limiter.check(&format!("once-{i}"), t0).unwrap();
        }
        // 150 ms later the others are whole again; the busy one has one request back, not five.
        let t1 = t0 + Duration::from_millis(150);
        limiter.check("newcomer", t1).unwrap();
        assert_eq!(limiter.callers(), 2, "the busy caller and the newcomer");
        assert_eq!(limiter.check("busy", t1), Ok(()));
        assert!(
            limiter.check("busy", t1).is_err(),
            "the busy caller was forgotten"
        );
    }

    fn request_from(peer: &str, key: Option<&str>) -> axum::http::Request<()> {
        let mut request = axum::http::Request::new(());
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        if let Some(key) = key {
            request.extensions_mut().insert(RateKey(key.to_owned()));
        }
        request
    }

    #[test]
    fn the_key_is_the_rate_key_else_the_peer_address() {
        assert_eq!(
            rate_key(&request_from("10.1.2.3:4000", Some("user:ana"))),
            "user:ana"
        );
        assert_eq!(
            rate_key(&request_from("10.1.2.3:4000", None)),
            "ip:10.1.2.3"
        );
        assert_eq!(
            rate_key(&request_from("[::ffff:10.1.2.3]:4000", None)),
            "ip:10.1.2.3"
        );
        // Every address of one /64 is one caller.
        assert_eq!(
            rate_key(&request_from("[2001:db8:1:2:aaaa::1]:4000", None)),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(
            rate_key(&request_from("[2001:db8:1:2:bbbb::9]:4000", None)),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(rate_key(&axum::http::Request::new(())), "unknown");
    }
}
