//! Several instances of a service behave as one: what an operator who runs two of each sees,
//! in the distributed topology (PostgreSQL + NATS JetStream, one process per instance).

mod common;

use common::*;
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

/// One driver, four bookings at once, two instances of dispatch matching them: the driver is
/// offered one ride, whichever instances tried, and the other bookings wait for a driver.
#[tokio::test]
async fn a_driver_is_offered_one_ride_at_a_time_whatever_instance_offers() {
    let Two { app, api, .. } = Two::of(Service::Of(&tanda_dispatch::SPEC)).await;
    let api = &api;
    api.register_driver("only-d", NEAR).await;
    api.online("only-d").await;
    let books = futures::future::join_all(
        (0..4).map(|n| async move { api.book(&format!("cust-{n}"), GOOD_CARD).await }),
    )
    .await;
    let mut offers = 0;
    for book in &books {
        let path = format!("/dispatches?bookId={}", book["bookId"].as_str().unwrap());
        let list = api
            .eventually(&path, "a dispatch", |l| l[0]["status"].is_string())
            .await;
        offers += usize::from(list[0]["offer"]["driverId"] == "only-d");
    }
    assert_eq!(offers, 1, "rides offered to the one driver");
    assert_eq!(
        api.get("/drivers/only-d/offers")
            .await
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
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
