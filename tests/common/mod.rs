//! Black-box test harness: a whole Tanda on a random port with a temp data dir, spoken to only
//! through its public HTTP API — in-process ([`TestApp`]) or as a real child process that can be
//! killed with SIGKILL ([`Proc`]).
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tanda::cluster::Cluster;
use tanda::config::Distributed;
use tanda::{App, RunConfig};

pub const CITY_HALL: (f64, f64) = (37.5663, 126.9779);
pub const GANGNAM: (f64, f64) = (37.4979, 127.0276);
pub const GOOD_CARD: &str = "4242424242424242";
pub const DECLINED_CARD: &str = "4000000000000002";

/// Config for tests: a free port, the given data dir, timers short enough to test but long
/// enough not to fire by accident, no write limit.
pub fn test_config(data_dir: &Path) -> RunConfig {
    let mut c = RunConfig::defaults();
    c.http_addr = Some("127.0.0.1:0".parse().unwrap());
    c.data_dir = data_dir.to_path_buf();
    c.services.dispatch.offer_timeout = Duration::from_secs(30);
    c.services.dispatch.search.deadline = Duration::from_secs(60);
    // No load balancer to wait for: a test stops its processes at once.
    c.http.drain_delay = Duration::ZERO;
    c.services.book.no_taxi_retry_after = Duration::from_secs(7);
    // Dispatch's patience with pay: long enough that a loaded test machine's slowness is not taken
    // for pay's outage (answered 503 "end it again"), which the scenarios asking for one cause
    // themselves (the card network down, pay killed).
    c.services.dispatch.payment.timeout = Duration::from_secs(10);
    c.services.identity.operator_password = Some(OPERATOR_PASSWORD.to_owned());
    // The scenarios send, from one address, what many customers and drivers would send from
    // many: no per-caller write limit (the gateway's own tests cover it).
    c.edge.write_rate_limit = 0;
    c
}

/// The operator's password in every test's Tanda.
pub const OPERATOR_PASSWORD: &str = "operator-test-password";

pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
pub const NATS: &str = "nats://127.0.0.1:4222";

/// Where a scenario runs: the same scenarios run on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One process, SQLite, in-process events.
    AllInOne,
    /// Every service its own process on PostgreSQL and NATS JetStream, behind the gateway.
    Distributed,
}

/// Instantiates scenarios (`async fn name(t: Topology)` in module `$module`) as tests.
#[macro_export]
macro_rules! tests_on {
    ($topology:ident, $module:ident: $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                $module::$name(common::Topology::$topology).await
            }
        )*
    };
}

pub struct TestApp {
    pub api: Api,
    running: Option<Running>,
    _dir: tempfile::TempDir,
}

enum Running {
    InProcess(App),
    Cluster(Box<Cluster>, Distributed),
}

impl TestApp {
    pub async fn spawn(t: Topology) -> Self {
        Self::spawn_with(t, |_| {}).await
    }

    pub async fn spawn_with(t: Topology, tweak: impl FnOnce(&mut RunConfig)) -> Self {
        match t {
            Topology::AllInOne => {
                let dir = tempfile::tempdir().unwrap();
                let mut config = test_config(dir.path());
                tweak(&mut config);
                let app = App::start(config).await.expect("tanda starts");
                Self {
                    api: Api::new(format!("http://{}", app.addr())),
                    running: Some(Running::InProcess(app)),
                    _dir: dir,
                }
            }
            Topology::Distributed => Self::spawn_cluster(NATS, tweak).await,
        }
    }

    /// The distributed topology on the given NATS server (fault tests bring their own, so that
    /// they can stop it), in a namespace of its own on the shared PostgreSQL.
    pub async fn spawn_cluster(nats_url: &str, tweak: impl FnOnce(&mut RunConfig)) -> Self {
        Self::spawn_cluster_on(POSTGRES, nats_url, tweak).await
    }

    /// The distributed topology on the given PostgreSQL and NATS servers.
    pub async fn spawn_cluster_on(
        postgres_url: &str,
        nats_url: &str,
        tweak: impl FnOnce(&mut RunConfig),
    ) -> Self {
        Self::spawn_replicated(postgres_url, nats_url, 1, tweak).await
    }

