//! Demo mode (`tanda --demo`): twelve simulated drivers around Seoul take, drive and finish rides,
//! and a few flights from Seoul are on sale, so a newcomer can try the web pages by clicking.
//! The demo is a client of the gateway's public HTTP API, exactly like a user's app: it never
//! reaches into a service, so it works the same against all-in-one and the cluster.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tanda_core::clock::{Clock, SystemClock, Timestamp, rfc3339};
use tanda_core::geo::LatLng;
use tanda_web::places::{Place, SEOUL};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

// Pauses, in seconds before the pace multiplier.
/// Between two looks at a driver's offers.
const POLL: f64 = 0.5;
/// A driver reads the offer before accepting it.
const THINK: f64 = 1.5;
/// The longest drive to a pickup, whatever the estimate says, so rides finish while one watches.
const MAX_PICKUP: f64 = 4.0;
/// From boarding to the drop-off.
const RIDE: f64 = 6.0;
/// After the API could not be reached.
const RECONNECT: f64 = 1.0;
/// Between two attempts to end a ride whose payment failed.
const END_RETRY: f64 = 3.0;
/// Attempts to end a ride before the driver leaves it for the next status check.
const END_ATTEMPTS: u32 = 4;
/// Polls between two checks of a driver's status for a ride left unfinished (about 30 s).
const CHECK_EVERY: u32 = 60;

/// Roads are longer than the straight line between two points.
const ROAD_FACTOR: f64 = 1.3;
/// Seats of every demo flight.
const SEATS: i64 = 180;
const DAY_MS: Timestamp = 86_400_000;
/// Korea Standard Time is UTC+9 all year.
const KST_OFFSET_MS: Timestamp = 9 * 3_600_000;

const NAMES: [&str; 12] = [
    "김민준",
    "이서연",
    "박지훈",
    "최수아",
    "정도윤",
    "강하은",
    "조예준",
    "윤지우",
    "장서준",
    "임하윤",
    "한지호",
    "오유진",
];
/// Taxi plates use 바, 사, 아 and 자.
const CAR_NUMBERS: [&str; 12] = [
    "32바 1024",
    "51사 2087",
    "33아 3310",
    "71자 4452",
    "30바 5128",
    "52사 6631",
    "34아 7045",
    "72자 8219",
    "31바 9376",
    "53사 1482",
    "35아 2593",
    "73자 3607",
];

/// A flight the demo puts on sale, departing `days_ahead` days from today at a fixed time of day
/// in Seoul.
struct DemoFlight {
    id: &'static str,
    from: &'static str,
    to: &'static str,
    days_ahead: i64,
    departs_kst: (i64, i64),
    price: i64,
}

const FLIGHTS: [DemoFlight; 6] = [
    DemoFlight {
        id: "KE1203",
        from: "GMP",
        to: "CJU",
        days_ahead: 1,
        departs_kst: (7, 30),
        price: 89_000,
    },
    DemoFlight {
        id: "KE1105",
        from: "GMP",
        to: "PUS",
        days_ahead: 1,
        departs_kst: (18, 10),
        price: 94_000,
    },
    DemoFlight {
        id: "KE703",
        from: "ICN",
        to: "NRT",
        days_ahead: 2,
        departs_kst: (9, 55),
        price: 289_000,
    },
    DemoFlight {
        id: "OZ1145",
        from: "GMP",
        to: "KIX",
        days_ahead: 2,
        departs_kst: (13, 40),
        price: 265_000,
    },
    DemoFlight {
        id: "CI161",
        from: "ICN",
        to: "TPE",
        days_ahead: 3,
        departs_kst: (14, 20),
        price: 312_000,
    },
    DemoFlight {
        id: "CX417",
        from: "ICN",
        to: "HKG",
        days_ahead: 3,
        departs_kst: (8, 40),
        price: 420_000,
    },
];

/// What the demo brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// Drivers registered (or found from an earlier run) and at work.
    pub drivers: usize,
    /// Demo flights that exist.
    pub flights: usize,
}

/// The running demo: its tasks, stopped by [`Demo::stop`] or by the token given to [`start`].
pub struct Demo {
    cancel: CancellationToken,
    tasks: TaskTracker,
    ready: watch::Receiver<Option<Ready>>,
}

