//! Configuration: every knob is a flag with a `TANDA_*` environment fallback, documented in
//! `--help`. Durations read like `500ms`, `15s`, `2m`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tanda_core::auth::{External, HttpJwks, JwksSource, Verifier};
use tanda_core::credential::ServiceSecret;
use tanda_core::db::Durability;
use tanda_core::host::{HttpConfig, default_max_connections};
use tanda_core::rate::RateLimit;
use tanda_core::service::ServiceSpec;

use crate::registry;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "tanda",
    version,
    about = "Tanda: event-driven taxi dispatch and flight reservations, in one binary.",
    long_about = "Tanda: event-driven taxi dispatch and flight reservations, in one binary.\n\n\
        With no arguments it runs every service (taxi: book, dispatch, pay, ride-history; flight: \
        reservation, payment, ticket, reservation-view; notify) and the gateway in one process, on \
        one SQLite file per service under --data-dir.\n\n\
        `tanda serve <service>` runs one service as its own process on PostgreSQL and NATS \
        JetStream; `tanda cluster` runs every service that way on this machine."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunConfig,
    /// Log format.
    #[arg(long, env = "TANDA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run one service as its own process, on PostgreSQL and NATS JetStream. Any number of
    /// instances of a service may run at once.
    Serve {
        service: Service,
        #[command(flatten)]
        distributed: Distributed,
    },
    /// Run the whole distributed topology on this machine: every service as its own process
    /// (`tanda serve …`) on the given PostgreSQL and NATS, logs under <data-dir>/logs.
    Cluster {
        #[command(flatten)]
        distributed: Distributed,
    },
    /// Measure throughput, latency and footprint, each beside a ceiling measured in the same run
    /// (see BENCHMARKS.md). Starts the Tanda it measures unless given --url.
    Bench(crate::bench::BenchArgs),
}

/// A process of the distributed topology: the gateway, or one of the registry's services. Each
/// listens, by default, on --base-port plus its place in the list `tanda serve --help` shows (the
/// gateway first, at +0).
#[derive(Debug, Clone, Copy)]
pub enum Service {
    Gateway,
    Of(&'static ServiceSpec),
}

impl PartialEq for Service {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Service {}

impl std::hash::Hash for Service {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl ValueEnum for Service {
    fn value_variants<'a>() -> &'a [Self] {
        Self::all()
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

impl Service {
    /// Every process: the gateway, then the registry's services in its order.
    pub fn all() -> &'static [Service] {
        static ALL: LazyLock<Vec<Service>> = LazyLock::new(|| {
            std::iter::once(Service::Gateway)
                .chain(registry::specs().map(Service::Of))
                .collect()
        });
        &ALL
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Gateway => "gateway",
            Service::Of(spec) => spec.name,
        }
    }

    /// The process called `name`.
    pub fn named(name: &str) -> Option<Service> {
        Self::all().iter().copied().find(|s| s.name() == name)
    }

    /// What the registry knows of it; the gateway, which owns no paths of its own, has none.
    pub fn spec(self) -> Option<&'static ServiceSpec> {
        match self {
            Service::Gateway => None,
            Service::Of(spec) => Some(spec),
        }
    }

    /// The processes this one calls, so it is told where they are when it starts: the services
    /// of its spec's `calls`, and identity, whose public keys every service verifies tokens
    /// with. The gateway calls every service.
    pub fn calls(self) -> Vec<Service> {
        let identity = Service::Of(&tanda_identity::SPEC);
        match self {
            Service::Gateway => Self::all()[1..].to_vec(),
            s if s == identity => Vec::new(),
            Service::Of(spec) => spec
                .calls
                .iter()
                .map(|name| Service::named(name).expect("a service calls registered services"))
                .chain([identity])
                .collect(),
        }
    }

    /// Whether this process needs the service secret (`registry::needs_service_secret`).
    pub fn needs_service_secret(self) -> bool {
        self.spec().is_some_and(registry::needs_service_secret)
    }