    /// The distributed topology with `replicas` instances of every service, started at once.
    pub async fn spawn_replicated(
        postgres_url: &str,
        nats_url: &str,
        replicas: usize,
        tweak: impl FnOnce(&mut RunConfig),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        tweak(&mut config);
        config.http_addr = None;
        let dist = Distributed {
            postgres_url: postgres_url.to_owned(),
            postgres_create_databases: true,
            postgres_pool: 3,
            nats_url: nats_url.to_owned(),
            nats_replicas: 1,
            namespace: format!("t{}", uuid_like()),
            base_port: 0,
            upstreams: Vec::new(),
            service_secret: None,
        };
        let program = Path::new(env!("CARGO_BIN_EXE_tanda"));
        let cluster = Cluster::start_replicated(program, &config, &dist, replicas)
            .await
            .expect("the cluster starts (PostgreSQL and NATS must run; see .ci/run)");
        Self {
            api: Api::new(format!("http://{}", cluster.gateway)),
            running: Some(Running::Cluster(Box::new(cluster), dist)),
            _dir: dir,
        }
    }

    /// Where this app keeps its data (all-in-one: every service's SQLite files).
    pub fn data_dir(&self) -> &Path {
        self._dir.path()
    }

    /// Where each process of a distributed app listens, by service name.
    pub fn cluster_addrs(&self) -> &std::collections::BTreeMap<&'static str, std::net::SocketAddr> {
        match &self.running {
            Some(Running::Cluster(cluster, _)) => &cluster.addrs,
            _ => panic!("only a distributed TestApp has a cluster"),
        }
    }

    /// The PostgreSQL database of one service of a distributed app.
    pub fn database_of(&self, service: tanda::config::Service) -> String {
        match &self.running {
            Some(Running::Cluster(_, dist)) => dist.database(service.name()),
            _ => panic!("only a distributed TestApp has PostgreSQL databases"),
        }
    }

    /// The processes of a distributed app, for fault tests (kill, restart, add instances).
    pub fn cluster(&mut self) -> &mut Cluster {
        match &mut self.running {
            Some(Running::Cluster(cluster, _)) => cluster,
            _ => panic!("only a distributed TestApp has a cluster"),
        }
    }

    pub async fn shutdown(mut self) {
        match self.running.take().unwrap() {
            Running::InProcess(app) => app.shutdown().await.unwrap(),
            Running::Cluster(mut cluster, dist) => {
                cluster.stop().await;
                tanda::cluster::purge(&dist).await;
            }
        }
    }
}

/// A short random token for namespaces.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos % 0xffff_ffff, std::process::id())
}

/// The public HTTP API, as a client sees it: by default as the operator (signed in on first
/// use with [`OPERATOR_PASSWORD`]), who may do everything; [`Api::as_token`] and
/// [`Api::anonymous`] call it as someone else.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    who: Who,
}

#[derive(Clone)]
enum Who {
    Operator(Arc<tokio::sync::OnceCell<String>>),
    Token(String),
    Anonymous,
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {}",
            self.body
        );
        self.body
    }

    /// Asserts an RFC 9457 problem with this status and code.
    #[track_caller]
    pub fn expect_problem(self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {}",
            self.body
        );
        let content_type = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert_eq!(content_type, "application/problem+json", "{}", self.body);
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert_eq!(self.body["status"], status, "{}", self.body);
        assert!(
            self.body["title"].is_string() && self.body["detail"].is_string(),
            "{}",
            self.body
        );
        self.body
    }
}

impl Api {
    pub fn new(base: String) -> Self {
        Self {
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            who: Who::Operator(Arc::default()),
        }
    }

    /// The same API, called with this bearer token.
    pub fn as_token(&self, token: &str) -> Api {
        Api {
            who: Who::Token(token.to_owned()),
            ..self.clone()
        }
    }

    /// The same API, called without credentials.
    pub fn anonymous(&self) -> Api {
        Api {
            who: Who::Anonymous,
            ..self.clone()
        }
    }

    /// Signs up `username` with `role` (and the password [`password_of`] them) and returns the
    /// API as them.
    pub async fn signed_up(&self, username: &str, role: &str) -> Api {
        let password = password_of(username);
        self.anonymous()
            .post(
                "/auth/signup",
                json!({"username": username, "password": password, "name": "Test User",
                       "phone": "010-1234-5678", "role": role}),
            )
            .await
            .expect(201);
        let token = self.token(username, &password).await;
        self.as_token(&token)
    }

