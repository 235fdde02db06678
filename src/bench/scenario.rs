//! The operations the scenarios repeat, each a client of the public API, and the set-up they need.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tanda_core::geo::LatLng;
use tanda_web::places::{Place, SEOUL};

use super::load::{Conn, Failure, Operation, pause};

/// How often a flow's state is polled while waiting for it to move on, at first...
const POLL: Duration = Duration::from_millis(5);
/// ...and at most: polls back off to a tenth of the time waited so far, so a slow flow is not
/// slowed further by its own clients' reads, and its latency is still known to within 10 %.
const POLL_MAX: Duration = Duration::from_millis(50);
/// A flow that has not moved on after this long counts as failed.
const PATIENCE: Duration = Duration::from_secs(30);

fn place(n: u64) -> &'static Place {
    &SEOUL[(n % SEOUL.len() as u64) as usize]
}

fn pickup(n: u64) -> Value {
    let p = place(n);
    json!({"name": p.name, "lat": p.lat, "lng": p.lng})
}

fn dropoff(n: u64) -> Value {
    let p = place(n + 5);
    json!({"name": p.name, "lat": p.lat, "lng": p.lng})
}

/// What the meter shows at the end of ride `n`: its straight line and a third more for the
/// roads, a distance dispatch finds plausible for the trip.
fn meter_m(n: u64) -> i64 {
    let at = |p: &Place| LatLng::parse(p.lat, p.lng).expect("the places are on the map");
    (at(place(n)).distance_m(at(place(n + 5))) * 1.3).round() as i64
}

fn booking(worker: usize, n: u64) -> Value {
    json!({
        "customerId": format!("bench-c{worker}"),
        "customerName": "Bench Customer",
        "phone": "010-1234-5678",
        "card": "4242424242424242",
        "pickup": pickup(n),
        "dropoff": dropoff(n),
    })
}

/// Registers `count` drivers spread over the named places and puts them online.
pub async fn drivers_online(conn: &mut Conn, count: usize) -> anyhow::Result<()> {
    for i in 0..count {
        let p = &SEOUL[i % SEOUL.len()];
        let id = format!("bench-d{i}");
        let body = json!({
            "driverId": id, "name": format!("Bench Driver {i}"), "carNumber": format!("{:02}가 {:04}", i % 100, i),
            "phone": "010-2222-3333", "location": {"lat": p.lat, "lng": p.lng},
        });
        match conn.post("/drivers", &body, StatusCode::CREATED).await {
            // A Tanda at --url may have them from an earlier run.
            Err(Failure(e)) if e != "409 driver_exists" => {
                anyhow::bail!("registering {id}: {e}")
            }
            _ => {}
        }
        conn.post(&format!("/drivers/{id}/online"), &json!({}), StatusCode::OK)
            .await
            .map_err(|Failure(e)| anyhow::anyhow!("{id} going online: {e}"))?;
    }
    Ok(())
}

/// `POST /books`, answered `201`.
pub struct Book;

impl Operation for Book {
    async fn run(&self, conn: &mut Conn, worker: usize, n: u64) -> Result<(), Failure> {
        conn.post("/books", &booking(worker, n), StatusCode::CREATED)
            .await
            .map(drop)
    }
}

/// A whole ride: the customer books; the bench, as the driver the ride is offered to, accepts,
/// starts and ends it at once; done when the booking reads `COMPLETED`.
pub struct Ride;

impl Operation for Ride {
    async fn run(&self, conn: &mut Conn, worker: usize, n: u64) -> Result<(), Failure> {
        let started = tokio::time::Instant::now();
        let book = loop {
            match conn
                .post("/books", &booking(worker, n), StatusCode::CREATED)
                .await
            {
                // Every driver near the pickup is busy: wait for one, as a customer would.
                Err(Failure(kind)) if kind.starts_with("503") && started.elapsed() < PATIENCE => {
                    pause(POLL).await;
                }
                other => break other?,
            }
        };
        let book_id = book["bookId"].as_str().unwrap_or_default().to_owned();
        let (dispatch_id, driver) = wait(conn, &format!("/dispatches?bookId={book_id}"), |v| {
            let d = v.get(0)?;
            let driver = d["offer"]["driverId"].as_str()?;
            Some((d["dispatchId"].as_str()?.to_owned(), driver.to_owned()))
        })
        .await?;
        let me = json!({"driverId": driver});
        let path = |action: &str| format!("/dispatches/{dispatch_id}/{action}");
        conn.post(&path("accept"), &me, StatusCode::OK).await?;
        conn.post(&path("start"), &me, StatusCode::OK).await?;
        let end = json!({"driverId": driver, "distanceMeters": meter_m(n)});
        conn.post(&path("end"), &end, StatusCode::OK).await?;
        wait(conn, &format!("/books/{book_id}"), |v| {
            (v["status"] == "COMPLETED").then_some(())
        })
        .await
    }
}

