//! Several instances of a service behave as one: what an operator who runs two of each sees,
//! in the distributed topology (PostgreSQL + NATS JetStream, one process per instance).

mod common;

use common::*;
use serde_json::Value;
use tanda::config::Service;

/// The distributed topology with two instances of `service`.
struct Two {
    app: TestApp,
    /// Through the gateway, as the operator.
    api: Api,
    /// Each instance at its own address, as the operator.
    first: Api,
    second: Api,
}

impl Two {
    async fn of(service: Service) -> Self {
        let mut app = TestApp::spawn(Topology::Distributed).await;
        let api = app.api.clone();
        let token = api.bearer_token().await;
        let cluster = app.cluster();
        let first = cluster.addrs[service.name()];
        let second = cluster
            .add_instance(service)
            .await
            .expect("a second instance starts");
        let at = |addr| Api::new(format!("http://{addr}")).as_token(&token);
        let (first, second) = (at(first), at(second));
        Self {
            app,
            api,
            first,
            second,
        }
    }
}

/// About 75 m from City Hall, where every booking's pickup is.
const NEAR: (f64, f64) = (37.5668, 126.9785);
/// About 4.5 km north of it: inside the 5 km pickup radius.
const FAR: (f64, f64) = (37.6068, 126.9779);

/// The two instances of dispatch share the bookings (one durable consumer): whichever of them
/// hears of a booking, and whichever registered, brought online or moved the drivers, the offer
/// goes to the nearest one. Each booking is cancelled once offered, which frees the driver.
#[tokio::test]
async fn the_nearest_driver_gets_every_offer_whichever_instance_knows_them() {
    let Two {
        app,
        api,
        first,
        second,
    } = Two::of(Service::Of(&tanda_dispatch::SPEC)).await;
    first.register_driver("far-d", FAR).await;
    first.online("far-d").await;
    second.register_driver("near-d", NEAR).await;
    second.online("near-d").await;

    let mut offered = Vec::new();
    for n in 0..6 {
        let book_id = api.book(&format!("cust-{n}"), GOOD_CARD).await["bookId"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/dispatches?bookId={book_id}");
        let list = api
            .eventually(&path, "an offer", |l| l[0]["offer"]["driverId"].is_string())
            .await;
        offered.push(list[0]["offer"]["driverId"].as_str().unwrap().to_owned());
        api.post_empty(&format!("/books/{book_id}/cancel"))
            .await
            .expect(202);
        api.book_status(&book_id, "CANCELLED_BY_CUSTOMER").await;
        for driver in ["near-d", "far-d"] {
            api.driver_status(driver, "AVAILABLE").await;
        }
    }
    assert_eq!(offered, vec!["near-d"; 6], "who was offered each ride");
    app.shutdown().await;
}

/// Three drivers, eight bookings at once, two instances of dispatch matching them: no driver is
/// offered two rides, whichever instances tried, and as many rides are offered as there are
/// drivers for them. (Book refuses a booking once it has heard that every driver is taken: those
/// are `503 no_taxi_available`, and not counted.)
#[tokio::test]
async fn a_driver_is_offered_one_ride_at_a_time_whatever_instance_offers() {
    let Two { app, api, .. } = Two::of(Service::Of(&tanda_dispatch::SPEC)).await;
    let api = &api;
    let drivers = ["one-d", "two-d", "three-d"];
    for driver in drivers {
        api.register_driver(driver, NEAR).await;
        api.online(driver).await;
    }
    // Book hears of the drivers from events: the first booking waits until it has.
    let first = api.book("cust-0", GOOD_CARD).await;
    let answers = futures::future::join_all((1..8).map(|n| async move {
        api.post("/books", Api::booking(&format!("cust-{n}"), GOOD_CARD))
            .await
    }))
    .await;
    let accepted: Vec<Value> = std::iter::once(first)
        .chain(
            answers
                .into_iter()
                .filter(|a| a.status == 201)
                .map(|a| a.body),
        )
        .collect();
    let mut offered = Vec::new();
    for book in &accepted {
        let path = format!("/dispatches?bookId={}", book["bookId"].as_str().unwrap());
        let list = api
            .eventually(&path, "a dispatch", |l| l[0]["status"].is_string())
            .await;
        if let Some(driver) = list[0]["offer"]["driverId"].as_str() {
            offered.push(driver.to_owned());
        }
    }
    offered.sort();
    let mut once = offered.clone();
    once.dedup();
    assert_eq!(offered, once, "a driver offered two rides");
    assert_eq!(offered.len(), accepted.len().min(drivers.len()));
    app.shutdown().await;
}

/// A consumer paused through the gateway is paused on every instance of its service, and
/// resumed on every one: the switch is kept in the service's database, not in the process the
/// request happened to reach.
#[tokio::test]
async fn a_pause_reaches_every_instance() {
    let Two {
        app, api, second, ..
    } = Two::of(Service::Of(&tanda_ride_history::SPEC)).await;
    let paused_on = async |instance: &Api, paused: bool| {
        instance
            .eventually("/admin/consumers", "the switch", |list| {
                list.as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["name"] == "ride-history" && c["paused"] == paused)
            })
            .await;
    };
    api.post_empty("/admin/consumers/ride-history/pause")
        .await
        .expect(200);
    paused_on(&second, true).await;

    // Dispatch reads the same stream: once it has the booking, a running ride-history would
    // have had it too.
    api.register_driver("pause-d", NEAR).await;
    api.online("pause-d").await;
    let book_id = api.book("pause-c", GOOD_CARD).await["bookId"]
        .as_str()
        .unwrap()
        .to_owned();
    api.offer_for("pause-d").await;
    let path = format!("/rideHistories/{book_id}");
    assert_eq!(api.get(&path).await.status, 404, "recorded while paused");

    api.post_empty("/admin/consumers/ride-history/resume")
        .await
        .expect(200);
    paused_on(&second, false).await;
    api.eventually(&path, "the ride, once resumed", |ride| {
        ride["bookId"] == book_id.as_str()
    })
    .await;
    app.shutdown().await;
}