/// Starts the demo against the gateway at `base_url` (e.g. `http://127.0.0.1:8080`), with every
/// pause multiplied by `pace`. It runs until `cancel` is cancelled or [`Demo::stop`]. The demo
/// signs in as the operator with `operator_password`: it schedules flights, and registers and
/// drives its drivers on their behalf, as a fleet operator would.
pub fn start(
    base_url: &str,
    pace: f64,
    operator_password: &str,
    cancel: &CancellationToken,
) -> Demo {
    let cancel = cancel.child_token();
    let client = Client::new(base_url, pace, operator_password, cancel.clone());
    let tasks = TaskTracker::new();
    let (ready_tx, ready) = watch::channel(None);
    tasks.spawn(open(client, tasks.clone(), ready_tx));
    Demo {
        cancel,
        tasks,
        ready,
    }
}

impl Demo {
    /// Waits until every driver is at work and the flights exist; `None` if the demo stopped
    /// first.
    pub async fn ready(&self) -> Option<Ready> {
        let mut ready = self.ready.clone();
        ready.wait_for(Option::is_some).await.ok().and_then(|r| *r)
    }

    /// Stops every simulated driver after the call in hand, and waits for them.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Sets the demo up: the drivers start working as soon as each is registered; the flights are
/// created meanwhile. Logs once everything is up.
async fn open(client: Client, tasks: TaskTracker, ready: watch::Sender<Option<Ready>>) {
    let mut set_up = Vec::new();
    for profile in fleet() {
        let (done, set) = oneshot::channel();
        let span = info_span!("demo_driver", driver = %profile.id);
        let driver = Driver {
            client: client.clone(),
            profile,
            stuck: None,
        };
        tasks.spawn(driver.run(done).instrument(span));
        set_up.push(set);
    }
    let Ok(flights) = schedule_flights(&client).await else {
        return;
    };
    let mut drivers = 0;
    for set in set_up {
        if set.await == Ok(true) {
            drivers += 1;
        }
    }
    if client.cancel.is_cancelled() {
        return;
    }
    info!(
        drivers,
        flights, "demo ready: {drivers} drivers around Seoul, {flights} flights from Seoul"
    );
    ready.send_replace(Some(Ready { drivers, flights }));
}

// ---- the fleet ----------------------------------------------------------------------------

/// A simulated driver: who they are, and where they wait at first.
struct Profile {
    id: String,
    name: &'static str,
    car_number: &'static str,
    phone: String,
    home: &'static Place,
}

/// `demo-01`..`demo-12`, one at each place of [`SEOUL`].
fn fleet() -> Vec<Profile> {
    SEOUL
        .iter()
        .zip(NAMES.iter().zip(CAR_NUMBERS))
        .enumerate()
        .map(|(i, (home, (name, car_number)))| Profile {
            id: format!("demo-{:02}", i + 1),
            name,
            car_number,
            phone: format!("010-1234-56{:02}", i + 1),
            home,
        })
        .collect()
}

/// The length of a ride by road, estimated from the straight line.
fn road_distance_m(from: LatLng, to: LatLng) -> i64 {
    (from.distance_m(to) * ROAD_FACTOR).round() as i64
}

/// An offer as `GET /drivers/{id}/offers` shows it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Offer {
    dispatch_id: String,
    pickup: LatLng,
    dropoff: LatLng,
}

/// The parts of a Driver the demo reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DriverState {
    status: String,
    dispatch_id: Option<String>,
}

/// The parts of a Dispatch the demo reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DispatchState {
    status: String,
    eta_seconds: Option<i64>,
    fare: Option<i64>,
    pickup: Option<LatLng>,
    dropoff: Option<LatLng>,
}

/// A ride a driver took.
struct Ride {
    dispatch_id: String,
    pickup: LatLng,
    dropoff: LatLng,
}

struct Driver {
    client: Client,
    profile: Profile,
    /// A ride the driver could not end (the payment kept failing): tried once more at each
    /// status check, without a warning each time.
    stuck: Option<String>,
}

