//! Distributed mode under faults (DESIGN §1, §5): real `tanda serve` processes on PostgreSQL and
//! NATS JetStream, never mocks. A second instance of a service shares the work; any one service
//! is killed with SIGKILL under load and started again; the broker itself is gone for ten
//! seconds. Afterwards every accepted request has reached its end, nothing happened twice, and
//! money, tickets and seats add up.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tanda::config::Service;
use tokio::task::JoinHandle;

const NEAR: (f64, f64) = (37.5668, 126.9785);
/// Every trip reports 5 km, so every fare is 4,800 + 100 × ⌊3,400 / 131⌋ won.
const TRIP_METERS: i64 = 5000;
const FARE: i64 = 7300;
/// The default price of a seat.
const PRICE: i64 = 100;

#[tokio::test]
async fn second_instances_of_dispatch_and_payment_each_do_the_work_and_nothing_happens_twice() {
    let mut app = TestApp::spawn_replicated(POSTGRES, NATS, 2, |_| {}).await;
    let api = app.api.clone();
    let cluster = app.cluster();
    let [dispatch_2, payment_2] = [&tanda_dispatch::SPEC, &tanda_payment::SPEC]
        .map(|spec| cluster.replicas_of(Service::Of(spec))[0]);

    let shift = Shift::start(&api, "cc", 4).await;
    api.flight("CC100", 40).await;
    let wallets = wallets("cc", 40, |_| 250);
    fund(&api, &wallets).await;
    let users: Vec<String> = wallets.iter().map(|(u, _)| u.clone()).collect();
    let taxi = async {
        // In waves, so that bookings also arrive while every driver is idle.
        let mut rides = Vec::new();
        for wave in 0..4 {
            let customers = names(&format!("cc-w{wave}"), 3);
            let books = book_rides(&api, &customers).await;
            assert_rides_completed(&api, &customers, &books).await;
            rides.extend(books);
        }
        rides
    };
    let (rides, reserved) = tokio::join!(taxi, reserve_all(&api, "CC100", &users));
    assert_eq!(rides.len(), 12);
    assert!(reserved.iter().all(|a| a.status == StatusCode::CREATED));
    assert_reservations_reconcile(&api, "CC100", 40, &wallets).await;

    // Which instance a message reaches is the broker's choice, so sharing is not asserted; that
    // the second instances do the work is: with the first ones killed they carry rides and
    // reservations through alone (the gateway sends the requests to them).
    for spec in [&tanda_dispatch::SPEC, &tanda_payment::SPEC] {
        app.cluster().kill9(Service::Of(spec)).await;
    }
    api.flight("CC200", 4).await;
    for (i, user) in users.iter().enumerate().take(2) {
        let customers = names(&format!("cc-alone{i}"), 2);
        let books = book_rides(&api, &customers).await;
        assert_rides_completed(&api, &customers, &books).await;
        let answer = api.reserve(user, "CC200").await;
        assert_eq!(answer.status, StatusCode::CREATED);
        let id = answer.body["reservationId"].as_str().unwrap();
        api.reservation_status(id, "CONFIRMED").await;
    }
    for (consumer, addr) in [("dispatch", dispatch_2), ("payment", payment_2)] {
        let handled = events_handled(&api, addr, consumer).await;
        assert!(
            handled > 0.0,
            "the {consumer} instance at {addr} handled no events"
        );
    }
    for (user, deposit) in wallets.iter().take(2) {
        assert_eq!(
            api.balance(user).await,
            deposit - 2 * PRICE,
            "{user} paid twice, once each"
        );
    }
    shift.end().await;
    app.shutdown().await;
}

/// Relay leadership is fenced: when PostgreSQL ends the sessions of payment's instances (and
/// with them the relaying one's advisory lock), the old leader stops relaying within a batch and
/// from then on one instance relays, the one holding the lock.
#[tokio::test]
async fn after_postgresql_ends_the_relays_session_one_instance_relays() {
    let mut app = TestApp::spawn(Topology::Distributed).await;
    let api = app.api.clone();
    let cluster = app.cluster();
    let payments = [
        cluster.addrs["payment"],
        cluster
            .add_instance(Service::Of(&tanda_payment::SPEC))
            .await
            .expect("a second payment starts"),
    ];
    api.flight("RL100", 60).await;
    let wallets = wallets("rl", 40, |_| 250);
    fund(&api, &wallets).await;
    let database = app.database_of(Service::Of(&tanda_payment::SPEC));
    let leader = lock_holders(&database).await;
    assert_eq!(leader.len(), 1, "one instance leads: {leader:?}");
    end_sessions(&database).await;
    // An instance takes the lead again (they ask every second): a new session holds the lock.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = lock_holders(&database).await;
        if now.len() == 1 && now != leader {
            break;
        }
        assert!(Instant::now() < deadline, "no new relay lead: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let relayed = |addr| {
        counter(
            &api,
            addr,
            "tanda_outbox_relayed_total{service=\"payment\"}",
        )
    };
    let before = [relayed(payments[0]).await, relayed(payments[1]).await];
    // Both instances handle these (the broker shares the work) and write their events.
    let users: Vec<String> = wallets.iter().map(|(u, _)| u.clone()).collect();
    for answer in reserve_paced(&api, "RL100", &users).await {
        answer.expect(201);
    }
    assert_reservations_reconcile(&api, "RL100", 60, &wallets).await;
    let after = [relayed(payments[0]).await, relayed(payments[1]).await];
    let relaying = (0..2).filter(|&i| after[i] > before[i]).count();
    assert_eq!(
        relaying, 1,
        "relayed by each instance before {before:?} and after {after:?}"
    );
    assert_eq!(advisory_locks(&database).await, 1, "one lock, held");
    app.shutdown().await;
}