    /// The port offset from --base-port.
    pub fn port_offset(self) -> u16 {
        let place = Self::all().iter().position(|s| *s == self);
        u16::try_from(place.expect("every process is in the list")).expect("a few processes")
    }
}

#[derive(Debug, Clone, Args)]
pub struct Distributed {
    /// PostgreSQL server, without a database (each service uses its own, `<namespace>_<service>`).
    /// Connection parameters in the query are honoured, e.g. `?sslmode=require` or
    /// `?sslmode=verify-full&sslrootcert=/etc/tanda/ca.pem` for a managed server (TLS by rustls,
    /// with the system's roots).
    #[arg(
        long,
        env = "TANDA_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    pub postgres_url: String,
    /// Create each service's database on first start (needs the CREATEDB privilege). `false`:
    /// the databases are made in advance, and a missing one stops the start with its name.
    #[arg(long, env = "TANDA_POSTGRES_CREATE_DATABASES", default_value_t = true, action = clap::ArgAction::Set)]
    pub postgres_create_databases: bool,
    /// Connections each service process keeps to PostgreSQL at most (the relaying instance of a
    /// service holds one more, for its lock). The default lets two replicas of every service fit
    /// PostgreSQL's default `max_connections` of 100: README "Deploy" has the budget.
    #[arg(long, env = "TANDA_POSTGRES_POOL", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub postgres_pool: u32,
    /// NATS server with JetStream enabled.
    #[arg(long, env = "TANDA_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Replicas of each JetStream stream Tanda creates (1, or 3 or 5 on a NATS cluster). An
    /// existing stream keeps the replicas it was made with.
    #[arg(long, env = "TANDA_NATS_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=5))]
    pub nats_replicas: u32,
    /// Prefix of database names and NATS streams, so several Tandas can share the same servers.
    #[arg(long, env = "TANDA_NAMESPACE", default_value = "tanda", value_parser = parse_namespace)]
    pub namespace: String,
    /// Port of the gateway; each service listens on base-port + its offset (see `tanda serve --help`).
    #[arg(long, env = "TANDA_BASE_PORT", default_value_t = 8080)]
    pub base_port: u16,
    /// Where another service is, when not at 127.0.0.1:<base-port + offset>; repeatable,
    /// e.g. `--upstream pay=http://pay:8080` (env: comma-separated).
    #[arg(long = "upstream", env = "TANDA_UPSTREAMS", value_delimiter = ',', value_parser = parse_upstream)]
    pub upstreams: Vec<(Service, String)>,
    /// The service credential: a secret shared by pay and dispatch (at least 16 characters, no
    /// spaces), which dispatch presents as `Authorization: Bearer <secret>` on pay's internal
    /// `POST /pays`. Required by `serve pay` and `serve dispatch`; `cluster` generates one when it
    /// is not given. The gateway never has it and never routes `POST /pays`.
    #[arg(long, env = "TANDA_SERVICE_SECRET", hide_env_values = true, value_parser = parse_service_secret)]
    pub service_secret: Option<ServiceSecret>,
}

impl Distributed {
    /// The PostgreSQL database of `service` in this deployment's namespace.
    pub fn database(&self, service: &str) -> String {
        format!("{}_{}", self.namespace, service.replace('-', "_"))
    }

    /// This configuration as `TANDA_*` environment variables (upstreams excepted).
    pub fn to_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("TANDA_POSTGRES_URL", self.postgres_url.clone()),
            (
                "TANDA_POSTGRES_CREATE_DATABASES",
                self.postgres_create_databases.to_string(),
            ),
            ("TANDA_POSTGRES_POOL", self.postgres_pool.to_string()),
            ("TANDA_NATS_URL", self.nats_url.clone()),
            ("TANDA_NATS_REPLICAS", self.nats_replicas.to_string()),
            ("TANDA_NAMESPACE", self.namespace.clone()),
            ("TANDA_BASE_PORT", self.base_port.to_string()),
        ];
        if let Some(secret) = &self.service_secret {
            env.push(("TANDA_SERVICE_SECRET", secret.expose().to_owned()));
        }
        env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// Whether `--upstream` says where `service` is.
    pub fn has_upstream(&self, service: Service) -> bool {
        self.upstreams.iter().any(|(s, _)| *s == service)
    }