impl Driver {
    /// Sets up, reports whether that worked, then works until stopped.
    async fn run(mut self, set_up: oneshot::Sender<bool>) {
        let Ok(ok) = self.set_up().await else {
            return;
        };
        let _ = set_up.send(ok);
        if ok {
            let _ = self.work().await;
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/drivers/{}{rest}", self.profile.id)
    }

    /// Registers the driver (or carries on with the one an earlier run registered), finishes a
    /// ride an earlier run left, or waits at home, online. False if the API refuses the driver.
    async fn set_up(&mut self) -> Step<bool> {
        let home = self.profile.home;
        let body = json!({
            "driverId": self.profile.id,
            "name": self.profile.name,
            "carNumber": self.profile.car_number,
            "phone": self.profile.phone,
            "location": {"lat": home.lat, "lng": home.lng},
        });
        loop {
            let answer = self.client.post("/drivers", &body).await?;
            match answer.status {
                StatusCode::CREATED => debug!("registered"),
                StatusCode::CONFLICT if answer.code() == "driver_exists" => {
                    debug!("registered by an earlier run; carrying on");
                }
                s if s.is_server_error() => {
                    warn!(status = %s, body = %answer.body, "cannot register yet; retrying");
                    self.client.pause(RECONNECT).await?;
                    continue;
                }
                s => {
                    warn!(status = %s, body = %answer.body, "the API refused the driver");
                    return Ok(false);
                }
            }
            break;
        }
        if !self.resume().await? {
            let at = json!({"lat": home.lat, "lng": home.lng});
            self.expect_ok(Method::PUT, &self.path("/location"), Some(&at))
                .await?;
            self.go_online().await?;
        }
        Ok(true)
    }

    /// Polls for offers and drives the rides it gets; now and then looks for a ride left
    /// unfinished.
    async fn work(&mut self) -> Step<()> {
        let mut polls = 0_u32;
        loop {
            self.client.pause(POLL).await?;
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(CHECK_EVERY) {
                self.resume().await?;
            }
            if let Some(offer) = self.offer().await? {
                self.take(offer).await?;
            }
        }
    }

    /// The offer the driver holds, if any.
    async fn offer(&self) -> Step<Option<Offer>> {
        let answer = self.client.get(&self.path("/offers")).await?;
        if answer.status != StatusCode::OK {
            warn!(status = %answer.status, body = %answer.body, "cannot read the offers");
            return Ok(None);
        }
        Ok(answer
            .parse::<Vec<Offer>>()
            .and_then(|offers| offers.into_iter().next()))
    }

    /// Accepts an offer, then picks the customer up and drives them.
    async fn take(&mut self, offer: Offer) -> Step<()> {
        self.client.pause(THINK).await?;
        let path = format!("/dispatches/{}/accept", offer.dispatch_id);
        let answer = self.client.post(&path, &self.me()).await?;
        match answer.status {
            StatusCode::OK => {}
            StatusCode::CONFLICT | StatusCode::NOT_FOUND => {
                debug!(dispatch = %offer.dispatch_id, code = answer.code(), "the offer is gone");
                return Ok(());
            }
            s => {
                warn!(status = %s, body = %answer.body, "cannot accept the offer");
                return Ok(());
            }
        }
        let eta = answer
            .parse::<DispatchState>()
            .and_then(|d| d.eta_seconds)
            .unwrap_or(0);
        info!(dispatch = %offer.dispatch_id, eta_seconds = eta, "accepted a ride");
        let ride = Ride {
            dispatch_id: offer.dispatch_id,
            pickup: offer.pickup,
            dropoff: offer.dropoff,
        };
        self.client
            .pause((eta.max(0) as f64).min(MAX_PICKUP))
            .await?;
        self.pick_up(&ride).await
    }

    /// At the pickup: the customer boards, the ride goes on to the drop-off.
    async fn pick_up(&mut self, ride: &Ride) -> Step<()> {
        self.move_to(ride.pickup).await?;
        let path = format!("/dispatches/{}/start", ride.dispatch_id);
        let answer = self.client.post(&path, &self.me()).await?;
        match answer.status {
            StatusCode::OK => {}
            StatusCode::CONFLICT | StatusCode::NOT_FOUND => {
                info!(dispatch = %ride.dispatch_id, code = answer.code(), "the ride was cancelled before boarding");
                return self.go_online().await;
            }
            s => {
                warn!(status = %s, body = %answer.body, "cannot start the ride");
                return Ok(());
            }
        }
        self.client.pause(RIDE).await?;
        self.finish(ride, END_ATTEMPTS).await
    }

    /// At the drop-off: ends the ride (which charges the card), within `attempts` tries.
    async fn finish(&mut self, ride: &Ride, attempts: u32) -> Step<()> {
        let retrying = self.stuck.as_deref() == Some(ride.dispatch_id.as_str());
        let distance = road_distance_m(ride.pickup, ride.dropoff);
        let body = json!({"driverId": self.profile.id, "distanceMeters": distance});
        let path = format!("/dispatches/{}/end", ride.dispatch_id);
        for attempt in 1..=attempts {
            let answer = self.client.post(&path, &body).await?;
            match answer.status {
                StatusCode::OK => {
                    let fare = answer.parse::<DispatchState>().and_then(|d| d.fare);
                    info!(dispatch = %ride.dispatch_id, distance_meters = distance, fare, "ride completed");
                    self.stuck = None;
                    self.move_to(ride.dropoff).await?;
                    return self.go_online().await;
                }
                StatusCode::CONFLICT | StatusCode::NOT_FOUND => {
                    debug!(dispatch = %ride.dispatch_id, code = answer.code(), "the ride is no longer in trip");
                    self.stuck = None;
                    return self.go_online().await;
                }
                s if s == StatusCode::PAYMENT_REQUIRED || s.is_server_error() => {
                    if retrying {
                        debug!(dispatch = %ride.dispatch_id, status = %s, "still cannot end the ride");
                    } else {
                        warn!(dispatch = %ride.dispatch_id, status = %s, attempt, body = %answer.body, "cannot end the ride");
                    }
                    if attempt < attempts {
                        self.client.pause(END_RETRY).await?;
                    }
                }
                s => {
                    warn!(status = %s, body = %answer.body, "cannot end the ride");
                    break;
                }
            }
        }
        if !retrying {
            warn!(dispatch = %ride.dispatch_id, "giving up on ending the ride for now");
        }
        self.stuck = Some(ride.dispatch_id.clone());
        Ok(())
    }

    /// Carries on with a ride the driver is assigned to but not driving (left by an earlier run,
    /// or one whose payment failed). True if the driver had such a ride.
    async fn resume(&mut self) -> Step<bool> {
        let Some(driver) = self.state().await? else {
            return Ok(false);
        };
        let Some(dispatch_id) = driver.dispatch_id else {
            return Ok(false);
        };
        if !matches!(driver.status.as_str(), "DISPATCHED" | "IN_TRIP") {
            return Ok(false);
        }
        let answer = self
            .client
            .get(&format!("/dispatches/{dispatch_id}"))
            .await?;
        let Some(DispatchState {
            status,
            pickup: Some(pickup),
            dropoff: Some(dropoff),
            ..
        }) = answer.parse::<DispatchState>()
        else {
            warn!(dispatch = %dispatch_id, status = %answer.status, "cannot read the ride to resume");
            return Ok(false);
        };
        let ride = Ride {
            dispatch_id,
            pickup,
            dropoff,
        };
        match status.as_str() {
            "DISPATCHED" => {
                info!(dispatch = %ride.dispatch_id, "resuming a ride: on the way to the pickup");
                self.pick_up(&ride).await?;
            }
            "IN_TRIP" if self.stuck.as_deref() == Some(ride.dispatch_id.as_str()) => {
                self.finish(&ride, 1).await?;
            }
            "IN_TRIP" => {
                info!(dispatch = %ride.dispatch_id, "resuming a ride: on the way to the drop-off");
                self.finish(&ride, END_ATTEMPTS).await?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The driver as the API has them, or `None` (logged) if it would not say.
    async fn state(&self) -> Step<Option<DriverState>> {
        let answer = self.client.get(&self.path("")).await?;
        if answer.status != StatusCode::OK {
            warn!(status = %answer.status, body = %answer.body, "cannot read the driver");
            return Ok(None);
        }
        Ok(answer.parse())
    }

    /// Online again, unless already.
    async fn go_online(&self) -> Step<()> {
        if let Some(driver) = self.state().await?
            && driver.status != "OFFLINE"
        {
            return Ok(());
        }
        self.expect_ok(Method::POST, &self.path("/online"), None)
            .await
    }

    async fn move_to(&self, at: LatLng) -> Step<()> {
        let body = json!({"lat": at.lat, "lng": at.lng});
        self.expect_ok(Method::PUT, &self.path("/location"), Some(&body))
            .await
    }

    /// Calls the API; anything but 200 is logged.
    async fn expect_ok(&self, method: Method, path: &str, body: Option<&Value>) -> Step<()> {
        let answer = self.client.call(method.clone(), path, body).await?;
        if answer.status != StatusCode::OK {
            warn!(%method, path, status = %answer.status, body = %answer.body, "unexpected answer");
        }
        Ok(())
    }

    fn me(&self) -> Value {
        json!({"driverId": self.profile.id})
    }
}

// ---- flights ------------------------------------------------------------------------------

/// Creates the demo flights that do not exist yet; returns how many exist.
async fn schedule_flights(client: &Client) -> Step<usize> {
    let now = SystemClock.now();
    let mut exist = 0;
    for flight in &FLIGHTS {
        let body = json!({
            "flightId": flight.id,
            "from": flight.from,
            "to": flight.to,
            "departsAt": departs_at(now, flight.days_ahead, flight.departs_kst),
            "seats": SEATS,
            "price": flight.price,
        });
        loop {
            let answer = client.post("/flights", &body).await?;
            match answer.status {
                StatusCode::CREATED => exist += 1,
                StatusCode::CONFLICT if answer.code() == "flight_exists" => exist += 1,
                s if s.is_server_error() => {
                    warn!(flight = flight.id, status = %s, body = %answer.body, "cannot create the flight yet; retrying");
                    client.pause(RECONNECT).await?;
                    continue;
                }
                s => {
                    warn!(flight = flight.id, status = %s, body = %answer.body, "the API refused the flight");
                }
            }
            break;
        }
    }
    Ok(exist)
}

/// RFC 3339 UTC time of `days_ahead` days after `now`'s day in Seoul, at `(hour, minute)` there.
fn departs_at(now: Timestamp, days_ahead: i64, (hour, minute): (i64, i64)) -> String {
    let seoul_now = now + KST_OFFSET_MS;
    let seoul_midnight = seoul_now - seoul_now.rem_euclid(DAY_MS);
    let seoul_departure = seoul_midnight + days_ahead * DAY_MS + (hour * 60 + minute) * 60_000;
    rfc3339(seoul_departure - KST_OFFSET_MS)
}

// ---- the HTTP client ----------------------------------------------------------------------

/// The demo was told to stop.
#[derive(Debug)]
struct Stopped;

/// One step of the demo: its result, or [`Stopped`].
type Step<T> = Result<T, Stopped>;

/// An answer from the API: its status and JSON body (`Null` when it has none).
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    /// A problem's machine-readable `code`.
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    fn parse<T: DeserializeOwned>(&self) -> Option<T> {
        T::deserialize(&self.body).ok()
    }
}

/// The public API at the gateway, signed in as the operator, with the demo's pace and stop
/// signal.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    pace: f64,
    cancel: CancellationToken,
    password: Arc<str>,
    /// The operator's access token, fetched on first use and again when it expires.
    token: Arc<tokio::sync::Mutex<Option<String>>>,
}

impl Client {
    fn new(base: &str, pace: f64, password: &str, cancel: CancellationToken) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            // Before the gateway's idle timeout closes them, so a call never races the close.
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            pace,
            cancel,
            password: password.into(),
            token: Arc::default(),
        }
    }