#[tokio::test]
async fn a_taxi_service_killed_under_load_loses_nothing_and_charges_once() {
    // The breaker in front of pay may open while pay is down; let it close soon after.
    let mut app = TestApp::spawn_with(Topology::Distributed, |c| {
        c.services.dispatch.payment.breaker_open_for = Duration::from_secs(1);
    })
    .await;
    let api = app.api.clone();
    for service in [
        Service::Of(&tanda_book::SPEC),
        Service::Of(&tanda_dispatch::SPEC),
        Service::Of(&tanda_pay::SPEC),
    ] {
        let prefix = format!("k{}", service.name());
        let shift = Shift::start(&api, &prefix, 3).await;
        let customers = names(&prefix, 6);
        let load = tokio::spawn({
            let (api, customers) = (api.clone(), customers.clone());
            async move { book_rides_paced(&api, &customers).await }
        });
        // Mid-load: one ride is done, the others are on their way.
        api.eventually(
            &format!("/books?customerId={}", customers[0]),
            "the first ride completed",
            |b| b[0]["status"] == "COMPLETED",
        )
        .await;
        kill_and_restart(app.cluster(), service).await;
        let books = load.await.expect("the load runs to its end");
        assert_rides_completed(&api, &customers, &books).await;
        shift.end().await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_flight_service_killed_under_load_loses_nothing_and_debits_once() {
    let mut app = TestApp::spawn(Topology::Distributed).await;
    let api = app.api.clone();
    for service in [
        Service::Of(&tanda_reservation::SPEC),
        Service::Of(&tanda_payment::SPEC),
        Service::Of(&tanda_ticket::SPEC),
    ] {
        let prefix = format!("k{}", service.name());
        let flight = format!("KF{}", service.port_offset());
        api.flight(&flight, 40).await;
        // The even users can pay, the odd ones cannot.
        let wallets = wallets(&prefix, 24, |i| if i % 2 == 0 { 250 } else { 60 });
        fund(&api, &wallets).await;
        let load = tokio::spawn({
            let (api, flight) = (api.clone(), flight.clone());
            let users: Vec<String> = wallets.iter().map(|(u, _)| u.clone()).collect();
            async move { reserve_paced(&api, &flight, &users).await }
        });
        api.eventually(
            &format!("/reservations?userId={}", wallets[0].0),
            "the first reservation confirmed",
            |r| r[0]["status"] == "CONFIRMED",
        )
        .await;
        kill_and_restart(app.cluster(), service).await;
        let answers = load.await.expect("the load runs to its end");
        for a in answers {
            a.expect(201);
        }
        assert_reservations_reconcile(&api, &flight, 40, &wallets).await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn with_nats_down_for_ten_seconds_requests_are_still_taken_and_all_complete_after() {
    let mut nats = PrivateNats::start().await;
    let app = TestApp::spawn_cluster(&nats.url(), |_| {}).await;
    let api = app.api.clone();
    let shift = Shift::start(&api, "nd", 10).await;
    api.flight("ND100", 100).await;
    let wallets = wallets("nd", 80, |i| if i % 2 == 0 { 100 } else { 60 });
    fund(&api, &wallets).await;
    // A first ride, so that book has heard (through NATS) that drivers are available.
    let first = api.book("nd-first", GOOD_CARD).await["bookId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_rides_completed(&api, &["nd-first".to_owned()], &[first]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(steady_load(
        api.clone(),
        "ND100",
        wallets.iter().map(|(u, _)| u.clone()).collect(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    nats.kill();
    // The outboxes absorb the broker's outage, so no instance stops being ready for it.
    let instances: Vec<SocketAddr> = app.cluster_addrs().values().copied().collect();
    let outage = Instant::now() + Duration::from_secs(10);
    while Instant::now() < outage {
        for addr in &instances {
            assert!(
                is_ready(*addr).await,
                "{addr} is ready with the broker gone"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // It says so, though.
    let payment = app.cluster_addrs()["payment"];
    let readiness: Value = reqwest::get(format!("http://{payment}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        readiness["dependencies"]["nats"], "unreachable",
        "{readiness}"
    );
    stop.store(true, Ordering::Relaxed);
    let (rides, reservations) = load.await.expect("the load runs to its end");
    nats.resume().await;

    // Every request got its 201 while the broker was gone; the outboxes kept the events.
    assert!(rides.len() >= 30, "only {} bookings were sent", rides.len());
    let mut customers = Vec::new();
    let mut books = Vec::new();
    for (customer, answer) in rides {
        books.push(answer.expect(201)["bookId"].as_str().unwrap().to_owned());
        customers.push(customer);
    }
    for (_, answer) in &reservations {
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
    assert_rides_completed(&api, &customers, &books).await;
    let reserved: Vec<(String, i64)> = wallets
        .into_iter()
        .filter(|(u, _)| reservations.iter().any(|(r, _)| r == u))
        .collect();
    assert_reservations_reconcile(&api, "ND100", 100, &reserved).await;
    shift.end().await;
    app.shutdown().await;
}

// ---- faults --------------------------------------------------------------------------------

/// SIGKILL, half a second down, then started again (and ready).
/// The gateway is not ready while a service it routes to has no ready instance.
async fn kill_and_restart(cluster: &mut tanda::cluster::Cluster, service: Service) {
    cluster.kill9(service).await;
    let gateway = cluster.gateway;
    ready_becomes(
        gateway,
        false,
        &format!("the gateway with {} gone", service.name()),
    )
    .await;
    cluster
        .restart(service)
        .await
        .unwrap_or_else(|e| panic!("{} restarts: {e:#}", service.name()));
    ready_becomes(gateway, true, "the gateway with every service back").await;
}

/// Waits (up to ten seconds) until the instance at `addr` answers `/readyz` as `ready`.
async fn ready_becomes(addr: SocketAddr, ready: bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if is_ready(addr).await == ready {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: ready should be {ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the instance at `addr` answers `/readyz` 200 (anything else, or nothing, is not).
async fn is_ready(addr: SocketAddr) -> bool {
    reqwest::get(format!("http://{addr}/readyz"))
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
}

/// An orchestrator starts the replicas of a service together, on databases nobody made yet: the
/// two race to create the database and to migrate it, and both must come up, one schema between
/// them.
#[tokio::test]
async fn two_replicas_of_every_service_start_at_once_on_fresh_databases() {
    let app = TestApp::spawn_replicated(POSTGRES, NATS, 2, |_| {}).await;
    a_reservation_is_confirmed(&app.api, "TW1", "twin").await;
    app.shutdown().await;
}

/// An orchestrator starts every process at once, so a service may come up before PostgreSQL
/// accepts connections (or while it refuses more of them): it waits for the database instead of
/// exiting, and serves once the database does.
#[tokio::test]
async fn services_started_before_postgresql_accepts_wait_for_it_and_then_serve() {
    let door = Door::to(POSTGRES_ADDR, false);
    let opening = tokio::spawn({
        let door = door.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(4)).await;
            door.open();
        }
    });
    let app = TestApp::spawn_cluster_on(&door.postgres_url(), NATS, |_| {}).await;
    assert!(
        door.is_open(),
        "the services became ready only after the database came up"
    );
    opening.await.unwrap();
    a_reservation_is_confirmed(&app.api, "KL1", "late").await;
    app.shutdown().await;
}

/// Payment's database gone for six seconds under load (its connections ended, new ones refused,
/// as when PostgreSQL restarts or fails over): requests wait it out, and every saga in flight
/// completes by itself afterwards. Nothing is parked as a dead letter, since nothing was wrong
/// with any event.
#[tokio::test]
async fn with_payments_database_gone_for_six_seconds_every_saga_completes_and_nothing_is_parked() {
    let app = TestApp::spawn(Topology::Distributed).await;
    let api = app.api.clone();
    api.flight("PG100", 40).await;
    let wallets = wallets("pg", 32, |i| if i % 2 == 0 { 250 } else { 60 });
    fund(&api, &wallets).await;
    let load = tokio::spawn({
        let api = api.clone();
        let users: Vec<String> = wallets.iter().map(|(u, _)| u.clone()).collect();
        async move { reserve_paced(&api, "PG100", &users).await }
    });
    api.eventually(
        &format!("/reservations?userId={}", wallets[0].0),
        "the first reservation confirmed",
        |r| r[0]["status"] == "CONFIRMED",
    )
    .await;
    let payment = app.database_of(Service::Of(&tanda_payment::SPEC));
    allow_connections(&payment, false).await;
    // Readiness follows each instance's own storage, and nothing else's.
    let (payment_at, reservation_at) = (
        app.cluster_addrs()["payment"],
        app.cluster_addrs()["reservation"],
    );
    ready_becomes(payment_at, false, "payment without its database").await;
    assert!(
        is_ready(reservation_at).await,
        "reservation has its database"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    allow_connections(&payment, true).await;
    ready_becomes(payment_at, true, "payment with its database back").await;
    for answer in load.await.expect("the load runs to its end") {
        answer.expect(201);
    }
    assert_reservations_reconcile(&api, "PG100", 40, &wallets).await;
    let parked = api.get("/admin/dead-letters").await.expect(200);
    assert_eq!(parked, json!([]), "an outage is not the events' fault");
    app.shutdown().await;
}

/// Ends every session on `database`, as a failover or an administrator would.
async fn end_sessions(database: &str) {
    let mut admin = admin().await;
    let ended =
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(database)
            .execute(&mut admin)
            .await
            .unwrap();
    assert!(ended.rows_affected() > 0, "there were sessions to end");
}

/// The sessions (backend pids) holding an advisory lock on `database`.
async fn lock_holders(database: &str) -> Vec<i32> {
    let mut admin = admin().await;
    sqlx::query_scalar(
        "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database
         WHERE l.locktype = 'advisory' AND l.granted AND d.datname = $1 ORDER BY l.pid",
    )
    .bind(database)
    .fetch_all(&mut admin)
    .await
    .unwrap()
}

/// How many advisory locks are held on `database`.
async fn advisory_locks(database: &str) -> i64 {
    let mut admin = admin().await;
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
         WHERE l.locktype = 'advisory' AND l.granted AND d.datname = $1",
    )
    .bind(database)
    .fetch_one(&mut admin)
    .await
    .unwrap()
}

/// A connection to the PostgreSQL server the cluster uses, as its administrator.
async fn admin() -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres"))
        .await
        .expect("the test reaches PostgreSQL")
}

/// Takes `database` away (`false`: every session on it ended, new ones refused), or gives it
/// back.
async fn allow_connections(database: &str, allow: bool) {
    let mut admin = admin().await;
    let alter = format!("ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS {allow}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(alter))
        .execute(&mut admin)
        .await
        .unwrap();
    if !allow {
        end_sessions(database).await;
    }
}

/// A flight, a funded traveller, a seat sold: every service of the flight saga works.
async fn a_reservation_is_confirmed(api: &Api, flight: &str, user: &str) {
    api.flight(flight, 2).await;
    api.deposit(user, 500).await;
    let id = api.reserve(user, flight).await.expect(201)["reservationId"]
        .as_str()
        .unwrap()
        .to_owned();
    api.reservation_status(&id, "CONFIRMED").await;
}

const POSTGRES_ADDR: &str = "127.0.0.1:5432";

/// A TCP door in front of a server, which the test opens and cuts: while it is cut nothing
/// listens on its port (connections are refused) and every connection made through it is broken.
#[derive(Clone)]
struct Door {
    port: u16,
    open: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Door {
    fn to(target: &'static str, open: bool) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let (open, state) = tokio::sync::watch::channel(open);
        tokio::spawn(Self::keep(port, target, state));
        Self {
            port,
            open: Arc::new(open),
        }
    }

    fn open(&self) {
        self.open.send_replace(true);
    }

    fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    fn postgres_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// Listens while open and forwards each connection to `target`; when cut, stops listening
    /// and breaks every connection. Ends when the door is dropped.
    async fn keep(port: u16, target: &'static str, mut state: tokio::sync::watch::Receiver<bool>) {
        loop {
            while !*state.borrow_and_update() {
                if state.changed().await.is_err() {
                    return;
                }
            }
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("the door's port is still free");
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        connections.spawn(async move {
                            if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut server).await;
                            }
                        });
                    }
                    changed = state.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if !*state.borrow_and_update() {
                            break;
                        }
                    }
                }
            }
            connections.abort_all();
        }
    }
}

/// A nats-server of this test's own, so that it can be stopped without disturbing the shared one
/// the other tests use.
struct PrivateNats {
    port: u16,
    store: tempfile::TempDir,
    process: Option<std::process::Child>,
}

impl PrivateNats {
    async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut nats = Self {
            port,
            store: tempfile::tempdir().unwrap(),
            process: None,
        };
        nats.resume().await;
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and store: its streams and consumers come back.
    async fn resume(&mut self) {
        let child = Command::new(nats_server_program())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts (see .ci/run)");
        self.process = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "nats-server does not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL.
    fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `nats-server` on the `PATH`, else where the Debian package puts it.
fn nats_server_program() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("nats-server"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

/// The events one process (not the gateway: the instance itself) handled for `consumer`, from
/// its own `/metrics`.
/// Pauses or resumes `consumer` on the service instances at `addrs`.
async fn events_handled(api: &Api, addr: SocketAddr, consumer: &str) -> f64 {
    let series = format!("tanda_events_handled_total{{consumer=\"{consumer}\"}}");
    counter(api, addr, &series).await
}

/// The value of one series in the instance's `/metrics` (0 if it has none yet).
async fn counter(api: &Api, addr: SocketAddr, series: &str) -> f64 {
    let text = api
        .http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("the instance serves /metrics")
        .text()
        .await
        .unwrap();
    let series = format!("{series} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0.0, |n| n.trim().parse().unwrap())
}

// ---- load ----------------------------------------------------------------------------------

/// `prefix-0`, `prefix-1`, ...
fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// POSTs with an `Idempotency-Key` until the answer is not "try again" (503: a service down or
/// restarting, or no taxi free yet), so that a request whose answer died with a killed process is
/// neither lost nor made twice.
async fn post_until_answered(api: &Api, path: &str, body: &Value, key: &str) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = api
            .http
            .post(format!("{}{path}", api.base))
            .header("Idempotency-Key", key)
            .json(body);
        let answer = api.send(request).await;
        if answer.status != StatusCode::SERVICE_UNAVAILABLE || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Drivers at work: each takes the offers made to them and drives every ride to its end, through
/// whatever fails meanwhile, until the shift ends.
struct Shift {
    api: Api,
    over: Arc<AtomicBool>,
    drivers: Vec<(String, JoinHandle<()>)>,
}

impl Shift {
    /// Registers `n` drivers next to City Hall and puts them online.
    async fn start(api: &Api, prefix: &str, n: usize) -> Shift {
        let over = Arc::new(AtomicBool::new(false));
        let mut drivers = Vec::new();
        for driver in names(&format!("{prefix}-driver"), n) {
            api.register_driver(&driver, NEAR).await;
            api.online(&driver).await;
            let working = tokio::spawn(work(api.clone(), driver.clone(), over.clone()));
            drivers.push((driver, working));
        }
        Shift {
            api: api.clone(),
            over,
            drivers,
        }
    }

    /// Every driver stops and goes offline, free (so no later test's ride is offered to them).
    async fn end(self) {
        self.over.store(true, Ordering::Relaxed);
        for (driver, working) in self.drivers {
            working.await.expect("a driver's loop never panics");
            let path = format!("/drivers/{driver}/offline");
            assert_eq!(
                self.api.post_empty(&path).await.expect(200)["status"],
                "OFFLINE"
            );
        }
    }
}

async fn work(api: Api, driver: String, over: Arc<AtomicBool>) {
    while !over.load(Ordering::Relaxed) {
        let offers = api.get(&format!("/drivers/{driver}/offers")).await;
        match offers.body[0]["dispatchId"].as_str() {
            Some(dispatch) if offers.status == StatusCode::OK => {
                drive(&api, &driver, dispatch).await;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Takes one offered ride to its end, reading the dispatch again before every step: a step whose
/// answer was lost with a killed process shows up as taken.
async fn drive(api: &Api, driver: &str, dispatch_id: &str) {
    let path = format!("/dispatches/{dispatch_id}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let dispatch = api.get(&path).await;
        if dispatch.status != StatusCode::OK {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let d = &dispatch.body;
        let mine = d["driverId"] == driver;
        let (step, body) = match d["status"].as_str() {
            Some("SEARCHING") if d["offer"]["driverId"] == driver => {
                ("accept", json!({"driverId": driver}))
            }
            Some("DISPATCHED") if mine => ("start", json!({"driverId": driver})),
            Some("IN_TRIP") if mine => (
                "end",
                json!({"driverId": driver, "distanceMeters": TRIP_METERS}),
            ),
            _ => return, // ended, cancelled, failed, or not this driver's
        };
        // Whatever the answer, the dispatch read next says what to do.
        if api.post(&format!("{path}/{step}"), body).await.status != StatusCode::OK {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A ride for each customer, all at once, each retried until accepted; the booking ids.
async fn book_rides(api: &Api, customers: &[String]) -> Vec<String> {
    futures::future::join_all(customers.iter().map(|c| book_ride(api, c))).await
}

/// Like [`book_rides`], the customers arriving one after another.
async fn book_rides_paced(api: &Api, customers: &[String]) -> Vec<String> {
    futures::future::join_all(customers.iter().enumerate().map(|(i, c)| async move {
        tokio::time::sleep(Duration::from_millis(150) * i as u32).await;
        book_ride(api, c).await
    }))
    .await
}

async fn book_ride(api: &Api, customer: &str) -> String {
    let booking = Api::booking(customer, GOOD_CARD);
    let answer = post_until_answered(api, "/books", &booking, customer).await;
    answer.expect(201)["bookId"].as_str().unwrap().to_owned()
}

/// Users `prefix-u0`, ... and what each deposits.
fn wallets(prefix: &str, n: usize, deposit: impl Fn(usize) -> i64) -> Vec<(String, i64)> {
    names(&format!("{prefix}-u"), n)
        .into_iter()
        .enumerate()
        .map(|(i, user)| (user, deposit(i)))
        .collect()
}

async fn fund(api: &Api, wallets: &[(String, i64)]) {
    futures::future::join_all(
        wallets
            .iter()
            .map(|(user, amount)| api.deposit(user, *amount)),
    )
    .await;
}

/// A reservation for each user, all at once, each retried until answered.
async fn reserve_all(api: &Api, flight: &str, users: &[String]) -> Vec<Answer> {
    futures::future::join_all(users.iter().map(|u| reserve(api, flight, u))).await
}

/// Like [`reserve_all`], the users arriving one after another.
async fn reserve_paced(api: &Api, flight: &str, users: &[String]) -> Vec<Answer> {
    futures::future::join_all(users.iter().enumerate().map(|(i, u)| async move {
        tokio::time::sleep(Duration::from_millis(60) * i as u32).await;
        reserve(api, flight, u).await
    }))
    .await
}

async fn reserve(api: &Api, flight: &str, user: &str) -> Answer {
    let body = json!({"userId": user, "flightId": flight});
    post_until_answered(api, "/reservations", &body, user).await
}

/// A booking and a reservation every 250 ms, each by someone new, each sent once, until `stop`
/// (or the users run out); every answer, by who asked.
async fn steady_load(
    api: Api,
    flight: &str,
    users: Vec<String>,
    stop: Arc<AtomicBool>,
) -> (Vec<(String, Answer)>, Vec<(String, Answer)>) {
    let mut rides = Vec::new();
    let mut reservations = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    for (i, user) in users.into_iter().enumerate() {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let customer = format!("nd-c{i}");
        let (ride, reservation) = tokio::join!(
            api.post("/books", Api::booking(&customer, GOOD_CARD)),
            api.reserve(&user, flight),
        );
        rides.push((customer, ride));
        reservations.push((user, reservation));
    }
    (rides, reservations)
}

// ---- what must hold afterwards ---------------------------------------------------------------

/// Every booking completed and was charged exactly once, the fare it shows; each customer has
/// exactly the one booking they asked for, however often the request was retried.
async fn assert_rides_completed(api: &Api, customers: &[String], books: &[String]) {
    for (customer, book) in customers.iter().zip(books) {
        let done = api.book_status(book, "COMPLETED").await;
        assert_eq!(done["fare"], FARE, "{done}");
        let pays = api.get(&format!("/pays?bookId={book}")).await.expect(200);
        assert_eq!(
            pays.as_array().unwrap().len(),
            1,
            "one pay per ride: {pays}"
        );
        assert_eq!(pays[0]["amount"], FARE);
        let dispatch = api
            .get(&format!(
                "/dispatches/{}",
                done["dispatchId"].as_str().unwrap()
            ))
            .await
            .expect(200);
        assert_eq!(dispatch["status"], "ENDED");
        assert_eq!(dispatch["payId"], pays[0]["payId"]);
        let theirs = api
            .get(&format!("/books?customerId={customer}"))
            .await
            .expect(200);
        assert_eq!(theirs.as_array().unwrap().len(), 1, "{customer}: {theirs}");
    }
}

/// Each user asked for one seat once: they have exactly one reservation, confirmed if their
/// wallet could pay and failed if not; they were debited at most once, their ledger adds up to
/// their balance, they hold one ticket per confirmed seat, and the flight's seats left are its
/// capacity less the confirmed ones.
async fn assert_reservations_reconcile(
    api: &Api,
    flight: &str,
    seats: i64,
    wallets: &[(String, i64)],
) {
    let mut sold = 0;
    for (user, deposit) in wallets {
        let list = api
            .eventually(
                &format!("/reservations?userId={user}"),
                "a reservation that reached its end",
                |l| {
                    l.as_array().unwrap().iter().all(|r| {
                        r["status"] == "CONFIRMED"
                            || r["status"] == "PAYMENT_FAILED" && r["ticketId"].is_null()
                    })
                },
            )
            .await;
        let list = list.as_array().unwrap();
        assert_eq!(
            list.len(),
            1,
            "{user}: one request, one reservation: {list:?}"
        );
        let expected = if *deposit >= PRICE {
            "CONFIRMED"
        } else {
            "PAYMENT_FAILED"
        };
        assert_eq!(list[0]["status"], expected, "{user} deposited {deposit}");
        let confirmed = i64::from(expected == "CONFIRMED");
        sold += confirmed;

        let balance = api.balance(user).await;
        assert_eq!(balance, deposit - PRICE * confirmed, "{user}: debited once");
        let movements = api
            .get(&format!("/accounts/{user}/movements"))
            .await
            .expect(200);
        let movements = movements.as_array().unwrap();
        let debits = movements.iter().filter(|m| m["kind"] == "DEBIT").count();
        assert_eq!(debits as i64, confirmed, "{user}: {movements:?}");
        let ledger: i64 = movements
            .iter()
            .map(|m| {
                let amount = m["amount"].as_i64().unwrap();
                if m["kind"] == "DEBIT" {
                    -amount
                } else {
                    amount
                }
            })
            .sum();
        assert_eq!(ledger, balance, "{user}: the ledger adds up to the balance");

        let tickets = api
            .get(&format!("/tickets?userId={user}"))
            .await
            .expect(200);
        let issued: Vec<&Value> = tickets
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["status"] == "ISSUED")
            .collect();
        assert_eq!(issued.len() as i64, confirmed, "{user}: {tickets}");
        if confirmed == 1 {
            assert_eq!(issued[0]["reservationId"], list[0]["reservationId"]);
            assert_eq!(issued[0]["ticketId"], list[0]["ticketId"]);
        }
    }
    assert_eq!(
        api.seats_left(flight).await,
        seats - sold,
        "seats held = confirmed reservations"
    );
}

/// Optimistic concurrency (DESIGN §5.3) where it bites: two instances of a service, on
/// PostgreSQL, each take a command for the same aggregate and both read it before either writes.
/// The test makes that happen every time: it holds the aggregate's row locked until both
/// commands wait on it, then lets go. One commits; the other finds the version moved, runs again
/// on what is now stored, and answers from that. Were the version not checked, both would
/// write: an offer both accepted and declined, a reservation cancelled twice, a ledger whose
/// balances skip a deposit.
#[tokio::test]
async fn commands_racing_on_one_aggregate_from_two_instances_have_one_outcome() {
    let mut app = TestApp::spawn(Topology::Distributed).await;
    let api = app.api.clone();
    let token = api.bearer_token().await;
    let mut pairs = Vec::new();
    for service in [
        Service::Of(&tanda_book::SPEC),
        Service::Of(&tanda_dispatch::SPEC),
        Service::Of(&tanda_reservation::SPEC),
        Service::Of(&tanda_payment::SPEC),
    ] {
        let cluster = app.cluster();
        let first = cluster.addrs[service.name()];
        let second = cluster
            .add_instance(service)
            .await
            .expect("a second instance starts");
        let at = |addr: SocketAddr| Api::new(format!("http://{addr}")).as_token(&token);
        pairs.push((at(first), at(second), app.database_of(service)));
    }
    let [
        (book_1, book_2, books),
        (dispatch_1, dispatch_2, dispatches),
        (reservation_1, reservation_2, reservations),
        (payment_1, payment_2, payments),
    ] = <[_; 4]>::try_from(pairs).ok().unwrap();

    // The driver accepts on one instance and declines on the other: one of them happens.
    api.register_driver("race-d", NEAR).await;
    api.online("race-d").await;
    let book_id = api.book("race-c", GOOD_CARD).await["bookId"]
        .as_str()
        .unwrap()
        .to_owned();
    let offer = api.offer_for("race-d").await;
    let dispatch_id = offer["dispatchId"].as_str().unwrap();
    let driver = json!({"driverId": "race-d"});
    let (accept, decline) = race(
        &dispatches,
        "SELECT 1 FROM dispatches WHERE id = $1 FOR UPDATE",
        dispatch_id,
        dispatch_1.post(&format!("/dispatches/{dispatch_id}/accept"), driver.clone()),
        dispatch_2.post(
            &format!("/dispatches/{dispatch_id}/decline"),
            driver.clone(),
        ),
    )
    .await;
    let winners = [&accept, &decline].map(|a| a.status == StatusCode::OK);
    assert_eq!(
        winners.iter().filter(|w| **w).count(),
        1,
        "{accept:?} / {decline:?}"
    );
    let dispatch = api
        .get(&format!("/dispatches/{dispatch_id}"))
        .await
        .expect(200);
    if winners[0] {
        assert_eq!(decline.status, StatusCode::CONFLICT);
        assert_eq!(dispatch["driverId"], "race-d", "{dispatch}");
        api.book_status(&book_id, "DISPATCHED").await;
    } else {
        assert_eq!(accept.status, StatusCode::CONFLICT);
        assert_ne!(dispatch["driverId"], "race-d", "{dispatch}");
    }

    // A booking cancelled on both of book's instances at once: one cancel is taken, the other
    // refused for what the booking has become.
    api.register_driver("race-d2", NEAR).await;
    api.online("race-d2").await;
    let book_id = api.book("race-c2", GOOD_CARD).await["bookId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancel = format!("/books/{book_id}/cancel");
    let (one, other) = race(
        &books,
        "SELECT 1 FROM books WHERE id = $1 FOR UPDATE",
        &book_id,
        book_1.post_empty(&cancel),
        book_2.post_empty(&cancel),
    )
    .await;
    let mut answers = [&one, &other].map(|a| a.status.as_u16());
    answers.sort_unstable();
    assert_eq!(answers, [202, 409], "{one:?} / {other:?}");
    let refused = if one.status == StatusCode::CONFLICT {
        &one
    } else {
        &other
    };
    assert!(
        ["cancel_pending", "already_cancelled"]
            .contains(&refused.body["code"].as_str().unwrap_or("")),
        "{refused:?}"
    );

    // A reservation cancelled on both instances at once is cancelled, and refunded, once.
    api.flight("RACE1", 2).await;
    api.deposit("race-u", 100).await;
    let id = api.reserve("race-u", "RACE1").await.expect(201)["reservationId"]
        .as_str()
        .unwrap()
        .to_owned();
    api.reservation_status(&id, "CONFIRMED").await;
    let cancel = format!("/reservations/{id}/cancel");
    let (one, other) = race(
        &reservations,
        "SELECT 1 FROM reservations WHERE id = $1 FOR UPDATE",
        &id,
        reservation_1.post_empty(&cancel),
        reservation_2.post_empty(&cancel),
    )
    .await;
    let mut answers = [&one, &other].map(|a| (a.status.as_u16(), a.body["code"].clone()));
    answers.sort_by_key(|a| a.0);
    // The loser ran again on the cancelled reservation: refused for what it is now, not for
    // having raced.
    assert_eq!(
        answers,
        [(202, Value::Null), (409, json!("cancel_pending"))],
        "{one:?} / {other:?}"
    );
    api.reservation_status(&id, "CANCELLED").await;
    assert_eq!(api.balance("race-u").await, 100, "refunded once");

    // Two deposits at once both count, and the ledger's running balance counts each.
    api.deposit("race-w", 100).await;
    let deposit = json!({"amount": 100});
    let path = "/accounts/race-w/deposit";
    let (one, other) = race(
        &payments,
        "SELECT 1 FROM accounts WHERE user_id = $1 FOR UPDATE",
        "race-w",
        payment_1.post(path, deposit.clone()),
        payment_2.post(path, deposit.clone()),
    )
    .await;
    one.expect(200);
    other.expect(200);
    assert_eq!(api.balance("race-w").await, 300);
    let ledger = api.get("/accounts/race-w/movements").await.expect(200);
    let mut running: Vec<i64> = ledger
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["balanceAfter"].as_i64().unwrap())
        .collect();
    running.sort();
    assert_eq!(running, [100, 200, 300], "{ledger}");
    app.shutdown().await;
}

/// Runs `a` and `b` while the test holds the row `lock` selects (by `id`) in `database`, and
/// lets go only once both are waiting for it: both have read the row, neither has written it.
async fn race(
    database: &str,
    lock: &'static str,
    id: &str,
    a: impl Future<Output = Answer>,
    b: impl Future<Output = Answer>,
) -> (Answer, Answer) {
    use sqlx::Connection;
    let mut holder = sqlx::PgConnection::connect(&format!("{POSTGRES}/{database}"))
        .await
        .unwrap();
    let mut held = holder.begin().await.unwrap();
    let found = sqlx::query(sqlx::AssertSqlSafe(lock))
        .bind(id)
        .execute(&mut *held)
        .await
        .unwrap();
    assert_eq!(found.rows_affected(), 1, "{lock} [{id}]");
    let release = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while writers_waiting(database).await < 2 {
            assert!(
                Instant::now() < deadline,
                "both commands never reached the row"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        held.rollback().await.unwrap();
    };
    let (a, b, ()) = tokio::join!(a, b, release);
    (a, b)
}

/// Sessions on `database` whose `UPDATE` waits for a row lock.
async fn writers_waiting(database: &str) -> i64 {
    let mut admin = admin().await;
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity
         WHERE datname = $1 AND wait_event_type = 'Lock' AND query ILIKE 'UPDATE%'",
    )
    .bind(database)
    .fetch_one(&mut admin)
    .await
    .unwrap()
}
