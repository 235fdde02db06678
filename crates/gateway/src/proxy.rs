//! Forwarding: which service owns which paths, sending a request on to it, and relaying its answer
//! as it streams (notification streams included) without holding it in memory.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, Method, Uri, header};
use axum::response::Response;
use axum::routing::{any, get};
use reqwest::Url;

use tanda_core::lifecycle::Lifecycle;
use tanda_core::service::{Forward, ServiceSpec};

use crate::balance::Instances;
use crate::error::Error;

/// How long a service may take to accept a connection. Requests themselves have no time limit:
/// a notification stream stays open as long as its client listens.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Headers about one connection rather than the message (RFC 9110 §7.6.1): never passed on.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Where each service listens, as base URLs such as `http://127.0.0.1:8081`, beside what it owns.
/// A path in a base is kept as a prefix: with `http://10.0.0.5/book`, `/books/1` goes to
/// `http://10.0.0.5/book/books/1`. Several services may share one base; a service listed more
/// than once has several instances, among which requests are balanced (`balance.rs`).
#[derive(Debug, Clone)]
pub struct Upstreams(Vec<(&'static ServiceSpec, Arc<Instances>)>);

impl Upstreams {
    /// Each service with the base URL of each of its instances, in the order the registry lists
    /// them (a service's instances in the order given).
    pub fn new(services: Vec<(&'static ServiceSpec, Url)>) -> Self {
        let mut grouped: Vec<(&'static ServiceSpec, Vec<Url>)> = Vec::new();
        for (spec, base) in services {
            match grouped.iter_mut().find(|(s, _)| s.name == spec.name) {
                Some((_, bases)) if !bases.contains(&base) => bases.push(base),
                Some(_) => {}
                None => grouped.push((spec, vec![base])),
            }
        }
        Self(
            grouped
                .into_iter()
                .map(|(spec, bases)| (spec, Arc::new(Instances::new(spec.name, bases))))
                .collect(),
        )
    }

    /// Follows the readiness of every service with more than one instance until shutdown.
    pub fn watch(&self, lifecycle: &Lifecycle) {
        let client = client();
        for (_, instances) in &self.0 {
            instances.watch(&client, lifecycle);
        }
    }

    /// One upstream per distinct set of instances, so that a process serving several services
    /// is asked once.
    pub(crate) fn distinct(&self, client: &reqwest::Client) -> Vec<Upstream> {
        let mut distinct: Vec<Upstream> = Vec::new();
        for (_, instances) in &self.0 {
            if distinct
                .iter()
                .all(|u| !u.instances.bases().eq(instances.bases()))
            {
                distinct.push(Upstream::new(instances, client));
            }
        }
        distinct
    }
}

/// The one connection pool to every service: plain HTTP, no proxy from the environment, and
/// redirects passed back to the client rather than followed.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        // Before the services' idle timeout closes them, so a request never races the close.
        .pool_idle_timeout(Duration::from_secs(30))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a plain-HTTP client has no TLS backend that could fail to start")
}

/// The routes of every service's paths, each forwarding to its owner. A method a path does not
/// forward is the gateway's `405 method_not_allowed`, and never reaches the service.
pub(crate) fn routes(upstreams: &Upstreams, client: &reqwest::Client) -> Router {
    let mut router = Router::new();
    for (spec, instances) in &upstreams.0 {
        let upstream = Upstream::new(instances, client);
        for owned in spec.paths {
            let forward = match owned.forward {
                Forward::All => any(forward),
                Forward::Reads => get(forward),
            }
            .with_state(upstream.clone());
            router = router
                .route(owned.path, forward.clone())
                .route(&format!("{}/{{*rest}}", owned.path), forward);
        }
    }
    router
}

/// Request bodies are small (the gateway's body limit) and read whole, so that one too large is
/// refused cleanly before anything reaches a service; answers stream.
async fn forward(
    State(upstream): State<Upstream>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Error> {
    let answer = upstream.send(method, &uri, &headers, body?).await?;
    Ok(relay(answer))
}

/// One service behind the gateway, with its instances.
#[derive(Clone)]
pub(crate) struct Upstream {
    pub name: &'static str,
    instances: Arc<Instances>,
    client: reqwest::Client,
}

impl Upstream {
    fn new(instances: &Arc<Instances>, client: &reqwest::Client) -> Self {
        Self {
            name: instances.service,
            instances: instances.clone(),
            client: client.clone(),
        }
    }

    /// Sends a client's request (its path and query below this service's base) to one instance
    /// and waits for the answer's head; the body is read as the caller consumes it. A request
    /// that reached no instance (refused, or no connection made) goes on to the next one; one
    /// that may have reached it goes on only when repeating it is harmless: a read, or a write
    /// with an `Idempotency-Key` (the service answers a repeat with the first answer).
    pub async fn send(
        &self,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<reqwest::Response, Error> {
        let mut headers = end_to_end(headers);
        // The client sets both for the new connection and body.
        headers.remove(header::HOST);
        headers.remove(header::CONTENT_LENGTH);
        let repeatable = method.is_safe() || headers.contains_key(IDEMPOTENCY_KEY);
        let mut failed = None;
        for i in self.instances.order() {
            let sent = self
                .client
                .request(method.clone(), self.url(i, uri))
                .headers(headers.clone())
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    let unreached = e.is_connect();
                    if unreached {
                        self.instances.set_aside(i);
                    }
                    let again = unreached || repeatable;
                    failed = Some(e);
                    if !again {
                        break;
                    }
                }
            }
        }
        Err(Error::Unreachable {
            service: self.name,
            source: failed.expect("a service has at least one instance"),
        })
    }

    /// Where `uri` is on instance `i`.
    fn url(&self, i: usize, uri: &Uri) -> Url {
        let base = self.instances.base(i);
        let mut url = base.clone();
        url.set_path(&format!(
            "{}{}",
            base.path().trim_end_matches('/'),
            uri.path()
        ));
        url.set_query(uri.query());
        url
    }
}

/// The header that makes a write safe to send again.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// A service's answer as the gateway's: same status, end-to-end headers and body, streamed.
/// Dropping the response (the client went away) drops the upstream connection with it.
pub(crate) fn relay(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let headers = end_to_end(answer.headers());
    let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// `headers` without the hop-by-hop ones, including any that `Connection` names.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<&str> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    headers
        .iter()
        .filter(|(name, _)| {
            !HOP_BY_HOP.contains(name)
                && !named.iter().any(|n| name.as_str().eq_ignore_ascii_case(n))
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Trace-Hop"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-trace-hop", HeaderValue::from_static("1"));
        headers.insert("idempotency-key", HeaderValue::from_static("k1"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));

        let kept = end_to_end(&headers);

        let names: Vec<_> = kept.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["idempotency-key", "set-cookie"]);
        assert_eq!(kept.get_all(header::SET_COOKIE).iter().count(), 2);
    }

    #[test]
    fn services_sharing_a_base_are_asked_once() {
        let one: Url = "http://127.0.0.1:9001".parse().unwrap();
        let other: Url = "http://127.0.0.1:9002".parse().unwrap();
        let spec = |name| tanda_registry::spec(name).unwrap();
        let upstreams = Upstreams::new(vec![
            (spec("book"), one.clone()),
            (spec("dispatch"), other.clone()),
            (spec("pay"), one),
            (spec("notify"), other),
        ]);
        let names: Vec<_> = upstreams
            .distinct(&client())
            .iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["book", "dispatch"]);
    }
}