    /// The operator's token, signing in (again, while refused) when there is none.
    async fn token(&self) -> Step<String> {
        let mut token = self.token.lock().await;
        while token.is_none() {
            let body = json!({"username": "operator", "password": &*self.password});
            let request = self
                .http
                .post(format!("{}/auth/token", self.base))
                .json(&body);
            match self.cancel.run_until_cancelled(send(request)).await {
                None => return Err(Stopped),
                Some(Ok(answer)) if answer.status == StatusCode::OK => {
                    *token = answer.body["access_token"].as_str().map(str::to_owned);
                }
                Some(Ok(answer)) => {
                    warn!(status = %answer.status, code = answer.code(),
                          "the demo cannot sign in as the operator; retrying");
                    self.pause(RECONNECT * 10.0).await?;
                }
                Some(Err(e)) => {
                    warn!(error = %e, "cannot reach the API to sign in; retrying");
                    self.pause(RECONNECT).await?;
                }
            }
        }
        Ok(token.clone().expect("signed in"))
    }

    /// Sleeps `seconds` times the pace.
    async fn pause(&self, seconds: f64) -> Step<()> {
        let pause = Duration::from_secs_f64(seconds * self.pace);
        self.cancel
            .run_until_cancelled(tokio::time::sleep(pause))
            .await
            .ok_or(Stopped)
    }

