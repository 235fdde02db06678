//! Demo mode, black-box over HTTP: the simulated drivers take and finish a customer's ride, the
//! demo flights are on sale, and starting the demo again on the same data duplicates nothing.

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tanda::Cli;
use tanda::demo::{self, Ready};
use tokio_util::sync::CancellationToken;

/// Ten times faster than a person watching would like it.
const PACE: f64 = 0.1;
const SEOUL_STATION: (f64, f64) = (37.5547, 126.9707);
const DEMO_FLIGHTS: [&str; 6] = ["KE1203", "KE1105", "KE703", "OZ1145", "CI161", "CX417"];
const EVERYTHING: Ready = Ready {
    drivers: 12,
    flights: 6,
};

/// Books Seoul Station → Gangnam Station once book has heard of an available driver.
async fn book_from_seoul_station(api: &Api, customer: &str) -> String {
    let body = json!({"customerId": customer, "customerName": "Hong Gildong", "phone": "010-2233-0002",
        "card": GOOD_CARD,
        "pickup": {"name": "Seoul Station", "lat": SEOUL_STATION.0, "lng": SEOUL_STATION.1},
        "dropoff": {"name": "Gangnam Station", "lat": GANGNAM.0, "lng": GANGNAM.1}});
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = api.post("/books", body.clone()).await;
        if answer.status != StatusCode::SERVICE_UNAVAILABLE {
            return answer.expect(201)["bookId"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no demo driver ever became available"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The drivers whose id starts with `demo-`, sorted.
async fn demo_drivers(api: &Api) -> Vec<Value> {
    let all = api.get("/drivers").await.expect(200);
    let mut demo: Vec<Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["driverId"].as_str().unwrap().starts_with("demo-"))
        .cloned()
        .collect();
    demo.sort_by_key(|d| d["driverId"].as_str().unwrap().to_owned());
    demo
}

#[tokio::test]
async fn the_demo_fleet_completes_a_booked_ride_and_the_demo_flights_are_on_sale() {
    let app = TestApp::spawn(Topology::AllInOne).await;
    let api = &app.api;
    let demo = demo::start(
        &api.base,
        PACE,
        OPERATOR_PASSWORD,
        &CancellationToken::new(),
    );
    assert_eq!(demo.ready().await, Some(EVERYTHING));

    let drivers = demo_drivers(api).await;
    assert_eq!(drivers.len(), 12);
    assert_eq!(drivers[0]["driverId"], "demo-01");
    assert_eq!(drivers[0]["phone"], "010-1234-5601");
    assert!(
        drivers.iter().all(|d| d["status"] == "AVAILABLE"),
        "{drivers:?}"
    );

    let book_id = book_from_seoul_station(api, "cust-demo").await;
    let book = api.book_status(&book_id, "COMPLETED").await;
    // The driver waiting at Seoul Station is the nearest.
    assert_eq!(book["taxi"]["driverId"], "demo-01", "{book}");
    assert!(book["fare"].as_i64().unwrap() > 4_800, "{book}");
    let dispatch = &api
        .get(&format!("/dispatches?bookId={book_id}"))
        .await
        .expect(200)[0];
    // 8.1 km in a straight line, by road about 1.3 times that.
    let distance = dispatch["distanceMeters"].as_i64().unwrap();
    assert!((10_000..11_500).contains(&distance), "{dispatch}");
    // Back at work where the ride ended.
    api.eventually("/drivers/demo-01", "demo-01 available at Gangnam", |d| {
        d["status"] == "AVAILABLE" && d["location"] == json!({"lat": GANGNAM.0, "lng": GANGNAM.1})
    })
    .await;

    let flights = api.get("/flights").await.expect(200);
    for id in DEMO_FLIGHTS {
        let flight = flights
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["flightId"] == id)
            .unwrap_or_else(|| panic!("{id} is missing from {flights}"));
        assert_eq!(flight["seats"], 180, "{flight}");
        assert_eq!(flight["seatsLeft"], 180, "{flight}");
        let price = flight["price"].as_i64().unwrap();
        assert!((89_000..=420_000).contains(&price), "{flight}");
        let departs = humantime::parse_rfc3339(flight["departsAt"].as_str().unwrap()).unwrap();
        assert!(departs > std::time::SystemTime::now(), "{flight}");
    }

    demo.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn starting_the_demo_again_on_the_same_data_duplicates_nothing() {
    let app = TestApp::spawn(Topology::AllInOne).await;
    let api = &app.api;
    let first = demo::start(
        &api.base,
        PACE,
        OPERATOR_PASSWORD,
        &CancellationToken::new(),
    );
    assert_eq!(first.ready().await, Some(EVERYTHING));
    first.stop().await;

    let stop = CancellationToken::new();
    let again = demo::start(&api.base, PACE, OPERATOR_PASSWORD, &stop);
    assert_eq!(again.ready().await, Some(EVERYTHING));
    let drivers = demo_drivers(api).await;
    let ids: Vec<&str> = drivers
        .iter()
        .map(|d| d["driverId"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=12).map(|n| format!("demo-{n:02}")).collect();
    assert_eq!(ids, expected);
    let flights = api.get("/flights").await.expect(200);
    assert_eq!(
        flights.as_array().unwrap().len(),
        DEMO_FLIGHTS.len(),
        "{flights}"
    );

    // The drivers found from the first run work.
    let book_id = book_from_seoul_station(api, "cust-again").await;
    api.book_status(&book_id, "COMPLETED").await;

    // Stopping through the token given to start stops the demo too.
    stop.cancel();
    again.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_ride_left_in_trip_by_an_earlier_run_is_finished_when_the_demo_starts() {
    let app = TestApp::spawn(Topology::AllInOne).await;
    let api = &app.api;
    api.register_driver("demo-01", SEOUL_STATION).await;
    api.online("demo-01").await;
    let (book_id, _) = api.ride_to_in_trip("cust-left", GOOD_CARD, "demo-01").await;

    let demo = demo::start(
        &api.base,
        PACE,
        OPERATOR_PASSWORD,
        &CancellationToken::new(),
    );
    let book = api.book_status(&book_id, "COMPLETED").await;
    assert!(book["fare"].as_i64().unwrap() > 0, "{book}");
    assert_eq!(demo.ready().await, Some(EVERYTHING));
    api.driver_status("demo-01", "AVAILABLE").await;

    demo.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_binary_with_the_demo_flag_serves_a_ride_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let tanda = Proc::start(
        dir.path(),
        &[("TANDA_DEMO", "1"), ("TANDA_DEMO_PACE", "0.1")],
    );
    let book_id = book_from_seoul_station(&tanda.api, "cust-binary").await;
    tanda.api.book_status(&book_id, "COMPLETED").await;
    let flights = tanda.api.get("/flights").await.expect(200);
    assert_eq!(
        flights.as_array().unwrap().len(),
        DEMO_FLIGHTS.len(),
        "{flights}"
    );
    assert!(tanda.terminate().success());
}

#[test]
fn the_demo_flags() {
    let cli = Cli::parse_from(["tanda", "--demo", "--demo-pace", "0.25"]);
    assert!(cli.run.demo);
    assert_eq!(cli.run.demo_pace, 0.25);
    let cli = Cli::parse_from(["tanda"]);
    assert!(!cli.run.demo);
    assert_eq!(cli.run.demo_pace, 1.0);
    for bad in ["0", "-1", "fast", "NaN"] {
        assert!(
            Cli::try_parse_from(["tanda", "--demo-pace", bad]).is_err(),
            "{bad}"
        );
    }
}
