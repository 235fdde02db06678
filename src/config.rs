//! Configuration: every knob is a flag with a `TANDA_*` environment fallback, documented in
//! `--help`. Durations read like `500ms`, `15s`, `2m`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};
use tanda_core::db::Durability;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "tanda",
    version,
    about = "Tanda: event-driven taxi dispatch and flight reservations, in one binary.",
    long_about = "Tanda: event-driven taxi dispatch and flight reservations, in one binary.\n\n\
        With no arguments it runs every service (taxi: book, dispatch, pay, ride-history; flight: \
        reservation, payment, ticket, reservation-view; notify) and the gateway in one process, on \
        one SQLite file per service under --data-dir."
)]
pub struct Cli {
    #[command(flatten)]
    pub run: RunConfig,
    /// Log format.
    #[arg(long, env = "TANDA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct RunConfig {
    /// Address the gateway listens on (port 0 picks a free port).
    #[arg(long, env = "TANDA_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// Directory for the per-service SQLite files.
    #[arg(long, env = "TANDA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// SQLite durability: `normal` survives a process crash (kill -9); `full` also survives power
    /// loss, at the cost of an fsync per commit.
    #[arg(long, env = "TANDA_SQLITE_SYNCHRONOUS", default_value = "normal", value_parser = parse_durability)]
    pub sqlite_synchronous: Durability,

    /// How long a driver has to accept an offer before it goes to the next driver.
    #[arg(long, env = "TANDA_DISPATCH_OFFER_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub dispatch_offer_timeout: Duration,

    /// How long a booking may wait for a driver before it is cancelled by the system.
    #[arg(long, env = "TANDA_DISPATCH_DEADLINE", default_value = "60s", value_parser = parse_duration)]
    pub dispatch_deadline: Duration,

    /// `Retry-After` sent with `503 no_taxi_available` while no driver is available.
    #[arg(long, env = "TANDA_NO_TAXI_RETRY_AFTER", default_value = "10s", value_parser = parse_duration)]
    pub no_taxi_retry_after: Duration,

    /// Average taxi speed used for arrival estimates, in km/h.
    #[arg(long, env = "TANDA_TAXI_SPEED_KMH", default_value_t = 25.0)]
    pub taxi_speed_kmh: f64,

    /// Fare: base fare in won, covering the first --fare-base-distance metres.
    #[arg(long, env = "TANDA_FARE_BASE", default_value_t = 4800)]
    pub fare_base: i64,
    /// Fare: metres covered by the base fare.
    #[arg(long, env = "TANDA_FARE_BASE_DISTANCE", default_value_t = 1600)]
    pub fare_base_distance: i64,
    /// Fare: metres per meter step after the base distance.
    #[arg(long, env = "TANDA_FARE_UNIT_DISTANCE", default_value_t = 131)]
    pub fare_unit_distance: i64,
    /// Fare: won per meter step.
    #[arg(long, env = "TANDA_FARE_UNIT_PRICE", default_value_t = 100)]
    pub fare_unit_price: i64,

    /// How long a reservation waits for its payment result before it shows `PENDING`
    /// ("payment delayed"); it completes by itself when payment answers.
    #[arg(long, env = "TANDA_PAYMENT_PENDING_AFTER", default_value = "5s", value_parser = parse_duration)]
    pub payment_pending_after: Duration,

    /// Timeout of one call from dispatch to pay.
    #[arg(long, env = "TANDA_PAY_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub pay_timeout: Duration,
    /// Extra attempts of a pay call that timed out or found pay unavailable.
    #[arg(long, env = "TANDA_PAY_RETRIES", default_value_t = 2)]
    pub pay_retries: u32,
    /// Consecutive pay failures that open the circuit breaker.
    #[arg(long, env = "TANDA_PAY_BREAKER_FAILURES", default_value_t = 5)]
    pub pay_breaker_failures: u32,
    /// How long the open breaker fails fast before letting a trial call through.
    #[arg(long, env = "TANDA_PAY_BREAKER_OPEN_FOR", default_value = "30s", value_parser = parse_duration)]
    pub pay_breaker_open_for: Duration,

    /// Added latency of the simulated card network (it can also be changed at run time with
    /// `PUT /admin/card-network`).
    #[arg(long, env = "TANDA_CARD_NETWORK_LATENCY", default_value = "0ms", value_parser = parse_duration)]
    pub card_network_latency: Duration,
    /// Start with the simulated card network down.
    #[arg(long, env = "TANDA_CARD_NETWORK_DOWN")]
    pub card_network_down: bool,

    /// POST every notification as JSON to this http:// URL (at least once, in order).
    #[arg(long, env = "TANDA_NOTIFY_WEBHOOK")]
    pub notify_webhook: Option<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 15s, 2m)"))
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    s.parse()
}

impl RunConfig {
    /// The defaults, as `tanda` with no flags and no environment would use them.
    pub fn defaults() -> Self {
        Cli::parse_from(["tanda"]).run
    }
}
