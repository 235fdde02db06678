//! One HTTP/1 connection as [`super::serve`] runs it: the peer's address handed to every request,
//! and a watch that closes the connection when the client keeps it for nothing — a request head
//! that does not arrive within the header timeout (from connecting, or from the first byte of a
//! kept-alive connection's next request), a request body that does not arrive within it either,
//! or no next request within the idle timeout. A response in progress is never timed: a
//! notification stream lasts as long as its client listens.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::Request;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::debug;

use super::HttpConfig;
use crate::problem::Problem;

/// A request body that did not arrive within the header timeout of its head.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

/// Serves one connection until it ends, its watch expires, or `closing` asks it to finish the
/// request in hand and close.
pub(super) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    config: HttpConfig,
    closing: CancellationToken,
) {
    let watch = Arc::new(Watch::new(config));
    let io = TokioIo::new(WatchedIo {
        stream,
        watch: watch.clone(),
    });
    let on_request = watch.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        on_request.request_began();
        let deadline = Instant::now() + config.header_timeout;
        let mut request = request.map(|body| Body::new(TimedBody::new(body, deadline)));
        request.extensions_mut().insert(ConnectInfo(peer));
        let answered = router.clone().oneshot(request);
        let watch = on_request.clone();
        async move {
            let response = answered.await.unwrap_or_else(|never| match never {});
            Ok::<_, Infallible>(response.map(|body| WatchedBody {
                inner: body,
                watch: Some(watch),
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.header_read_timeout(None); // the watch keeps time, for heads and idle waits alike
    let mut connection = pin!(builder.serve_connection(io, service));
    let mut expired = pin!(watch.expired());
    let mut finishing = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    debug!(%peer, error = %e, "connection ended");
                }
                return;
            }
            why = expired.as_mut() => {
                debug!(%peer, reason = why, "connection closed");
                metrics::counter!("tanda_http_connections_timed_out_total", "reason" => why)
                    .increment(1);
                return; // dropping the connection closes the socket
            }
            () = closing.cancelled(), if !finishing => {
                finishing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Answers a connection beyond the cap with a `503` problem and closes it, without reading a
/// request: the client learns at once to come back, and the process keeps its files for the
/// connections it serves.
pub(super) async fn refuse(mut stream: TcpStream) {
    static ANSWER: OnceLock<Vec<u8>> = OnceLock::new();
    let answer = ANSWER.get_or_init(|| {
        let problem = Problem::unavailable(
            "too_many_connections",
            "this server has as many connections open as it serves; retry shortly",
            1,
        );
        let body = serde_json::to_string(&problem).expect("a problem serialises");
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    });
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        // Read what the client sent meanwhile: closing with it unread would reset the
        // connection, and the client could lose the answer.
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// Where a connection stands, and so when it is closed for time.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Nothing in flight and nothing received: closed at the deadline (the idle timeout).
    Idle(Instant),
    /// A request head is arriving (or awaited on a new connection): closed at the deadline
    /// (the header timeout) unless it is complete by then.
    Head(Instant),
    /// Requests whose responses are not yet sent: never closed for time.
    Busy(usize),
}

struct Watch {
    config: HttpConfig,
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Watch {
    fn new(config: HttpConfig) -> Self {
        Self {
            config,
            phase: Mutex::new(Phase::Head(Instant::now() + config.header_timeout)),
            changed: Notify::new(),
        }
    }

    fn update(&self, next: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().expect("connection phase");
        *phase = next(*phase);
        drop(phase);
        self.changed.notify_one();
    }

    /// Bytes came in: on an idle connection, the next request has begun.
    fn bytes_arrived(&self) {
        let idle = matches!(
            *self.phase.lock().expect("connection phase"),
            Phase::Idle(_)
        );
        if idle {
            let deadline = Instant::now() + self.config.header_timeout;
            self.update(|phase| match phase {
                Phase::Idle(_) => Phase::Head(deadline),
                other => other,
            });
        }
    }

    fn request_began(&self) {
        self.update(|phase| match phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
    }

    fn response_ended(&self) {
        let deadline = Instant::now() + self.config.idle_timeout;
        self.update(|phase| match phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            Phase::Busy(_) => Phase::Idle(deadline),
            other => other,
        });
    }

    /// Resolves when the connection is past its deadline, with the reason.
    async fn expired(&self) -> &'static str {
        loop {
            let phase = *self.phase.lock().expect("connection phase");
            let (deadline, reason) = match phase {
                Phase::Busy(_) => {
                    self.changed.notified().await;
                    continue;
                }
                Phase::Head(deadline) => (deadline, "header_timeout"),
                Phase::Idle(deadline) => (deadline, "idle_timeout"),
            };
            if Instant::now() >= deadline {
                return reason;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = self.changed.notified() => {}
            }
        }
    }
}

/// The socket, telling the watch when bytes arrive.
struct WatchedIo {
    stream: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.watch.bytes_arrived();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A request body that fails with [`BodyTimedOut`] if it is still arriving at the deadline.
struct TimedBody {
    inner: Incoming,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    fn new(inner: Incoming, deadline: Instant) -> Self {
        Self {
            inner,
            deadline,
            timer: None,
        }
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that tells the watch when it is done (sent whole, failed or dropped).
struct WatchedBody {
    inner: Body,
    watch: Option<Arc<Watch>>,
}

impl WatchedBody {
    fn done(&mut self) {
        if let Some(watch) = self.watch.take() {
            watch.response_ended();
        }
    }
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) {
            this.done();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.done();
    }
}