/// The simulated card network's mode set through the gateway is the mode of every instance of
/// pay: it is kept in pay's database.
#[tokio::test]
async fn the_card_networks_mode_holds_on_every_instance_of_pay() {
    let Two {
        app, api, second, ..
    } = Two::of(Service::Of(&tanda_pay::SPEC)).await;
    let down = serde_json::json!({"latencyMs": 0, "down": true, "answerDelayMs": 0});
    api.put("/admin/card-network", down.clone())
        .await
        .expect(200);
    assert_eq!(second.get("/admin/card-network").await.expect(200), down);
    app.shutdown().await;
}

/// Two instances of every service behind the gateway: while one instance of payment is killed,
/// no request through the gateway fails. Reads, and deposits with an `Idempotency-Key`, go on to
/// the other instance when the first cannot answer; each deposit is counted once.
#[tokio::test]
async fn killing_one_instance_fails_no_request_through_the_gateway() {
    let mut app = TestApp::spawn_replicated(POSTGRES, NATS, 2, |_| {}).await;
    let api = app.api.clone();
    let token = api.bearer_token().await;
    api.deposit("kill-u", 1).await;
    const DEPOSITS: i64 = 40;
    let load = tokio::spawn({
        let (http, base) = (api.http.clone(), api.base.clone());
        async move {
            let mut failures = Vec::new();
            for n in 0..DEPOSITS {
                let deposit = http
                    .post(format!("{base}/accounts/kill-u/deposit"))
                    .bearer_auth(&token)
                    .header("idempotency-key", format!("kill-{n}"))
                    .json(&serde_json::json!({"amount": 10}))
                    .send()
                    .await;
                let read = http
                    .get(format!("{base}/accounts/kill-u"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                for answer in [deposit, read] {
                    match answer {
                        Ok(a) if a.status().is_success() => {}
                        Ok(a) => failures.push(format!(
                            "{} {}",
                            a.status(),
                            a.text().await.unwrap_or_default()
                        )),
                        Err(e) => failures.push(e.to_string()),
                    }
                }
            }
            failures
        }
    });
    // Killed once the load is under way.
    api.eventually("/accounts/kill-u", "a few deposits", |a| {
        a["balance"].as_i64().is_some_and(|b| b > 1 + 10 * 5)
    })
    .await;
    app.cluster().kill9(Service::Of(&tanda_payment::SPEC)).await;
    let failures = load.await.unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(api.balance("kill-u").await, 1 + 10 * DEPOSITS);
    app.shutdown().await;
}
