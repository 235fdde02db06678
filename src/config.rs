//! Configuration: every knob is a flag with a `TANDA_*` environment fallback, documented in
//! `--help`. Durations read like `500ms`, `15s`, `2m`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tanda_core::auth::{External, HttpJwks, JwksSource, Verifier};
use tanda_core::credential::ServiceSecret;
use tanda_core::db::Durability;
use tanda_core::host::{HttpConfig, HttpSettings};
use tanda_core::service::ServiceSpec;
use tanda_core::settings;
use tanda_gateway::EdgeSettings;

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

#[derive(Debug, Clone, Args, serde::Serialize)]
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
    /// e.g. `--upstream pay=http://pay:8080` (env: comma-separated). A service given more than
    /// once has several instances: the gateway spreads requests over those that are ready.
    #[arg(long = "upstream", env = "TANDA_UPSTREAMS", value_delimiter = ',', value_parser = parse_upstream)]
    #[serde(skip)] // each process is told where the others are
    pub upstreams: Vec<(Service, String)>,
    /// The service credential: a secret shared by pay and dispatch (at least 16 characters, no
    /// spaces), which dispatch presents as `Authorization: Bearer <secret>` on pay's internal
    /// `POST /pays`. Required by `serve pay` and `serve dispatch`; `cluster` generates one when it
    /// is not given. The gateway never has it and never routes `POST /pays`.
    #[arg(long, env = "TANDA_SERVICE_SECRET", hide_env_values = true, value_parser = parse_service_secret)]
    #[serde(serialize_with = "write_service_secret")]
    pub service_secret: Option<ServiceSecret>,
}

impl Distributed {
    /// The PostgreSQL database of `service` in this deployment's namespace.
    pub fn database(&self, service: &str) -> String {
        format!("{}_{}", self.namespace, service.replace('-', "_"))
    }

    /// This configuration as `TANDA_*` environment variables (upstreams excepted).
    pub fn to_env(&self) -> Vec<(String, String)> {
        settings::as_env(self, &Self::augment_args(clap::Command::new("serve")))
    }

    /// Whether `--upstream` says where `service` is.
    pub fn has_upstream(&self, service: Service) -> bool {
        self.upstreams.iter().any(|(s, _)| *s == service)
    }

    /// The base URL of `service`: where `--upstream` says, else (for `tanda cluster`, which
    /// starts every process on this machine) `127.0.0.1:<base-port + offset>`. `serve` refuses to
    /// start without an `--upstream` for each service it calls.
    pub fn url(&self, service: Service) -> String {
        self.urls(service).swap_remove(0)
    }