    /// The base URL of `service`: where `--upstream` says, else (for `tanda cluster`, which
    /// starts every process on this machine) `127.0.0.1:<base-port + offset>`. `serve` refuses to
    /// start without an `--upstream` for each service it calls.
    pub fn url(&self, service: Service) -> String {
        self.upstreams
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, url)| url.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| {
                format!(
                    "http://127.0.0.1:{}",
                    self.base_port + service.port_offset()
                )
            })
    }
}

fn parse_namespace(s: &str) -> Result<String, String> {
    let ok = (1..=20).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("1-20 of a-z, 0-9 and _, starting with a letter".to_owned())
    }
}

fn parse_service_secret(s: &str) -> Result<ServiceSecret, String> {
    ServiceSecret::new(s).map_err(|e| e.to_string())
}

/// `HOST:PORT`, the host an IP address or a name (resolved now, to its first address).
fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .map_err(|e| format!("{e} (expected HOST:PORT, e.g. 0.0.0.0:8080 or localhost:8080)"))?
        .next()
        .ok_or_else(|| format!("{s} resolves to no address"))
}

fn parse_upstream(s: &str) -> Result<(Service, String), String> {
    let (name, url) = s.split_once('=').ok_or("expected SERVICE=URL")?;
    let service = Service::from_str(name, true).map_err(|_| format!("unknown service `{name}`"))?;
    if !url.starts_with("http://") {
        return Err(format!("`{url}` is not an http:// URL"));
    }
    Ok((service, url.to_owned()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct RunConfig {
    /// Address to listen on, `HOST:PORT` with an IP address or a host name (`0.0.0.0:8080`,
    /// `[::]:8080`, `localhost:8080`; port 0 picks a free port). Default: 127.0.0.1:8080 for
    /// all-in-one, the cluster and the gateway; 127.0.0.1:<base-port + offset> for `serve <service>`.
    #[arg(global = true, long, env = "TANDA_HTTP_ADDR", value_parser = parse_listen_addr)]
    pub http_addr: Option<SocketAddr>,

    /// How long a client has to send a request's head — from connecting, or from the first byte
    /// of its next request on a kept-alive connection — and then, again, its body. A connection
    /// that takes longer is closed (a body that stops arriving is answered `408`).
    #[arg(global = true, long, env = "TANDA_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub http_header_timeout: Duration,

    /// How long a kept-alive connection may wait for its next request before it is closed. A
    /// response in progress (a notification stream) is never cut. Tanda's own clients (the
    /// gateway, dispatch calling pay) drop their idle connections after 30s: keep this above.
    #[arg(global = true, long, env = "TANDA_HTTP_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_timeout)]
    pub http_idle_timeout: Duration,

    /// After SIGTERM (or Ctrl-C), how long to go on serving with `/readyz` answering 503, so that
    /// load balancers stop sending requests before the listener closes: under Kubernetes, longer
    /// than its endpoints take to follow, and shorter than `terminationGracePeriodSeconds` minus
    /// the time in-flight work needs. A second signal stops at once. 0: stop at once.
    #[arg(global = true, long, env = "TANDA_DRAIN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub drain_delay: Duration,

    /// Connections served at once; each one beyond is answered `503 too_many_connections`
    /// (`Retry-After: 1`) and closed. Default: half the process's open-file limit, at most 4096.
    #[arg(global = true, long, env = "TANDA_HTTP_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_connections: Option<u32>,

    /// Writes (POST, PUT, PATCH, DELETE) each caller may make per second, on average, at the
    /// gateway (all-in-one or `serve gateway`); more are answered `429 rate_limited` with
    /// `Retry-After`. A caller is its IP address (an IPv6 one by its /64). 0: no limit. The
    /// services behind the gateway limit nobody: every request reaches them from the gateway.
    #[arg(
        global = true,
        long,
        env = "TANDA_WRITE_RATE_LIMIT",
        default_value_t = 20
    )]
    pub write_rate_limit: u32,

    /// Writes a caller may make at once, after a pause, before --write-rate-limit holds it back.
    #[arg(global = true, long, env = "TANDA_WRITE_RATE_BURST", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub write_rate_burst: u32,

    /// Directory for the per-service SQLite files (and the cluster's logs); made readable by its
    /// owner only (0700), each database file 0600.
    #[arg(global = true, long, env = "TANDA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// SQLite durability: `normal` survives a process crash (kill -9); `full` also survives power
    /// loss, at the cost of an fsync per commit.
    #[arg(global = true, long, env = "TANDA_SQLITE_SYNCHRONOUS", default_value = "normal", value_parser = parse_durability)]
    pub sqlite_synchronous: Durability,

    /// How long a driver has to accept an offer before it goes to the next driver.
    #[arg(global = true, long, env = "TANDA_DISPATCH_OFFER_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub dispatch_offer_timeout: Duration,

    /// How long a booking may wait for a driver before it is cancelled by the system.
    #[arg(global = true, long, env = "TANDA_DISPATCH_DEADLINE", default_value = "60s", value_parser = parse_duration)]
    pub dispatch_deadline: Duration,

    /// `Retry-After` sent with `503 no_taxi_available` while no driver is available.
    #[arg(global = true, long, env = "TANDA_NO_TAXI_RETRY_AFTER", default_value = "10s", value_parser = parse_duration)]
    pub no_taxi_retry_after: Duration,

    /// Average taxi speed used for arrival estimates, in km/h.
    #[arg(
        global = true,
        long,
        env = "TANDA_TAXI_SPEED_KMH",
        default_value_t = 25.0
    )]
    pub taxi_speed_kmh: f64,

    /// Fare: base fare in won, covering the first --fare-base-distance metres.
    #[arg(global = true, long, env = "TANDA_FARE_BASE", default_value_t = 4800)]
    pub fare_base: i64,
    /// Fare: metres covered by the base fare.
    #[arg(
        global = true,
        long,
        env = "TANDA_FARE_BASE_DISTANCE",
        default_value_t = 1600
    )]
    pub fare_base_distance: i64,
    /// Fare: metres per meter step after the base distance.
    #[arg(
        global = true,
        long,
        env = "TANDA_FARE_UNIT_DISTANCE",
        default_value_t = 131
    )]
    pub fare_unit_distance: i64,
    /// Fare: won per meter step.
    #[arg(
        global = true,
        long,
        env = "TANDA_FARE_UNIT_PRICE",
        default_value_t = 100
    )]
    pub fare_unit_price: i64,

    /// How long a reservation waits for its payment result before it shows `PENDING`
    /// ("payment delayed"); it completes by itself when payment answers.
    #[arg(global = true, long, env = "TANDA_PAYMENT_PENDING_AFTER", default_value = "5s", value_parser = parse_duration)]
    pub payment_pending_after: Duration,

    /// Only drivers within this distance of the pickup are offered a ride, e.g. `5km` or `800m`.
    #[arg(global = true, long, env = "TANDA_DISPATCH_MAX_PICKUP_DISTANCE", default_value = "5km", value_parser = parse_metres)]
    pub dispatch_max_pickup_distance: f64,

    /// With this many reservations waiting for payment's answer, `POST /reservations` answers
    /// `503 payment_overloaded` (with `Retry-After`) until payment catches up; 0: never.
    #[arg(
        global = true,
        long,
        env = "TANDA_PAYMENT_BACKLOG_LIMIT",
        default_value_t = 1000
    )]
    pub payment_backlog_limit: u64,

    /// Timeout of one call from dispatch to pay.
    #[arg(global = true, long, env = "TANDA_PAY_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub pay_timeout: Duration,
    /// Extra attempts of a pay call that timed out or found pay unavailable.
    #[arg(global = true, long, env = "TANDA_PAY_RETRIES", default_value_t = 2)]
    pub pay_retries: u32,
    /// Consecutive pay failures that open the circuit breaker.
    #[arg(
        global = true,
        long,
        env = "TANDA_PAY_BREAKER_FAILURES",
        default_value_t = 5
    )]
    pub pay_breaker_failures: u32,
    /// How long the open breaker fails fast before letting a trial call through.
    #[arg(global = true, long, env = "TANDA_PAY_BREAKER_OPEN_FOR", default_value = "30s", value_parser = parse_duration)]
    pub pay_breaker_open_for: Duration,

    /// Added latency of the simulated card network (it can also be changed at run time with
    /// `PUT /admin/card-network`).
    #[arg(global = true, long, env = "TANDA_CARD_NETWORK_LATENCY", default_value = "0ms", value_parser = parse_duration)]
    pub card_network_latency: Duration,
    /// Start with the simulated card network down.
    #[arg(global = true, long, env = "TANDA_CARD_NETWORK_DOWN")]
    pub card_network_down: bool,

    /// The operator account's password. Without it, a random one is made at first start and
    /// printed once to the log. Setting it and restarting resets the operator's password.
    #[arg(
        global = true,
        long,
        env = "TANDA_OPERATOR_PASSWORD",
        hide_env_values = true
    )]
    pub operator_password: Option<Secret>,

    /// How long an access token (and a web page session) stays valid.
    #[arg(global = true, long, env = "TANDA_TOKEN_TTL", default_value = "1h", value_parser = parse_duration)]
    pub token_ttl: Duration,

    /// Also accept the access tokens of this OpenID Connect issuer (its `iss`), e.g. a Keycloak
    /// realm's URL. Needs --oidc-jwks-url and --oidc-audience.
    #[arg(global = true, long, env = "TANDA_OIDC_ISSUER", requires_all = ["oidc_jwks_url", "oidc_audience"])]
    pub oidc_issuer: Option<String>,
    /// Where the external issuer publishes its public keys (a JWKS URL).
    #[arg(
        global = true,
        long,
        env = "TANDA_OIDC_JWKS_URL",
        requires = "oidc_issuer"
    )]
    pub oidc_jwks_url: Option<reqwest::Url>,
    /// The `aud` the external issuer's tokens must carry for Tanda.
    #[arg(
        global = true,
        long,
        env = "TANDA_OIDC_AUDIENCE",
        requires = "oidc_issuer"
    )]
    pub oidc_audience: Option<String>,
    /// Certificates (PEM) to trust for the issuer's HTTPS JWKS URL besides the system's: a
    /// private issuer's own CA.
    #[arg(
        global = true,
        long,
        env = "TANDA_OIDC_CA_FILE",
        requires = "oidc_issuer"
    )]
    pub oidc_ca_file: Option<PathBuf>,
    /// Where the roles (customer, driver, operator) are in the external issuer's tokens: a
    /// claim name or a dotted path, e.g. `realm_access.roles` for Keycloak.
    #[arg(
        global = true,
        long,
        env = "TANDA_OIDC_ROLES_CLAIM",
        default_value = "roles"
    )]
    pub oidc_roles_claim: String,

    /// A web origin (e.g. `https://app.example`) whose pages may call the API from a browser
    /// (CORS), with a bearer token; repeatable (env: comma-separated). By default none: only
    /// Tanda's own pages, from its own origin.
    #[arg(
        global = true,
        long = "cors-allow-origin",
        env = "TANDA_CORS_ALLOW_ORIGIN",
        value_delimiter = ',',
        value_parser = parse_origin
    )]
    pub cors_allow_origins: Vec<String>,

    /// POST every notification as JSON to this http:// URL (at least once, in order).
    #[arg(global = true, long, env = "TANDA_NOTIFY_WEBHOOK")]
    pub notify_webhook: Option<String>,

    /// Demo mode: twelve simulated drivers around Seoul take and finish rides, and a few flights
    /// from Seoul are on sale, so the web pages can be tried by clicking. The demo is a client
    /// of the gateway's public API, like any app (all-in-one, `serve gateway` and `cluster`).
    #[arg(global = true, long, env = "TANDA_DEMO", value_parser = BoolishValueParser::new())]
    pub demo: bool,
    /// Demo mode: multiplier on every pause of the simulated drivers (0.1 is ten times faster);
    /// mainly for tests.
    #[arg(global = true, long, env = "TANDA_DEMO_PACE", default_value_t = 1.0, value_parser = parse_pace)]
    pub demo_pace: f64,
}