    /// The token this API calls with.
    pub async fn bearer_token(&self) -> String {
        self.bearer().await.expect("a signed-in API")
    }

    /// The token this API calls with, if it calls with one.
    pub async fn token_if_any(&self) -> Option<String> {
        self.bearer().await
    }

    async fn bearer(&self) -> Option<String> {
        match &self.who {
            Who::Anonymous => None,
            Who::Token(token) => Some(token.clone()),
            Who::Operator(cell) => Some(
                cell.get_or_init(|| self.token("operator", OPERATOR_PASSWORD))
                    .await
                    .clone(),
            ),
        }
    }

    pub async fn send(&self, mut req: reqwest::RequestBuilder) -> Answer {
        if let Some(token) = self.bearer().await {
            req = req.bearer_auth(token);
        }
        let r = req.send().await.expect("request reaches tanda");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }
    pub async fn post_empty(&self, path: &str) -> Answer {
        self.send(self.http.post(format!("{}{path}", self.base)))
            .await
    }
    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(self.http.put(format!("{}{path}", self.base)).json(&body))
            .await
    }

    /// Signs `username` in and returns the access token.
    pub async fn token(&self, username: &str, password: &str) -> String {
        let request = self
            .http
            .post(format!("{}/auth/token", self.base))
            .json(&json!({"username": username, "password": password}));
        let r = request.send().await.expect("request reaches tanda");
        assert_eq!(r.status(), 200, "signing {username} in");
        let answer: Value = r.json().await.unwrap();
        answer["access_token"].as_str().unwrap().to_owned()
    }

    /// `path` with a bearer token.
    pub async fn get_as(&self, token: &str, path: &str) -> Answer {
        self.as_token(token).get(path).await
    }

    /// A POST with a bearer token.
    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> Answer {
        self.as_token(token).post(path, body).await
    }

    /// Signs in on the pages' sign-in form, as a browser does, and returns the session.
    pub async fn page_session(&self, username: &str, password: &str) -> PageSession {
        let form = self
            .http
            .get(format!("{}/signin", self.base))
            .send()
            .await
            .unwrap();
        let form_cookie = cookie_of(form.headers(), "tanda_form").expect("the form's cookie");
        let csrf = hidden_field(&form.text().await.unwrap(), "csrf");
        let answer = no_redirects()
            .post(format!("{}/ui/signin", self.base))
            .header("cookie", &form_cookie)
            .header("content-type", FORM)
            .body(form_body(&[
                ("csrf", csrf.as_str()),
                ("username", username),
                ("password", password),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 303, "signing in as {username}");
        let cookie = cookie_of(answer.headers(), "tanda_session").expect("the session cookie");
        let home = self
            .http
            .get(format!("{}/", self.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let at = home
            .find(r#""X-CSRF-Token": ""#)
            .expect("the page's CSRF token")
            + 17;
        let csrf = home[at..at + 64].to_owned();
        PageSession { cookie, csrf }
    }

    /// A page (or fragment) as the browser of `session` gets it: status and HTML.
    pub async fn page(&self, session: &PageSession, path: &str) -> (StatusCode, String) {
        let r = no_redirects()
            .get(format!("{}{path}", self.base))
            .header("cookie", &session.cookie)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// A page's form, sent as htmx sends it from a page of `session` (same origin, the page's
    /// CSRF token).
    pub async fn page_form(
        &self,
        session: &PageSession,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let r = no_redirects()
            .post(format!("{}{path}", self.base))
            .header("cookie", &session.cookie)
            .header("origin", &self.base)
            .header("hx-request", "true")
            .header("x-csrf-token", &session.csrf)
            .header("content-type", FORM)
            .body(form_body(form))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// Polls `path` until `check` holds on a 200 body; returns that body.
    pub async fn eventually(
        &self,
        path: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let waiting = format!("{what} at {path}");
        tanda_testkit::poll(&waiting, tanda_testkit::WITHIN, async || {
            let a = self.get(path).await;
            if a.status == StatusCode::OK && check(&a.body) {
                Ok(a.body)
            } else {
                Err(format!("{} {}", a.status, a.body))
            }
        })
        .await
    }

    /// Waits until no consumer has an event left to handle, so that every effect of what was
    /// accepted so far has happened: a check made next sees the final state, not one on its way.
    pub async fn settled(&self) {
        self.eventually("/admin/consumers", "every consumer caught up", |list| {
            list.as_array()
                .is_some_and(|all| all.iter().all(|c| c["lag"] == 0))
        })
        .await;
    }

    /// One series of `/metrics` (0 while it has none), e.g. `tanda_http_requests_in_flight`.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.get("/metrics").await.expect(200);
        let prefix = format!("{series} ");
        text.as_str()
            .expect("metrics are text")
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str())?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    // ---- taxi vocabulary ------------------------------------------------------------------

    pub async fn register_driver(&self, id: &str, at: (f64, f64)) -> Value {
        self.post(
            "/drivers",
            json!({"driverId": id, "name": format!("Driver {id}"), "carNumber": format!("12가{}", 1000 + id.len()),
                   "phone": "010-1234-5678", "location": {"lat": at.0, "lng": at.1}}),
        )
        .await
        .expect(201)
    }

    pub async fn online(&self, id: &str) -> Value {
        self.post_empty(&format!("/drivers/{id}/online"))
            .await
            .expect(200)
    }

    pub fn booking(customer: &str, card: &str) -> Value {
        json!({"customerId": customer, "customerName": "Hong Gildong", "phone": "010-2233-0002", "card": card,
               "pickup": {"name": "Seoul City Hall", "lat": CITY_HALL.0, "lng": CITY_HALL.1},
               "dropoff": {"name": "Gangnam Station", "lat": GANGNAM.0, "lng": GANGNAM.1}})
    }

    /// Books once book has heard that a driver is available (it learns that from events).
    pub async fn book(&self, customer: &str, card: &str) -> Value {
        self.book_with(Self::booking(customer, card)).await
    }

    /// `POST /books` with `body`, once book has heard that a driver is available.
    pub async fn book_with(&self, body: Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let a = self.post("/books", body.clone()).await;
            if a.status != StatusCode::SERVICE_UNAVAILABLE {
                return a.expect(201);
            }
            assert!(
                Instant::now() < deadline,
                "no taxi ever became available: {}",
                a.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Drives a booking to `IN_TRIP` with the nearest driver; returns (bookId, dispatchId).
    pub async fn ride_to_in_trip(
        &self,
        customer: &str,
        card: &str,
        driver: &str,
    ) -> (String, String) {
        let book = self.book(customer, card).await;
        let book_id = book["bookId"].as_str().unwrap().to_owned();
        let dispatch_id = self.offer_for(driver).await["dispatchId"]
            .as_str()
            .unwrap()
            .to_owned();
        self.post(
            &format!("/dispatches/{dispatch_id}/accept"),
            json!({"driverId": driver}),
        )
        .await
        .expect(200);
        self.post(
            &format!("/dispatches/{dispatch_id}/start"),
            json!({"driverId": driver}),
        )
        .await
        .expect(200);
        self.book_status(&book_id, "IN_TRIP").await;
        (book_id, dispatch_id)
    }

    /// Waits for the driver's offer and returns it.
    pub async fn offer_for(&self, driver: &str) -> Value {
        let path = format!("/drivers/{driver}/offers");
        self.eventually(&path, "an offer", |b| {
            b.as_array().is_some_and(|a| a.len() == 1)
        })
        .await[0]
            .clone()
    }

    pub async fn book_status(&self, book_id: &str, status: &str) -> Value {
        let path = format!("/books/{book_id}");
        self.eventually(&path, status, |b| b["status"] == status)
            .await
    }

    pub async fn driver_status(&self, driver: &str, status: &str) -> Value {
        let path = format!("/drivers/{driver}");
        self.eventually(&path, status, |b| b["status"] == status)
            .await
    }

    /// Every notification text for a receiver, oldest first.
    pub async fn messages(&self, receiver: &str) -> Vec<String> {
        let body = self
            .get(&format!("/notifications?receiver={receiver}"))
            .await
            .expect(200);
        let mut all: Vec<String> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["message"].as_str().unwrap().to_owned())
            .collect();
        all.reverse();
        all
    }

    pub async fn wait_message(&self, receiver: &str, needle: &str) -> String {
        let path = format!("/notifications?receiver={receiver}");
        let body = self
            .eventually(&path, needle, |b| {
                b.as_array()
                    .unwrap()
                    .iter()
                    .any(|n| n["message"].as_str().unwrap().contains(needle))
            })
            .await;
        body.as_array()
            .unwrap()
            .iter()
            .find_map(|n| n["message"].as_str().filter(|m| m.contains(needle)))
            .unwrap()
            .to_owned()
    }
}

impl Api {
    // ---- flight vocabulary ----------------------------------------------------------------

    pub async fn flight(&self, id: &str, seats: i64) -> Value {
        self.post(
            "/flights",
            json!({"flightId": id, "from": "GMP", "to": "CJU", "departsAt": departs_in(Duration::from_secs(30 * 86_400)), "seats": seats}),
        )
        .await
        .expect(201)
    }

    pub async fn deposit(&self, user: &str, amount: i64) -> Value {
        self.post(
            &format!("/accounts/{user}/deposit"),
            json!({"amount": amount}),
        )
        .await
        .expect(200)
    }

    pub async fn balance(&self, user: &str) -> i64 {
        self.get(&format!("/accounts/{user}")).await.expect(200)["balance"]
            .as_i64()
            .unwrap()
    }

    pub async fn reserve(&self, user: &str, flight: &str) -> Answer {
        self.post("/reservations", json!({"userId": user, "flightId": flight}))
            .await
    }

    pub async fn reservation_status(&self, id: &str, status: &str) -> Value {
        let path = format!("/reservations/{id}");
        self.eventually(&path, status, |r| r["status"] == status)
            .await
    }

    pub async fn seats_left(&self, flight: &str) -> i64 {
        self.get(&format!("/flights/{flight}")).await.expect(200)["seatsLeft"]
            .as_i64()
            .unwrap()
    }
}

/// A departure time `after` from now, as the API writes times: flights are sold only before
/// they leave, so no test may name a fixed date that will one day be past.
pub fn departs_in(after: Duration) -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now() + after).to_string()
}

/// The password of an account the tests signed up.
pub fn password_of(username: &str) -> String {
    format!("{username}-password")
}

/// A browser's session on the pages.
pub struct PageSession {
    /// `tanda_session=…`, for a `Cookie` header.
    pub cookie: String,
    /// The CSRF token the session's pages carry.
    pub csrf: String,
}

pub const FORM: &str = "application/x-www-form-urlencoded";

/// A form's fields as a browser sends them.
pub fn form_body(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A client that shows redirects instead of following them.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// `name=value` of the cookie `name` set by an answer.
pub fn cookie_of(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The value of the hidden input `name` in a page.
pub fn hidden_field(page: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let at = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in the page"))
        + marker.len();
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

/// Tanda as a real child process, so tests can kill it with SIGKILL and start it again.
pub struct Proc {
    child: Child,
    pub api: Api,
}

impl Proc {
    pub fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tanda"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TANDA_HTTP_ADDR", "127.0.0.1:0")
            .env("TANDA_DATA_DIR", data_dir)
            .env("TANDA_LOG", "warn")
            .env("TANDA_OPERATOR_PASSWORD", OPERATOR_PASSWORD)
            .env("TANDA_WRITE_RATE_LIMIT", "0") // as in `test_config`
            .env("TANDA_DRAIN_DELAY", "0s") // as in `test_config`
            .envs(extra_env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("the tanda binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("tanda prints where it listens")
                .unwrap();
            if let Some(url) = line.strip_prefix("Tanda is listening on ") {
                break url.trim().to_owned();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Proc {
            child,
            api: Api::new(addr),
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.sigterm();
        self.child.wait().unwrap()
    }

    /// SIGTERM, without waiting.
    pub fn sigterm(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    }

    /// Waits for the process to exit, on a thread of its own; the exit status.
    pub async fn exited(mut self) -> std::process::ExitStatus {
        tokio::task::spawn_blocking(move || self.child.wait().unwrap())
            .await
            .unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