    /// The base URL of each instance of `service`: every `--upstream` for it, in order, else the
    /// one [`Distributed::url`] falls back to.
    pub fn urls(&self, service: Service) -> Vec<String> {
        let given: Vec<String> = self
            .upstreams
            .iter()
            .filter(|(s, _)| *s == service)
            .map(|(_, url)| url.trim_end_matches('/').to_owned())
            .collect();
        if !given.is_empty() {
            return given;
        }
        vec![format!(
            "http://127.0.0.1:{}",
            self.base_port + service.port_offset()
        )]
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

#[allow(clippy::ref_option)] // serde hands a reference
fn write_service_secret<S: serde::Serializer>(
    secret: &Option<ServiceSecret>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => s.serialize_str(secret.expose()),
        None => s.serialize_none(),
    }
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

/// The settings of a process: where it listens and keeps its data, how it treats connections,
/// and each service's own settings (declared in its crate, `tanda_core::settings`). Every
/// process of the distributed topology reads them all and uses its own.
#[derive(Debug, Clone, Args, serde::Serialize)]
pub struct RunConfig {
    /// Address to listen on, `HOST:PORT` with an IP address or a host name (`0.0.0.0:8080`,
    /// `[::]:8080`, `localhost:8080`; port 0 picks a free port). Default: 127.0.0.1:8080 for
    /// all-in-one, the cluster and the gateway; 127.0.0.1:<base-port + offset> for `serve <service>`.
    #[arg(global = true, long, env = "TANDA_HTTP_ADDR", value_parser = parse_listen_addr)]
    #[serde(skip)] // each process its own
    pub http_addr: Option<SocketAddr>,

    #[command(flatten)]
    pub http: HttpSettings,

    #[command(flatten)]
    pub edge: EdgeSettings,

    /// Directory for the per-service SQLite files (and the cluster's logs); made readable by its
    /// owner only (0700), each database file 0600.
    #[arg(global = true, long, env = "TANDA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// SQLite durability: `normal` survives a process crash (kill -9); `full` also survives power
    /// loss, at the cost of an fsync per commit.
    #[arg(global = true, long, env = "TANDA_SQLITE_SYNCHRONOUS", default_value = "normal", value_parser = parse_durability)]
    #[serde(serialize_with = "settings::write_display")]
    pub sqlite_synchronous: Durability,

    /// Each service's own settings.
    #[command(flatten)]
    pub services: registry::Settings,
    #[command(flatten)]
    pub oidc: Oidc,

    /// Demo mode: twelve simulated drivers around Seoul take and finish rides, and a few flights
    /// from Seoul are on sale, so the web pages can be tried by clicking. The demo is a client
    /// of the gateway's public API, like any app (all-in-one, `serve gateway` and `cluster`).
    #[arg(global = true, long, env = "TANDA_DEMO", value_parser = BoolishValueParser::new())]
    #[serde(skip)] // only the process the user started runs it
    pub demo: bool,
    /// Demo mode: multiplier on every pause of the simulated drivers (0.1 is ten times faster);
    /// mainly for tests.
    #[arg(global = true, long, env = "TANDA_DEMO_PACE", default_value_t = 1.0, value_parser = parse_pace)]
    #[serde(skip)]
    pub demo_pace: f64,
}

/// An external OpenID Connect issuer whose access tokens are accepted besides Tanda's own.
#[derive(Debug, Clone, Args, serde::Serialize)]
pub struct Oidc {
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
    #[serde(serialize_with = "settings::write_display_opt")]
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
        settings::as_env(self, &Self::augment_args(clap::Command::new("tanda")))
    }

    /// The verifier of bearer tokens: Tanda's own, with keys from `tanda`, and the external
    /// issuer's when one is configured.
    pub fn verifier(&self, tanda: Arc<dyn JwksSource>) -> anyhow::Result<Arc<Verifier>> {
        let oidc = &self.oidc;
        let external = match (&oidc.oidc_issuer, &oidc.oidc_jwks_url, &oidc.oidc_audience) {
            (Some(issuer), Some(jwks), Some(audience)) => Some(External {
                issuer: issuer.clone(),
                audience: audience.clone(),
                roles_claim: oidc.oidc_roles_claim.clone(),
                jwks: Arc::new(HttpJwks::with_roots(jwks.clone(), oidc.roots()?)),
            }),
            _ => None,
        };
        Ok(Arc::new(Verifier::new(tanda, external)))
    }

    /// How the HTTP server treats connections.
    pub fn http(&self) -> HttpConfig {
        self.http.config()
    }

    /// The defaults, as `tanda` with no flags and no environment would use them.
    pub fn defaults() -> Self {
        settings::defaults()
    }
}

impl Oidc {
    fn roots(&self) -> anyhow::Result<Vec<tanda_core::jwt::Certificate<'static>>> {
        let Some(file) = &self.oidc_ca_file else {
            return Ok(Vec::new());
        };
        use anyhow::Context;
        let pem = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        tanda_core::jwt::pem_roots(&pem).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
    }
}

#[cfg(test)]
mod tests {
    use clap::FromArgMatches;

    use super::*;