/// A configured secret: never shown by `Debug`, so no log of the configuration prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(Secret(s.to_owned()))
    }
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 15s, 2m)"))
}

/// A distance: metres (`800`, `800m`) or kilometres (`5km`, `2.5km`), above 0.
fn parse_metres(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (number, unit) = match s.strip_suffix("km") {
        Some(n) => (n, 1000.0),
        None => (s.strip_suffix('m').unwrap_or(s), 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n * unit),
        _ => Err("a distance above 0, e.g. 5km or 800m".to_owned()),
    }
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("a timeout above 0, e.g. 10s".to_owned()),
        d => Ok(d),
    }
}

/// A web origin as browsers send it: `scheme://host[:port]`, lower case, without a default port
/// or a path.
fn parse_origin(s: &str) -> Result<String, String> {
    let expected = || format!("`{s}` is not an origin (e.g. https://app.example:8443)");
    let url = reqwest::Url::parse(s.trim()).map_err(|_| expected())?;
    let bare = url.path() == "/"
        && !s.trim().ends_with('/')
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !matches!(url.scheme(), "http" | "https") || !bare {
        return Err(expected());
    }
    Ok(url.origin().ascii_serialization())
}

fn parse_pace(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(pace) if pace.is_finite() && pace > 0.0 => Ok(pace),
        _ => Err("a number above 0, e.g. 0.1 or 2".to_owned()),
    }
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    s.parse()
}

