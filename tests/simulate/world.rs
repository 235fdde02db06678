//! The simulated world: the running system, what its users were told, and the seeded choice of
//! what happens next.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::check;
use crate::common::{Api, GOOD_CARD, Proc};

/// Offers time out quickly, so that drivers' accepts race their timeouts; the deadline is short,
/// so that bookings nobody takes reach their answer within the run; dispatch waits 1 s for pay,
/// and its breaker, once open, stays open 2 s.
const ENV: &[(&str, &str)] = &[
    ("TANDA_DISPATCH_OFFER_TIMEOUT", "400ms"),
    ("TANDA_DISPATCH_DEADLINE", "3s"),
    ("TANDA_PAY_TIMEOUT", "1s"),
    ("TANDA_PAY_RETRIES", "1"),
    ("TANDA_PAY_BREAKER_OPEN_FOR", "2s"),
];
const SEOUL: (f64, f64) = (37.5665, 126.9780);
const DECLINED_CARD: &str = "4000000000000002";
/// The consumers a fault may pause (each is resumed by a later step, or when the faults stop).
const CONSUMERS: &[&str] = &[
    "book",
    "dispatch",
    "payment",
    "reservation",
    "ticket",
    "notify",
    "ride-history",
];

/// SplitMix64: small, fast, and the same numbers for the same seed everywhere.
pub struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[self.below(from.len())]
    }
}

pub struct World {
    dir: TempDir,
    tanda: Option<Proc>,
    pub api: Api,
    pub rng: Rng,
    pub drivers: Vec<String>,
    pub customers: Vec<String>,
    pub users: Vec<String>,
    /// Each flight and its seats.
    pub flights: BTreeMap<String, i64>,
    /// Bookings answered 201.
    pub books: Vec<String>,
    /// Reservations answered 201.
    pub reservations: Vec<String>,
    /// Won deposited per user: answered 200, and asked for in requests that died with the
    /// process (which may or may not have been applied).
    pub deposited: BTreeMap<String, i64>,
    pub deposits_unanswered: BTreeMap<String, i64>,
    paused: BTreeSet<&'static str>,
    story: Vec<String>,
}

impl World {
    pub async fn start(seed: u64) -> World {
        let dir = tempfile::tempdir().unwrap();
        let tanda = Proc::start(dir.path(), ENV);
        let api = tanda.api.clone();
        let mut world = World {
            dir,
            tanda: Some(tanda),
            api,
            rng: Rng(seed),
            drivers: (0..4).map(|i| format!("sim-d{i}")).collect(),
            customers: (0..5).map(|i| format!("sim-c{i}")).collect(),
            users: (0..5).map(|i| format!("sim-u{i}")).collect(),
            flights: BTreeMap::from([("SIM100".into(), 3), ("SIM200".into(), 5)]),
            books: Vec::new(),
            reservations: Vec::new(),
            deposited: BTreeMap::new(),
            deposits_unanswered: BTreeMap::new(),
            paused: BTreeSet::new(),
            story: vec![format!("seed {seed}")],
        };
        world.set_up().await;
        world
    }

    async fn set_up(&mut self) {
        for (i, driver) in self.drivers.clone().iter().enumerate() {
            let at = (SEOUL.0 + 0.002 * i as f64, SEOUL.1 - 0.002 * i as f64);
            self.api.register_driver(driver, at).await;
            self.api.online(driver).await;
        }
        for (flight, seats) in self.flights.clone() {
            self.api.flight(&flight, seats).await;
        }
    }

    /// How many steps the story tells of, faults included.
    pub fn steps(&self) -> usize {
        self.story.len() - 1
    }

    /// What happened so far, one line per step.
    pub fn story(&self) -> String {
        self.story.join("\n")
    }