/// A reservation by a funded user, done when it reads `CONFIRMED`.
pub struct Reserve {
    prefix: String,
    /// Reservations so far, over every run of this operation (warm-up included): each takes
    /// the next seat.
    taken: std::cell::Cell<u64>,
}

impl Reserve {
    const PRICE: i64 = 100;
    /// The most seats a flight may have (the API's limit).
    const SEATS: u64 = 1000;

    /// Flights with a seat for each of `reservations`, and a full wallet per worker.
    pub async fn set_up(
        conn: &mut Conn,
        workers: usize,
        reservations: u64,
    ) -> anyhow::Result<Reserve> {
        let prefix = format!("B{}X", std::process::id());
        for i in 0..reservations.div_ceil(Self::SEATS) {
            let flight = json!({"flightId": format!("{prefix}{i}"), "from": "ICN", "to": "NRT",
                "departsAt": "2030-01-01T00:00:00Z", "seats": Self::SEATS, "price": Self::PRICE});
            conn.post("/flights", &flight, StatusCode::CREATED)
                .await
                .map_err(|Failure(e)| anyhow::anyhow!("creating a flight: {e}"))?;
        }
        for worker in 0..workers {
            let amount = json!({"amount": 100_000_000});
            conn.post(
                &format!("/accounts/bench-u{worker}/deposit"),
                &amount,
                StatusCode::OK,
            )
            .await
            .map_err(|Failure(e)| anyhow::anyhow!("funding a wallet: {e}"))?;
        }
        Ok(Reserve {
            prefix,
            taken: std::cell::Cell::new(0),
        })
    }
}

impl Operation for Reserve {
    async fn run(&self, conn: &mut Conn, worker: usize, _n: u64) -> Result<(), Failure> {
        let seat = self.taken.replace(self.taken.get() + 1);
        let flight = format!("{}{}", self.prefix, seat / Self::SEATS);
        let body = json!({"userId": format!("bench-u{worker}"), "flightId": flight});
        let reservation = conn
            .post("/reservations", &body, StatusCode::CREATED)
            .await?;
        let id = reservation["reservationId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        wait(
            conn,
            &format!("/reservations/{id}"),
            |v| match v["status"].as_str() {
                Some("CONFIRMED") => Some(Ok(())),
                Some("PAYMENT_FAILED") => Some(Err(Failure("PAYMENT_FAILED".to_owned()))),
                _ => None,
            },
        )
        .await?
    }
}

/// `GET /hello`, the HTTP ceiling.
pub struct Hello;

impl Operation for Hello {
    async fn run(&self, conn: &mut Conn, _worker: usize, _n: u64) -> Result<(), Failure> {
        let (status, _) = conn.call(axum::http::Method::GET, "/hello", None).await?;
        if status != StatusCode::OK {
            return Err(Failure(status.to_string()));
        }
        Ok(())
    }
}

/// Polls `path` until `done` finds what it waits for.
async fn wait<T>(
    conn: &mut Conn,
    path: &str,
    done: impl Fn(&Value) -> Option<T>,
) -> Result<T, Failure> {
    let started = tokio::time::Instant::now();
    loop {
        if let Some(found) = done(&conn.get(path).await?) {
            return Ok(found);
        }
        let waited = started.elapsed();
        if waited > PATIENCE {
            let resource = path.split(['/', '?']).nth(1).unwrap_or(path);
            return Err(Failure(format!("stuck waiting at /{resource}")));
        }
        pause((waited / 10).clamp(POLL, POLL_MAX)).await;
    }
}