impl RunConfig {
    /// This configuration as `TANDA_*` environment variables (all but the listen address and the
    /// demo, which only the process the user started runs), so a child process started with them
    /// is configured the same way.
    pub fn to_env(&self) -> Vec<(String, String)> {
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let mut env = vec![
            ("TANDA_HTTP_HEADER_TIMEOUT", ms(self.http_header_timeout)),
            ("TANDA_HTTP_IDLE_TIMEOUT", ms(self.http_idle_timeout)),
            ("TANDA_DRAIN_DELAY", ms(self.drain_delay)),
            ("TANDA_WRITE_RATE_LIMIT", self.write_rate_limit.to_string()),
            ("TANDA_WRITE_RATE_BURST", self.write_rate_burst.to_string()),
            ("TANDA_DATA_DIR", self.data_dir.display().to_string()),
            (
                "TANDA_SQLITE_SYNCHRONOUS",
                match self.sqlite_synchronous {
                    Durability::Normal => "normal".to_owned(),
                    Durability::Full => "full".to_owned(),
                },
            ),
            (
                "TANDA_DISPATCH_OFFER_TIMEOUT",
                ms(self.dispatch_offer_timeout),
            ),
            ("TANDA_DISPATCH_DEADLINE", ms(self.dispatch_deadline)),
            ("TANDA_NO_TAXI_RETRY_AFTER", ms(self.no_taxi_retry_after)),
            ("TANDA_TAXI_SPEED_KMH", self.taxi_speed_kmh.to_string()),
            ("TANDA_FARE_BASE", self.fare_base.to_string()),
            (
                "TANDA_FARE_BASE_DISTANCE",
                self.fare_base_distance.to_string(),
            ),
            (
                "TANDA_FARE_UNIT_DISTANCE",
                self.fare_unit_distance.to_string(),
            ),
            ("TANDA_FARE_UNIT_PRICE", self.fare_unit_price.to_string()),
            (
                "TANDA_PAYMENT_PENDING_AFTER",
                ms(self.payment_pending_after),
            ),
            (
                "TANDA_DISPATCH_MAX_PICKUP_DISTANCE",
                format!("{}m", self.dispatch_max_pickup_distance),
            ),
            (
                "TANDA_PAYMENT_BACKLOG_LIMIT",
                self.payment_backlog_limit.to_string(),
            ),
            ("TANDA_PAY_TIMEOUT", ms(self.pay_timeout)),
            ("TANDA_PAY_RETRIES", self.pay_retries.to_string()),
            (
                "TANDA_PAY_BREAKER_FAILURES",
                self.pay_breaker_failures.to_string(),
            ),
            ("TANDA_PAY_BREAKER_OPEN_FOR", ms(self.pay_breaker_open_for)),
            ("TANDA_CARD_NETWORK_LATENCY", ms(self.card_network_latency)),
            (
                "TANDA_CARD_NETWORK_DOWN",
                self.card_network_down.to_string(),
            ),
        ];
        if let Some(n) = self.http_max_connections {
            env.push(("TANDA_HTTP_MAX_CONNECTIONS", n.to_string()));
        }
        if let Some(url) = &self.notify_webhook {
            env.push(("TANDA_NOTIFY_WEBHOOK", url.clone()));
        }
        if !self.cors_allow_origins.is_empty() {
            env.push(("TANDA_CORS_ALLOW_ORIGIN", self.cors_allow_origins.join(",")));
        }
        env.push(("TANDA_TOKEN_TTL", ms(self.token_ttl)));
        env.push(("TANDA_OIDC_ROLES_CLAIM", self.oidc_roles_claim.clone()));
        if let Some(Secret(password)) = &self.operator_password {
            env.push(("TANDA_OPERATOR_PASSWORD", password.clone()));
        }
        if let (Some(issuer), Some(jwks), Some(audience)) =
            (&self.oidc_issuer, &self.oidc_jwks_url, &self.oidc_audience)
        {
            env.push(("TANDA_OIDC_ISSUER", issuer.clone()));
            env.push(("TANDA_OIDC_JWKS_URL", jwks.to_string()));
            env.push(("TANDA_OIDC_AUDIENCE", audience.clone()));
            if let Some(file) = &self.oidc_ca_file {
                env.push(("TANDA_OIDC_CA_FILE", file.display().to_string()));
            }
        }
        env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// The identity service's settings.
    pub fn identity(&self) -> tanda_identity::Config {
        tanda_identity::Config {
            operator_password: self.operator_password.clone().map(|Secret(p)| p),
            token_ttl: self.token_ttl,
            ..tanda_identity::Config::default()
        }
    }

    /// The verifier of bearer tokens: Tanda's own, with keys from `tanda`, and the external
    /// issuer's when one is configured.
    pub fn verifier(&self, tanda: Arc<dyn JwksSource>) -> anyhow::Result<Arc<Verifier>> {
        let external = match (&self.oidc_issuer, &self.oidc_jwks_url, &self.oidc_audience) {
            (Some(issuer), Some(jwks), Some(audience)) => Some(External {
                issuer: issuer.clone(),
                audience: audience.clone(),
                roles_claim: self.oidc_roles_claim.clone(),
                jwks: Arc::new(HttpJwks::with_roots(jwks.clone(), self.oidc_roots()?)),
            }),
            _ => None,
        };
        Ok(Arc::new(Verifier::new(tanda, external)))
    }

    fn oidc_roots(&self) -> anyhow::Result<Vec<tanda_core::jwt::Certificate<'static>>> {
        let Some(file) = &self.oidc_ca_file else {
            return Ok(Vec::new());
        };
        use anyhow::Context;
        let pem = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        tanda_core::jwt::pem_roots(&pem).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
    }

