//! The same black-box taxi and flight scenarios against the distributed topology: every service
//! its own process on PostgreSQL and NATS JetStream, behind the gateway (`tanda cluster`).

mod common;

use common::{NATS, POSTGRES, TestApp};
#[path = "scenarios/contract.rs"]
mod contract;
#[path = "scenarios/flight.rs"]
mod flight;
#[path = "scenarios/identity.rs"]
mod identity;
#[path = "scenarios/taxi.rs"]
mod taxi;

taxi_scenarios!(Distributed);

flight_scenarios!(Distributed);

identity_scenarios!(Distributed);

/// `POST /pays` is internal: pay's own process takes it only with the service credential that
/// dispatch presents — none is 401 (`WWW-Authenticate: Bearer`), a wrong one 403 — and creates
/// nothing without it. Dispatch, with the credential the cluster gave it, still charges trips.
#[tokio::test]
async fn pay_takes_a_payment_only_with_the_service_credential() {
    let mut app = TestApp::spawn(common::Topology::Distributed).await;
    let operator = app.api.bearer_token().await;
    let pay = common::Api::new(format!("http://{}", app.cluster().addrs["pay"])).anonymous();
    let charge = serde_json::json!({"bookId": "b-cred", "dispatchId": "d-cred", "amount": 1,
                                    "cardToken": "tok_4242_ok_0123456789abcdef"});
    let none = pay.post("/pays", charge.clone()).await;
    assert_eq!(none.headers["www-authenticate"], "Bearer");
    none.expect_problem(401, "unauthenticated");
    for authorization in [
        "Bearer not-the-service-secret",
        "Bearer 0123456789abcdef0123",
    ] {
        pay.send(
            pay.http
                .post(format!("{}/pays", pay.base))
                .header("authorization", authorization)
                .json(&charge),
        )
        .await
        .expect_problem(403, "forbidden");
    }
    assert_eq!(
        pay.as_token(&operator)
            .get("/pays?bookId=b-cred")
            .await
            .expect(200),
        serde_json::json!([])
    );

    let api = &app.api;
    api.register_driver("cred", common::CITY_HALL).await;
    api.online("cred").await;
    let (book_id, dispatch_id) = api
        .ride_to_in_trip("cust-cred", common::GOOD_CARD, "cred")
        .await;
    let ended = api
        .post(
            &format!("/dispatches/{dispatch_id}/end"),
            serde_json::json!({"driverId": "cred", "distanceMeters": 10_000}),
        )
        .await
        .expect(200);
    assert_eq!(ended["fare"], 11_200);
    api.book_status(&book_id, "COMPLETED").await;
    app.shutdown().await;
}

/// A service told nothing of where the services it calls are refuses to start and says which
/// `--upstream` it needs, rather than call 127.0.0.1 on a guessed port.
#[test]
fn a_service_without_its_upstreams_refuses_to_start_and_names_them() {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tanda"))
        .args(["serve", "dispatch", "--http-addr", "127.0.0.1:0"])
        .env("TANDA_NAMESPACE", "noupstream")
        .env("TANDA_SERVICE_SECRET", "a-service-secret-long-enough")
        .env_remove("TANDA_UPSTREAMS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (status, stderr) = refusal(
        child,
        "`tanda serve dispatch` started without knowing where pay and identity are",
    );
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("--upstream") && stderr.contains("pay") && stderr.contains("identity"),
        "{stderr}"
    );
}

/// Pay and dispatch refuse to start without the service secret, rather than run with pay's
/// internal route open; a secret too short to be safe is refused too.
#[test]
fn pay_and_dispatch_refuse_to_start_without_the_service_secret() {
    for (service, secret) in [("pay", None), ("dispatch", None), ("pay", Some("short"))] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tanda"));
        command
            .args(["serve", service, "--http-addr", "127.0.0.1:0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .env("TANDA_NAMESPACE", "nosecret")
            .env_remove("TANDA_SERVICE_SECRET");
        if let Some(secret) = secret {
            command.env("TANDA_SERVICE_SECRET", secret);
        }
        let (status, stderr) = refusal(
            command.spawn().unwrap(),
            &format!("`tanda serve {service}` started without a usable service secret"),
        );
        assert!(!status.success(), "{service}: {stderr}");
        assert!(
            stderr.contains("--service-secret") || stderr.contains("service secret"),
            "{service}: {stderr}"
        );
    }
}

/// How a process that should refuse to start ended, and what it said on stderr (piped); panics
/// with `started` if it is still running after ten seconds.
fn refusal(mut child: std::process::Child, started: &str) -> (std::process::ExitStatus, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{started}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

contract_scenarios!(Distributed);

/// With `--postgres-create-databases=false` (databases made in advance, no CREATEDB privilege),
/// a service whose database does not exist refuses to start and says which database it wants,
/// and creates nothing.
#[tokio::test]
async fn without_creating_databases_a_missing_one_is_a_clear_start_up_error() {
    let namespace = format!("nocreate{}", std::process::id());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tanda"))
        .args(["serve", "book", "--http-addr", "127.0.0.1:0"])
        .env("TANDA_NAMESPACE", &namespace)
        .env("TANDA_POSTGRES_CREATE_DATABASES", "false")
        .env("TANDA_UPSTREAMS", "identity=http://127.0.0.1:9")
        .env("TANDA_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("it stops rather than wait for a database nobody will make")
        .unwrap();
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(!status.success(), "{stderr}");
    let database = format!("{namespace}_book");
    assert!(stderr.contains(&database), "names the database: {stderr}");
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres"))
        .await
        .unwrap();
    let made: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
        .bind(&database)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(made, 0, "nothing created");
}

/// `sslmode` in the PostgreSQL URL is honoured: with `require`, every service's every session is
/// encrypted (a managed PostgreSQL accepts nothing else).
#[tokio::test]
async fn the_services_reach_postgresql_over_tls_when_the_url_requires_it() {
    let url = format!("{POSTGRES}?sslmode=require");
    let app = TestApp::spawn_cluster_on(&url, NATS, |_| {}).await;
    app.api.flight("TLS1", 2).await;
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&format!("{POSTGRES}/postgres"))
        .await
        .unwrap();
    let database = app.database_of(tanda::config::Service::Of(&tanda_reservation::SPEC));
    let namespace = database.trim_end_matches("_reservation").to_owned();
    let sessions: Vec<(String, bool)> = sqlx::query_as(
        "SELECT a.datname::text, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
         WHERE a.datname LIKE $1",
    )
    .bind(format!("{namespace}\\_%"))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(
        sessions.len() >= 10,
        "every service has sessions: {sessions:?}"
    );
    assert!(sessions.iter().all(|(_, ssl)| *ssl), "{sessions:?}");
    app.shutdown().await;
}
