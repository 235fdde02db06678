//! The HTTP host as a stranger meets it: request metrics that made-up requests cannot grow, and
//! connections that cannot be held open for nothing, nor opened beyond a cap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use axum::routing::get;
use futures::StreamExt;
use tanda_core::host::{HttpConfig, metrics_handle, serve, with_common_layers};
use tanda_core::lifecycle::Lifecycle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tower::ServiceExt;

/// The distinct `tanda_http_requests_total` series the recorder holds now.
fn request_series() -> usize {
    metrics_handle()
        .render()
        .lines()
        .filter(|line| line.starts_with("tanda_http_requests_total{"))
        .count()
}

#[tokio::test]
async fn made_up_methods_do_not_grow_the_request_metrics() {
    metrics_handle(); // the recorder, installed before anything is recorded
    let router = with_common_layers(Router::new().route("/things", get(|| async { "ok" })));
    let send = async |method: Method, path: &str| {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        router.clone().oneshot(request).await.unwrap().status()
    };
    // Every kind of answer once, with real methods, so the series they need exist.
    for method in [Method::GET, Method::POST, Method::DELETE] {
        send(method.clone(), "/things").await;
        send(method, "/nowhere").await;
    }
    let before = request_series();

    for i in 0..300 {
        let method = Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        send(method.clone(), "/things").await;
        send(method, &format!("/nowhere/{i}")).await;
    }

    let after = request_series();
    assert!(
        after <= before + 2,
        "300 made-up methods grew the request series from {before} to {after}"
    );
    let metrics = metrics_handle().render();
    assert!(
        !metrics.contains("MADEUP"),
        "a made-up method became a label"
    );
    assert!(metrics.contains("method=\"other\""));
}

// ---- serving: timeouts, the connection cap, the peer address, graceful shutdown ----

/// A server on a free port with `config`, and what stops it.
struct Server {
    addr: SocketAddr,
    lifecycle: Lifecycle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Told when a request reaches `/slow`'s handler.
    slow_arrived: Arc<Notify>,
}

async fn start(config: HttpConfig) -> Server {
    let slow_arrived = Arc::new(Notify::new());
    let arrived = slow_arrived.clone();
    let router = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route(
            "/slow",
            get(move || {
                arrived.notify_one();
                async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    "done"
                }
            }),
        )
        .route(
            "/echo",
            axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
        .route(
            "/stream",
            get(|| async {
                // Ten chunks over a second: longer than the idle timeout of the tests.
                let ticks = futures::stream::iter(0..10).then(|i| async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, std::io::Error>(format!("tick{i};"))
                });
                Body::from_stream(ticks)
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let lifecycle = Lifecycle::new();
    let task = tokio::spawn(serve(listener, router, lifecycle.clone(), config));
    Server {
        addr,
        lifecycle,
        task,
        slow_arrived,
    }
}

fn config(header_timeout_ms: u64, idle_timeout_ms: u64, max_connections: usize) -> HttpConfig {
    HttpConfig {
        header_timeout: Duration::from_millis(header_timeout_ms),
        idle_timeout: Duration::from_millis(idle_timeout_ms),
        max_connections,
        drain_delay: Duration::ZERO,
    }
}

/// Far longer than any timeout the tests configure: only a connection held forever exceeds it.
const EVENTUALLY: Duration = Duration::from_secs(10);

/// Reads until the server closes the connection; fails if it is still open after [`EVENTUALLY`].
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(EVENTUALLY, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the connection is still open after {EVENTUALLY:?}"
    );
    String::from_utf8_lossy(&seen).into_owned()
}

/// Sends `GET path` on a kept-alive connection and reads one whole response (a length or
/// chunked body).
async fn get_on(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(EVENTUALLY, async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed mid-response: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).to_lowercase();
            let Some(end) = text.find("\r\n\r\n") else {
                continue;
            };
            let length = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap());
            let complete = match length {
                Some(length) => seen.len() >= end + 4 + length,
                None => text.ends_with("0\r\n\r\n"),
            };
            if complete {
                break;
            }
        }
    })
    .await
    .expect("a whole response");
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn a_connection_that_sends_nothing_or_half_a_head_is_closed() {
    let server = start(config(300, 60_000, 100)).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut halting = TcpStream::connect(server.addr).await.unwrap();
    halting
        .write_all(b"GET /hello HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    until_closed(&mut silent).await;
    until_closed(&mut halting).await;
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_given_up_on() {
    let server = start(config(300, 60_000, 100)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nonly ten..")
        .await
        .unwrap();
    let answer = until_closed(&mut stream).await;
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_but_a_long_response_is_not() {
    let server = start(config(10_000, 300, 100)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // A response that lasts a second, over three idle timeouts: it arrives whole.
    let streamed = get_on(&mut stream, "/stream").await;
    assert!(streamed.starts_with("HTTP/1.1 200"), "{streamed}");
    for i in 0..10 {
        assert!(streamed.contains(&format!("tick{i};")), "{streamed}");
    }
    // Then nothing: the connection is closed.
    until_closed(&mut stream).await;
}

#[tokio::test]
async fn waiting_for_the_next_request_is_not_held_to_the_header_timeout() {
    let server = start(config(300, 30_000, 100)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    assert!(get_on(&mut stream, "/hello").await.ends_with("hello"));
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(get_on(&mut stream, "/hello").await.ends_with("hello"));
}

#[tokio::test]
async fn a_connection_beyond_the_cap_gets_a_503_problem_and_is_closed() {
    let server = start(config(10_000, 60_000, 2)).await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    assert!(get_on(&mut first, "/hello").await.ends_with("hello"));
    assert!(get_on(&mut second, "/hello").await.ends_with("hello"));

    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let _ = third
        .write_all(b"GET /hello HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let answer = until_closed(&mut third).await;
    let lower = answer.to_lowercase();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        lower.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(lower.contains("retry-after: 1\r\n"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let problem: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(problem["code"], "too_many_connections");
    assert_eq!(problem["status"], 503);

    // The connections within the cap are still served, and a closed one frees its place.
    assert!(get_on(&mut second, "/hello").await.ends_with("hello"));
    drop(first);
    let started = std::time::Instant::now();
    loop {
        let mut next = TcpStream::connect(server.addr).await.unwrap();
        let _ = next
            .write_all(b"GET /hello HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await;
        let answer = until_closed(&mut next).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(started.elapsed() < EVENTUALLY, "no place freed: {answer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_request_knows_its_peer_address() {
    let server = start(HttpConfig::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let me = stream.local_addr().unwrap();
    let answer = get_on(&mut stream, "/peer").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(&me.to_string()), "{answer}");
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight_then_stops() {
    let server = start(HttpConfig::default()).await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    assert!(get_on(&mut idle, "/hello").await.ends_with("hello"));
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    let in_flight = tokio::spawn(async move { get_on(&mut busy, "/slow").await });
    server.slow_arrived.notified().await;

    server.lifecycle.token().cancel();
    let answer = in_flight.await.unwrap();
    assert!(answer.ends_with("done"), "{answer}");
    until_closed(&mut idle).await;
    tokio::time::timeout(EVENTUALLY, server.task)
        .await
        .expect("serve returns")
        .unwrap()
        .unwrap();
    assert!(server.lifecycle.is_stopping());
    assert!(TcpStream::connect(server.addr).await.is_err());
}