    #[test]
    fn the_pickup_radius_reads_in_metres_or_kilometres() {
        let run = Cli::parse_from(["tanda", "--dispatch-max-pickup-distance", "3km"]).run;
        assert_eq!(run.services.dispatch.search.max_pickup_m, 3_000.0);
        assert_eq!(
            run.services.book().search.max_pickup_m,
            3_000.0,
            "book keeps dispatch's"
        );
        assert_eq!(
            RunConfig::defaults().services.dispatch.search.max_pickup_m,
            5_000.0
        );
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
            cli.run.edge.cors_allow_origins,
            ["https://app.example", "http://localhost:3000"]
        );
        let env = cli.run.to_env();
        assert!(env.contains(&(
            "TANDA_CORS_ALLOW_ORIGIN".to_owned(),
            "https://app.example,http://localhost:3000".to_owned()
        )));
        assert!(RunConfig::defaults().edge.cors_allow_origins.is_empty());
    }

    /// Every knob given on the command line, with a value unlike its default.
    const EVERY_KNOB: &[(&str, &str)] = &[
        ("--http-header-timeout", "7s"),
        ("--http-idle-timeout", "45s"),
        ("--drain-delay", "1500ms"),
        ("--http-max-connections", "77"),
        ("--write-rate-limit", "9"),
        ("--write-rate-burst", "11"),
        (
            "--cors-allow-origin",
            "https://a.example,https://b.example:8443",
        ),
        ("--data-dir", "/srv/tanda"),
        ("--sqlite-synchronous", "full"),
        ("--no-taxi-retry-after", "3s"),
        ("--dispatch-offer-timeout", "20s"),
        ("--dispatch-deadline", "90s"),
        ("--dispatch-max-pickup-distance", "2.5km"),
        ("--fare-base", "5000"),
        ("--fare-base-distance", "1700"),
        ("--fare-unit-distance", "140"),
        ("--fare-unit-price", "110"),
        ("--taxi-speed-kmh", "31.5"),
        ("--pay-timeout", "4s"),
        ("--pay-retries", "3"),
        ("--pay-breaker-failures", "6"),
        ("--pay-breaker-open-for", "45s"),
        ("--card-network-latency", "250ms"),
        ("--card-network-down", ""),
        ("--payment-pending-after", "6s"),
        ("--payment-backlog-limit", "500"),
        ("--notify-webhook", "http://hooks.example/tanda"),
        ("--operator-password", "a long operator password"),
        ("--token-ttl", "2h"),
        ("--oidc-issuer", "https://id.example/realms/seoul"),
        ("--oidc-jwks-url", "https://id.example/realms/seoul/certs"),
        ("--oidc-audience", "tanda"),
        ("--oidc-ca-file", "/etc/tanda/ca.pem"),
        ("--oidc-roles-claim", "realm_access.roles"),
    ];

    /// The settings that stay with the process the user started.
    const NOT_PASSED_ON: &[&str] = &["--http-addr", "--demo", "--demo-pace"];

    fn argv(pairs: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
        let mut argv = vec!["tanda".to_owned()];
        for (flag, value) in pairs {
            argv.push(flag);
            if !value.is_empty() {
                argv.push(value);
            }
        }
        argv
    }

    /// A child's command line standing for `env`: each variable as the flag clap reads from it.
    fn as_flags(env: &[(String, String)]) -> Vec<(String, String)> {
        let command = RunConfig::augment_args(clap::Command::new("tanda"));
        env.iter()
            .filter_map(|(name, value)| {
                let arg = command
                    .get_arguments()
                    .find(|a| a.get_env().is_some_and(|e| e == name.as_str()))
                    .unwrap_or_else(|| panic!("{name} is no setting's variable"));
                let flag = format!("--{}", arg.get_long().expect("every setting has a flag"));
                match (arg.get_action(), value.as_str()) {
                    (clap::ArgAction::SetTrue, "true") => Some((flag, String::new())),
                    (clap::ArgAction::SetTrue, "false") => None,
                    (clap::ArgAction::SetTrue, _) => panic!("{name}={value} is not a flag's"),
                    _ => Some((flag, value.clone())),
                }
            })
            .collect()
    }

    #[test]
    fn a_child_process_is_configured_as_its_parent() {
        let command = RunConfig::augment_args(clap::Command::new("tanda"));
        for arg in command.get_arguments().filter(|a| a.get_env().is_some()) {
            let flag = format!("--{}", arg.get_long().unwrap());
            assert!(
                EVERY_KNOB.iter().any(|(f, _)| *f == flag)
                    || NOT_PASSED_ON.contains(&flag.as_str()),
                "{flag} is missing from this test's list"
            );
        }
        let given = argv(
            EVERY_KNOB
                .iter()
                .map(|(f, v)| ((*f).to_owned(), (*v).to_owned())),
        );
        let parent = Cli::parse_from(&given).run;
        let env = parent.to_env();
        let names: std::collections::BTreeSet<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.len(), EVERY_KNOB.len(), "each knob once: {env:?}");
        let child = Cli::parse_from(argv(as_flags(&env))).run;
        assert_eq!(format!("{child:?}"), format!("{parent:?}"));
        assert_eq!(
            child.services.identity.operator_password.as_deref(),
            Some("a long operator password"),
            "Debug hides the password; compared here"
        );
        // And the defaults, whose variables a child is given as well.
        let defaults = RunConfig::defaults();
        let child = Cli::parse_from(argv(as_flags(&defaults.to_env()))).run;
        assert_eq!(format!("{child:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn a_serve_process_is_given_the_servers_and_the_secret() {
        let given = [
            "tanda",
            "serve",
            "pay",
            "--postgres-url",
            "postgres://db.example:5433",
            "--postgres-create-databases",
            "false",
            "--postgres-pool",
            "5",
            "--nats-url",
            "nats://nats.example:4222",
            "--nats-replicas",
            "3",
            "--namespace",
            "seoul",
            "--base-port",
            "9000",
            "--service-secret",
            "a-service-secret-of-length",
            "--upstream",
            "dispatch=http://dispatch:8080",
        ];
        let Some(Command::Serve { distributed, .. }) = Cli::parse_from(given).command else {
            panic!("serve parses");
        };
        let env = distributed.to_env();
        let command = Distributed::augment_args(clap::Command::new("serve"));
        let mut argv = vec!["serve".to_owned()];
        for (name, value) in &env {
            let arg = command
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == name.as_str()));
            argv.push(format!("--{}={value}", arg.unwrap().get_long().unwrap()));
        }
        let child = Distributed::from_arg_matches(&command.get_matches_from(argv)).unwrap();
        assert!(
            !env.iter().any(|(n, _)| n == "TANDA_UPSTREAMS"),
            "each process its own"
        );
        assert_eq!(env.len(), 8, "{env:?}");
        assert_eq!(child.database("pay"), "seoul_pay");
        assert_eq!(child.base_port, 9000);
        assert_eq!(child.nats_replicas, 3);
        assert!(!child.postgres_create_databases);
        assert_eq!(
            child.service_secret.as_ref().map(ServiceSecret::expose),
            Some("a-service-secret-of-length")
        );
    }

    #[test]
    fn every_variable_stands_for_one_setting() {
        fn check(command: &clap::Command) {
            let mut seen = std::collections::BTreeSet::new();
            for name in command.get_arguments().filter_map(clap::Arg::get_env) {
                let name = name.to_string_lossy();
                assert!(name.starts_with("TANDA_"), "{name}");
                assert!(seen.insert(name.clone()), "{name} is read by two settings");
            }
            command.get_subcommands().for_each(check);
        }
        let mut command = <Cli as clap::CommandFactory>::command();
        command.build();
        check(&command);
    }
}
