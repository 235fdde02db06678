//! The load generator every figure shares, the baselines included: closed-loop workers, each on
//! its own keep-alive HTTP/1.1 connection, all driven from one task (so the generator takes at
//! most one core and the system under test has the rest), recording each operation's latency.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// The bearer token every connection sends: the operator's, on the target in hand (the bench
/// measures one target at a time, each with its own keys). See [`sign_in`].
static TOKEN: std::sync::RwLock<Option<HeaderValue>> = std::sync::RwLock::new(None);

/// Signs in as the operator at `addr`, so that every connection from now on calls as the
/// operator (who may act for every customer and driver the scenarios invent), as any client
/// of the API must.
pub async fn sign_in(addr: SocketAddr, password: &str) -> anyhow::Result<()> {
    let mut conn = Conn::new(addr);
    let body = serde_json::json!({"username": "operator", "password": password});
    let answer = conn
        .post("/auth/token", &body, StatusCode::OK)
        .await
        .map_err(|f| anyhow::anyhow!("signing in as the operator at {addr}: {}", f.0))?;
    let token = answer["access_token"]
        .as_str()
        .context("the token answer has no access_token")?;
    let value = HeaderValue::from_str(&format!("Bearer {token}"))?;
    *TOKEN.write().expect("token lock") = Some(value);
    Ok(())
}

/// Forgets the token: the next target has keys of its own, and a token it cannot verify would be
/// refused even on its public routes.
pub fn sign_out() {
    *TOKEN.write().expect("token lock") = None;
}

/// One keep-alive connection to the system under test.
pub struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    send: Option<SendRequest<Full<Bytes>>>,
    /// Requests sent on this connection, for "HTTP requests per operation".
    pub requests: u64,
}

/// Why an operation failed: an answer it did not expect, or no answer.
#[derive(Debug)]
pub struct Failure(pub String);

impl Failure {
    fn answer(status: StatusCode, body: &[u8]) -> Self {
        let code = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        Failure(format!("{} {code}", status.as_u16()).trim().to_owned())
    }
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(format!("no answer: {e}"))
    }
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: HeaderValue::from_str(&addr.to_string()).expect("an address is a valid host"),
            send: None,
            requests: 0,
        }
    }

    async fn sender(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if self.send.as_ref().is_none_or(SendRequest::is_closed) {
            let stream = TcpStream::connect(self.addr)
                .await
                .with_context(|| format!("connecting to {}", self.addr))?;
            stream.set_nodelay(true)?;
            let (send, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            self.send = Some(send);
        }
        let send = self.send.as_mut().expect("just connected");
        send.ready().await?;
        Ok(send)
    }

    /// One request; the status and the whole body.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.host.clone());
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = TOKEN.read().expect("token lock").clone() {
            request = request.header(header::AUTHORIZATION, token);
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        self.requests += 1;
        let response = match self.sender().await?.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                self.send = None;
                return Err(e.into());
            }
        };
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }

    /// A call that must answer `expected`; its JSON body.
    pub async fn expect(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        expected: StatusCode,
    ) -> Result<Value, Failure> {
        let body = body.map(|b| Bytes::from(serde_json::to_vec(b).expect("plain JSON")));
        let (status, bytes) = self.call(method, path, body).await?;
        if status != expected {
            return Err(Failure::answer(status, &bytes));
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn get(&mut self, path: &str) -> Result<Value, Failure> {
        self.expect(Method::GET, path, None, StatusCode::OK).await
    }

    pub async fn post(
        &mut self,
        path: &str,
        body: &Value,
        expected: StatusCode,
    ) -> Result<Value, Failure> {
        self.expect(Method::POST, path, Some(body), expected).await
    }
}

/// What a run measured: the latency of each successful operation, and the failures by kind.
#[derive(Debug, Default)]
pub struct Samples {
    micros: Vec<u32>,
    pub failures: BTreeMap<String, u64>,
    pub requests: u64,
    pub elapsed: Duration,
}

impl Samples {
    pub fn ok(&self) -> u64 {
        self.micros.len() as u64
    }

    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        self.ok() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0..=1), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.micros.is_empty() {
            return 0.0;
        }
        let i = ((self.micros.len() - 1) as f64 * q).round() as usize;
        f64::from(self.micros[i]) / 1000.0
    }

    pub fn failures_text(&self) -> String {
        if self.failures.is_empty() {
            return "none".to_owned();
        }
        self.failures
            .iter()
            .map(|(kind, n)| format!("{n} × {kind}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A kind of operation the workers repeat.
pub trait Operation {
    /// Performs operation number `n` as worker `worker`.
    async fn run(&self, conn: &mut Conn, worker: usize, n: u64) -> Result<(), Failure>;
}

/// Runs `op` from `workers` connections at once until `operations` have been started or
/// `duration` has passed, whichever comes first.
pub async fn closed_loop(
    addr: SocketAddr,
    workers: usize,
    duration: Duration,
    operations: u64,
    op: &impl Operation,
) -> Samples {
    let started = Instant::now();
    let until = started + duration;
    let next = std::cell::Cell::new(0u64);
    let take = || {
        let n = next.get();
        (n < operations && Instant::now() < until).then(|| {
            next.set(n + 1);
            n
        })
    };
    let runs = (0..workers).map(|worker| {
        let take = &take;
        async move {
            let mut conn = Conn::new(addr);
            let mut mine = Samples::default();
            while let Some(n) = take() {
                let t0 = Instant::now();
                match op.run(&mut conn, worker, n).await {
                    Ok(()) => mine
                        .micros
                        .push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32),
                    Err(Failure(kind)) => *mine.failures.entry(kind).or_default() += 1,
                }
            }
            mine.requests = conn.requests;
            mine
        }
    });
    let all = futures::future::join_all(runs).await;
    let mut samples = Samples {
        elapsed: started.elapsed(),
        ..Samples::default()
    };
    for s in all {
        samples.micros.extend(s.micros);
        samples.requests += s.requests;
        for (kind, n) in s.failures {
            *samples.failures.entry(kind).or_default() += n;
        }
    }
    samples.micros.sort_unstable();
    samples
}

/// Waits `d` without holding the connection's turn (between polls of a flow's state).
pub async fn pause(d: Duration) {
    tokio::time::sleep(d).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_rates_read_off_the_samples() {
        let s = Samples {
            micros: (1..=100).map(|ms| ms * 1000).collect(),
            failures: BTreeMap::from([("503 no_taxi_available".to_owned(), 2)]),
            requests: 102,
            elapsed: Duration::from_secs(2),
        };
        assert_eq!(s.ok(), 100);
        assert_eq!(s.rate(), 50.0);
        assert_eq!(s.quantile_ms(0.5), 51.0);
        assert_eq!(s.quantile_ms(0.99), 99.0);
        assert_eq!(s.quantile_ms(1.0), 100.0);
        assert_eq!(s.failures_text(), "2 × 503 no_taxi_available");
    }
}