    /// Sends until the API answers: when it cannot be reached, logs and tries again shortly;
    /// when the token has expired, signs in again; when it is over the write limit, waits and
    /// tries again.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Step<Answer> {
        loop {
            let token = self.token().await?;
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(&token);
            if let Some(body) = body {
                request = request.json(body);
            }
            match self.cancel.run_until_cancelled(send(request)).await {
                None => return Err(Stopped),
                Some(Ok(answer)) if answer.status == StatusCode::UNAUTHORIZED => {
                    let mut held = self.token.lock().await;
                    if held.as_deref() == Some(token.as_str()) {
                        *held = None;
                    }
                }
                // Over the gateway's write limit: wait a second (real time, whatever the pace).
                Some(Ok(answer)) if answer.status == StatusCode::TOO_MANY_REQUESTS => {
                    debug!(%method, path, "rate limited; retrying");
                    self.cancel
                        .run_until_cancelled(tokio::time::sleep(Duration::from_secs(1)))
                        .await
                        .ok_or(Stopped)?;
                }
                Some(Ok(answer)) => return Ok(answer),
                Some(Err(e)) => {
                    warn!(error = %e, %method, path, "cannot reach the API; retrying");
                    self.pause(RECONNECT).await?;
                }
            }
        }
    }

    async fn get(&self, path: &str) -> Step<Answer> {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> Step<Answer> {
        self.call(Method::POST, path, Some(body)).await
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_driver_at_each_place_with_distinct_ids_plates_and_phones() {
        let fleet = fleet();
        assert_eq!(fleet.len(), SEOUL.len());
        assert_eq!(fleet[0].id, "demo-01");
        assert_eq!(fleet[11].id, "demo-12");
        assert_eq!(fleet[11].phone, "010-1234-5612");
        for (i, driver) in fleet.iter().enumerate() {
            assert_eq!(driver.home, &SEOUL[i]);
            for other in &fleet[i + 1..] {
                assert_ne!(driver.id, other.id);
                assert_ne!(driver.car_number, other.car_number);
                assert_ne!(driver.phone, other.phone);
            }
        }
    }

    #[test]
    fn departures_are_at_seoul_times_of_day_days_ahead() {
        // 2026-03-01T20:00:00Z is already 2 March in Seoul (05:00 KST).
        let now = tanda_core::clock::parse_rfc3339("2026-03-01T20:00:00Z").unwrap();
        assert_eq!(departs_at(now, 2, (9, 55)), "2026-03-04T00:55:00.000Z");
        let now = tanda_core::clock::parse_rfc3339("2026-03-01T10:00:00Z").unwrap();
        assert_eq!(departs_at(now, 1, (7, 30)), "2026-03-01T22:30:00.000Z");
    }

    #[test]
    fn road_distance_is_longer_than_the_straight_line() {
        let seoul_station = LatLng::parse(37.5547, 126.9707).unwrap();
        let gangnam = LatLng::parse(37.4979, 127.0276).unwrap();
        let straight = seoul_station.distance_m(gangnam);
        let road = road_distance_m(seoul_station, gangnam);
        assert_eq!(road, (straight * 1.3).round() as i64);
        assert!((10_000..11_500).contains(&road), "{road}");
    }
}