    /// How the HTTP server treats connections.
    pub fn http(&self) -> HttpConfig {
        HttpConfig {
            header_timeout: self.http_header_timeout,
            idle_timeout: self.http_idle_timeout,
            drain_delay: self.drain_delay,
            max_connections: self
                .http_max_connections
                .map_or_else(default_max_connections, |n| n as usize),
        }
    }

    /// The limit on each caller's writes at the gateway, if any.
    pub fn write_limit(&self) -> Option<RateLimit> {
        (self.write_rate_limit > 0).then_some(RateLimit {
            per_second: self.write_rate_limit,
            burst: self.write_rate_burst,
        })
    }

    /// The defaults, as `tanda` with no flags and no environment would use them.
    pub fn defaults() -> Self {
        Cli::parse_from(["tanda"]).run
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_read_in_metres_or_kilometres() {
        assert_eq!(parse_metres("5km"), Ok(5_000.0));
        assert_eq!(parse_metres("2.5km"), Ok(2_500.0));
        assert_eq!(parse_metres("800m"), Ok(800.0));
        assert_eq!(parse_metres("800"), Ok(800.0));
        for bad in ["", "0", "-1km", "far", "NaNm", "infkm"] {
            assert!(parse_metres(bad).is_err(), "{bad}");
        }
        let run = Cli::parse_from(["tanda", "--dispatch-max-pickup-distance", "3km"]).run;
        assert_eq!(run.dispatch_max_pickup_distance, 3_000.0);
        assert_eq!(RunConfig::defaults().dispatch_max_pickup_distance, 5_000.0);
    }

    #[test]
    fn an_issuers_ca_file_is_read_at_start_and_passed_to_every_process() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        let cli = |file: &std::path::Path| {
            Cli::parse_from([
                "tanda",
                "--oidc-issuer",
                "https://id.example.test/realms/seoul",
                "--oidc-jwks-url",
                "https://id.example.test/realms/seoul/certs",
                "--oidc-audience",
                "tanda",
                "--oidc-ca-file",
                file.to_str().unwrap(),
            ])
            .run
        };
        let keys: Arc<dyn JwksSource> = Arc::new(tanda_core::auth::FixedJwks::default());
        let missing = cli(&file).verifier(keys.clone()).err().unwrap();
        assert!(format!("{missing:#}").contains("ca.pem"), "{missing:#}");
        std::fs::write(&file, "not a certificate").unwrap();
        assert!(
            cli(&file).verifier(keys).is_err(),
            "a file with no certificate is refused"
        );
        assert!(
            cli(&file)
                .to_env()
                .contains(&("TANDA_OIDC_CA_FILE".to_owned(), file.display().to_string()))
        );
    }

    #[test]
    fn cors_origins_are_origins_as_browsers_send_them() {
        let cli = Cli::parse_from([
            "tanda",
            "--cors-allow-origin",
            "https://App.Example",
            "--cors-allow-origin",
            "http://localhost:3000",
        ]);
        assert_eq!(
            cli.run.cors_allow_origins,
            ["https://app.example", "http://localhost:3000"]
        );
        let env = cli.run.to_env();
        assert!(env.contains(&(
            "TANDA_CORS_ALLOW_ORIGIN".to_owned(),
            "https://app.example,http://localhost:3000".to_owned()
        )));
        assert_eq!(
            parse_origin("https://app.example:443").unwrap(),
            "https://app.example"
        );
        for bad in [
            "*",
            "app.example",
            "https://app.example/",
            "https://app.example/path",
            "ftp://app.example",
            "https://user@app.example",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
        assert!(RunConfig::defaults().cors_allow_origins.is_empty());
    }
}