    fn tell(&mut self, line: String) {
        self.story.push(line);
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// One step of the workload, or a fault.
    pub async fn step(&mut self) {
        match self.rng.below(100) {
            0..=17 => self.book().await,
            18..=47 => self.drive().await,
            48..=52 => self.cancel_book().await,
            53..=64 => self.reserve().await,
            65..=69 => self.cancel_reservation().await,
            70..=77 => self.deposit().await,
            78..=79 => self.restart().await,
            80..=81 => self.kill_mid_request().await,
            82..=87 => self.pause_or_resume().await,
            88..=92 => self.card_network().await,
            _ => {
                let pause = Duration::from_millis(self.rng.below(300) as u64);
                self.tell(format!("let {pause:?} pass"));
                tokio::time::sleep(pause).await;
            }
        }
    }

    async fn book(&mut self) {
        let customer = self.rng.pick(&self.customers).clone();
        let card = if self.rng.chance(15) {
            DECLINED_CARD
        } else {
            GOOD_CARD
        };
        let answer = self.api.post("/books", Api::booking(&customer, card)).await;
        self.tell(format!("book for {customer} ({card}): {}", answer.status));
        match answer.status.as_u16() {
            201 => self
                .books
                .push(answer.body["bookId"].as_str().unwrap().to_owned()),
            503 => assert_eq!(answer.body["code"], "no_taxi_available", "{}", answer.body),
            _ => panic!("a booking answered {}: {}", answer.status, answer.body),
        }
    }

    /// A driver does the next thing their state calls for: answers an offer, starts or ends a trip.
    async fn drive(&mut self) {
        let driver = self.rng.pick(&self.drivers).clone();
        let me = self
            .api
            .get(&format!("/drivers/{driver}"))
            .await
            .expect(200);
        let Some(dispatch_id) = me["dispatchId"].as_str() else {
            return;
        };
        let path = format!("/dispatches/{dispatch_id}");
        let dispatch = self.api.get(&path).await.expect(200);
        let (action, body) = match (me["status"].as_str().unwrap(), dispatch["status"].as_str()) {
            ("OFFERED", _) if self.rng.chance(80) => ("accept", json!({"driverId": driver})),
            ("OFFERED", _) => ("decline", json!({"driverId": driver})),
            ("DISPATCHED", Some("DISPATCHED")) => ("start", json!({"driverId": driver})),
            ("IN_TRIP", Some("IN_TRIP")) => ("end", self.settlement(&driver)),
            _ => return,
        };
        let answer = self
            .api
            .post(&format!("{path}/{action}"), body.clone())
            .await;
        self.tell(format!(
            "{driver} {action}s {dispatch_id} {body}: {}",
            answer.status
        ));
        let allowed: &[u16] = match action {
            // The offer may have timed out, or the booking been cancelled, meanwhile.
            "accept" | "decline" | "start" => &[200, 409],
            // Declined card; the card network down or the breaker open.
            _ => &[200, 402, 503],
        };
        assert!(
            allowed.contains(&answer.status.as_u16()),
            "{action} answered {}: {}",
            answer.status,
            answer.body
        );
    }

    fn settlement(&mut self, driver: &str) -> Value {
        let settlement = if self.rng.chance(20) { "CASH" } else { "CARD" };
        json!({"driverId": driver, "settlement": settlement})
    }

    async fn cancel_book(&mut self) {
        let books = self.books.clone();
        self.cancel_one_of(&books, |id| format!("/books/{id}/cancel"))
            .await;
    }

    async fn reserve(&mut self) {
        let user = self.rng.pick(&self.users).clone();
        let flights: Vec<String> = self.flights.keys().cloned().collect();
        let flight = self.rng.pick(&flights).clone();
        let answer = self.api.reserve(&user, &flight).await;
        self.tell(format!("{user} reserves on {flight}: {}", answer.status));
        match answer.status.as_u16() {
            201 => self
                .reservations
                .push(answer.body["reservationId"].as_str().unwrap().to_owned()),
            409 => assert_eq!(answer.body["code"], "sold_out", "{}", answer.body),
            503 => assert_eq!(answer.body["code"], "payment_overloaded", "{}", answer.body),
            _ => panic!("a reservation answered {}: {}", answer.status, answer.body),
        }
    }

    async fn cancel_reservation(&mut self) {
        let reservations = self.reservations.clone();
        let path = |id: &str| format!("/reservations/{id}/cancel");
        self.cancel_one_of(&reservations, path).await;
    }

    /// Cancels one of `ids` (at `path(id)`): accepted, or refused as too late or done already.
    async fn cancel_one_of(&mut self, ids: &[String], path: impl Fn(&str) -> String) {
        if ids.is_empty() {
            return;
        }
        let path = path(self.rng.pick(ids).as_str());
        let answer = self.api.post_empty(&path).await;
        self.tell(format!("POST {path}: {}", answer.status));
        let status = answer.status.as_u16();
        assert!([202, 409].contains(&status), "{}", answer.body);
    }

    async fn deposit(&mut self) {
        let user = self.rng.pick(&self.users).clone();
        let amount = [40, 100, 250][self.rng.below(3)];
        self.api.deposit(&user, amount).await;
        self.tell(format!("{user} deposits {amount}"));
        *self.deposited.entry(user).or_default() += amount;
    }

    /// kill -9, and the same binary started again on the same data: paused consumers stay
    /// paused and the card network keeps its mode (both are kept in the databases).
    pub async fn restart(&mut self) {
        self.tell("kill -9, restart".into());
        self.tanda.take().unwrap().kill9();
        self.start_again().await;
    }

    /// kill -9 while a request is on its way: a driver ending a trip, a deposit, a booking or a
    /// reservation. Whatever the request did is whole or not done at all; only an answer counts
    /// as acknowledged.
    async fn kill_mid_request(&mut self) {
        let user = self.rng.pick(&self.users).clone();
        let customer = self.rng.pick(&self.customers).clone();
        let amount = 100;
        let (path, body) = match self.rng.below(4) {
            0 => match self.trip_in_progress().await {
                Some((path, driver)) => (path, self.settlement(&driver)),
                None => return,
            },
            1 => (
                format!("/accounts/{user}/deposit"),
                json!({"amount": amount}),
            ),
            2 => ("/books".to_owned(), Api::booking(&customer, GOOD_CARD)),
            _ => (
                "/reservations".to_owned(),
                json!({"userId": user, "flightId": "SIM200"}),
            ),
        };
        let token = self.api.bearer_token().await;
        let request = self
            .api
            .http
            .post(format!("{}{path}", self.api.base))
            .bearer_auth(token)
            .json(&body)
            .send();
        let after = Duration::from_millis(self.rng.below(150) as u64);
        let tanda = self.tanda.take().unwrap();
        let kill = async move {
            tokio::time::sleep(after).await;
            tanda.kill9();
        };
        let (answer, ()) = tokio::join!(request, kill);
        let answer = match answer {
            Ok(r) => Some((
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            )),
            Err(_) => None,
        };
        let status = answer.as_ref().map(|a| a.0);
        self.tell(format!(
            "POST {path} {body}, killed after {after:?}: {status:?}"
        ));
        if path.ends_with("/deposit") {
            let counted = match status {
                Some(200) => &mut self.deposited,
                _ => &mut self.deposits_unanswered,
            };
            *counted.entry(user).or_default() += amount;
        }
        match (path.as_str(), answer) {
            ("/books", Some((201, body))) => {
                self.books.push(body["bookId"].as_str().unwrap().into());
            }
            ("/reservations", Some((201, body))) => self
                .reservations
                .push(body["reservationId"].as_str().unwrap().into()),
            _ => {}
        }
        self.start_again().await;
    }

    /// The `end` path of a trip in progress, and its driver.
    async fn trip_in_progress(&mut self) -> Option<(String, String)> {
        for driver in self.drivers.clone() {
            let me = self
                .api
                .get(&format!("/drivers/{driver}"))
                .await
                .expect(200);
            if me["status"] == "IN_TRIP" {
                let dispatch_id = me["dispatchId"].as_str().unwrap();
                return Some((format!("/dispatches/{dispatch_id}/end"), driver));
            }
        }
        None
    }

    async fn start_again(&mut self) {
        let tanda = Proc::start(self.dir.path(), ENV);
        self.api = tanda.api.clone();
        self.tanda = Some(tanda);
        check::meanwhile(self).await;
    }

    async fn pause_or_resume(&mut self) {
        let consumer = *self.rng.pick(CONSUMERS);
        let verb = if self.paused.remove(consumer) {
            "resume"
        } else {
            self.paused.insert(consumer);
            "pause"
        };
        let path = format!("/admin/consumers/{consumer}/{verb}");
        self.api.post_empty(&path).await.expect(200);
        self.tell(format!("{verb} {consumer}"));
    }

    async fn card_network(&mut self) {
        let mode = match self.rng.below(5) {
            0 => json!({"latencyMs": 0, "down": true}),
            1 => json!({"latencyMs": 300, "down": false}),
            2 => json!({"latencyMs": 0, "down": false, "answerDelayMs": 300}),
            // Past dispatch's patience (`TANDA_PAY_TIMEOUT`): charged, but the answer is lost.
            3 => json!({"latencyMs": 0, "down": false, "answerDelayMs": 1_200}),
            _ => json!({"latencyMs": 0, "down": false}),
        };
        self.api
            .put("/admin/card-network", mode.clone())
            .await
            .expect(200);
        self.tell(format!("card network {mode}"));
    }

    /// The faults stop: every consumer runs, the card network is well.
    pub async fn stop_faults(&mut self) {
        for consumer in std::mem::take(&mut self.paused) {
            let path = format!("/admin/consumers/{consumer}/resume");
            self.api.post_empty(&path).await.expect(200);
        }
        let well = json!({"latencyMs": 0, "down": false});
        self.api.put("/admin/card-network", well).await.expect(200);
        self.tell("faults stop".into());
    }

    /// Drivers take and finish every ride they are given (a declined card is settled in cash),
    /// until every booking and every reservation has reached its end.
    pub async fn finish_everything(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check::all_at_an_end(self).await {
            assert!(Instant::now() < deadline, "the run never came to rest");
            for driver in self.drivers.clone() {
                self.finish_ride_of(&driver).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn finish_ride_of(&mut self, driver: &str) {
        let me = self
            .api
            .get(&format!("/drivers/{driver}"))
            .await
            .expect(200);
        let Some(dispatch_id) = me["dispatchId"].as_str() else {
            return;
        };
        let path = format!("/dispatches/{dispatch_id}");
        let by = json!({"driverId": driver});
        let answer = match me["status"].as_str().unwrap() {
            "OFFERED" => self.api.post(&format!("{path}/accept"), by).await,
            "DISPATCHED" => self.api.post(&format!("{path}/start"), by).await,
            "IN_TRIP" => {
                let end = self.api.post(&format!("{path}/end"), by).await;
                if end.status != 402 {
                    end
                } else {
                    let cash = json!({"driverId": driver, "settlement": "CASH"});
                    self.api.post(&format!("{path}/end"), cash).await
                }
            }
            _ => return,
        };
        self.tell(format!(
            "{driver} finishes {dispatch_id}: {}",
            answer.status
        ));
    }

    /// Stops the process cleanly (SIGTERM), for the checks that read its files.
    pub fn stop(&mut self) {
        let status = self.tanda.take().unwrap().terminate();
        assert!(status.success(), "exit status {status}");
    }
}
