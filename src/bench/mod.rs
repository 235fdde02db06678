//! `tanda bench <scenario>`: throughput, latency and footprint, each figure printed beside a
//! ceiling measured in the same run with the same load generator, because a shared machine's
//! absolute numbers drift. Bounded in operations and time; stops by itself.
//!
//! By default the bench starts the Tanda it measures (this binary, all-in-one on a temporary data
//! dir); `--distributed` starts the whole distributed topology on PostgreSQL + NATS instead, and
//! `--url` measures a Tanda already running.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::RunConfig;
use crate::cluster::{Cluster, purge};
use crate::config::Distributed;

mod baseline;
mod cpu;
mod load;
mod report;
mod scenario;
mod target;

use cpu::{CpuClock, CpuUse};
use load::{Conn, Samples, closed_loop};
use report::{Row, Table};
use scenario::{Book, Hello, Reserve, Ride};
use target::Started;

pub use target::serve_hello;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// What to measure.
    pub scenario: Scenario,
    /// Concurrent clients (each on its own keep-alive connection).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Stop after this long...
    #[arg(long, default_value = "10s", value_parser = tanda_core::settings::duration)]
    pub duration: Duration,
    /// ...or after this many operations, whichever comes first.
    #[arg(long, default_value_t = 1_000_000)]
    pub operations: u64,
    /// Measure the Tanda at this URL instead of starting one.
    #[arg(long, conflicts_with = "distributed")]
    pub url: Option<String>,
    /// Start the distributed topology (every service its own process, on --postgres-url and
    /// --nats-url) instead of all-in-one; the ceiling is then pgbench's insert rate.
    #[arg(long)]
    pub distributed: bool,
    /// Also write the table, as markdown, to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    #[command(flatten)]
    pub servers: Distributed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// `POST /books` as fast as it is accepted: accepted/s and latency.
    Booking,
    /// Whole taxi rides, the bench playing the drivers: completed rides/s, request→COMPLETED.
    Ride,
    /// Funded users reserving seats: confirmed reservations/s, request→CONFIRMED.
    Reservation,
    /// Resident memory idle and under load, and start→ready time.
    Footprint,
    /// Every scenario above, one after another.
    All,
    /// (Internal) serve the bare HTTP ceiling, `GET /hello`.
    #[value(hide = true)]
    Hello,
}

/// Runs the benchmark, prints its table, and writes it as markdown when asked.
pub async fn run(args: BenchArgs, mut run: RunConfig) -> anyhow::Result<()> {
    if args.scenario == Scenario::Hello {
        let addr = run
            .http_addr
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        return serve_hello(addr).await;
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    // The Tandas the bench starts get this operator password; one at --url needs its own.
    if run.services.identity.operator_password.is_none() {
        if args.url.is_some() {
            bail!(
                "--url needs the operator's password (--operator-password or TANDA_OPERATOR_PASSWORD)"
            );
        }
        let password: String = rand::Rng::sample_iter(rand::rng(), rand::distr::Alphanumeric)
            .take(20)
            .map(char::from)
            .collect();
        run.services.identity.operator_password = Some(password);
    }
    let mut table = Table::new(&args, &run);
    let scenarios = match args.scenario {
        Scenario::All => vec![
            Scenario::Booking,
            Scenario::Ride,
            Scenario::Reservation,
            Scenario::Footprint,
        ],
        one => vec![one],
    };
    for scenario in &scenarios {
        eprintln!("bench: {scenario:?}…");
        match scenario {
            Scenario::Booking => booking(&args, &run, &mut table).await?,
            Scenario::Ride => ride(&args, &run, &mut table).await?,
            Scenario::Reservation => reservation(&args, &run, &mut table).await?,
            _ => footprint(&args, &run, &mut table).await?,
        }
    }
    print!("{}", table.text());
    if let Some(path) = &args.markdown {
        std::fs::write(path, table.markdown())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench: markdown written to {}", path.display());
    }
    Ok(())
}

/// What is being measured: a process (or cluster) the bench started, or a URL.
enum Target {
    AllInOne(Started),
    /// The cluster, its servers' settings, and the directory of its logs (removed after).
    Cluster(Box<Cluster>, Distributed, tempfile::TempDir),
    Url(SocketAddr),
}

impl Target {
    async fn start(args: &BenchArgs, run: &RunConfig) -> anyhow::Result<Target> {
        load::sign_out();
        // The bench's own processes have no load balancer to wait for when it stops them.
        let mut run = run.clone();
        run.http.drain_delay = Duration::ZERO;
        let run = &run;
        let target = Self::started(args, run).await?;
        load::sign_in(target.addr(), operator_password(run)).await?;
        Ok(target)
    }

    async fn started(args: &BenchArgs, run: &RunConfig) -> anyhow::Result<Target> {
        if let Some(url) = &args.url {
            let authority = url.trim_start_matches("http://").trim_end_matches('/');
            let addr = tokio::net::lookup_host(authority)
                .await
                .with_context(|| format!("resolving {url}"))?
                .next()
                .with_context(|| format!("no address for {url}"))?;
            return Ok(Target::Url(addr));
        }
        if args.distributed {
            let mut dist = args.servers.clone();
            dist.namespace = format!("bench{}", std::process::id());
            dist.base_port = 0;
            let mut config = run.clone();
            config.http_addr = None;
            // The load generator is many clients from one address.
            config.edge.write_rate_limit = 0;
            let logs = tempfile::tempdir()?;
            config.data_dir = logs.path().to_path_buf();
            let program = std::env::current_exe()?;
            let cluster = Cluster::start(&program, &config, &dist).await?;
            return Ok(Target::Cluster(Box::new(cluster), dist, logs));
        }
        Ok(Target::AllInOne(
            Started::all_in_one(&child_args(run), &child_env(run)).await?,
        ))
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Target::AllInOne(s) => s.addr,
            Target::Cluster(c, ..) => c.gateway,
            Target::Url(a) => *a,
        }
    }

    /// Units of work committed so far in every process of the target, and the transactions
    /// they committed in (fewer when SQLite units share one under load).
    async fn commits(&self) -> anyhow::Result<Commits> {
        let addrs: Vec<SocketAddr> = match self {
            Target::Cluster(c, ..) => c.addrs.values().copied().collect(),
            other => vec![other.addr()],
        };
        let mut total = Commits::default();
        for addr in addrs {
            let mut conn = Conn::new(addr);
            total.units += target::counter(&mut conn, "tanda_commits_total").await?;
            total.transactions += target::counter(&mut conn, "tanda_transactions_total").await?;
        }
        Ok(total)
    }

    /// Names for the processes of the target, and for this one, in per-process CPU figures.
    fn process_names(&self) -> HashMap<u32, String> {
        let mut names = HashMap::from([(std::process::id(), "load generator".to_owned())]);
        match self {
            Target::AllInOne(started) => {
                names.insert(started.pid(), "tanda (all-in-one)".to_owned());
            }
            Target::Cluster(cluster, ..) => {
                names.extend(
                    cluster
                        .pids()
                        .map(|(service, pid)| (pid, format!("tanda {service}"))),
                );
            }
            Target::Url(_) => {}
        }
        names
    }

    fn label(&self) -> &'static str {
        match self {
            Target::AllInOne(_) => "all-in-one",
            Target::Cluster(..) => "distributed",
            Target::Url(_) => "at --url",
        }
    }

    async fn stop(self) {
        if let Target::Cluster(mut cluster, dist, _logs) = self {
            cluster.stop().await;
            purge(&dist).await;
        }
    }
}

/// The knobs a started all-in-one gets from the bench's own command line.
/// The operator password `run` was given (`run` sets one when none was).
fn operator_password(run: &RunConfig) -> &str {
    let Some(password) = &run.services.identity.operator_password else {
        unreachable!("bench::run sets the operator password")
    };
    password
}

/// The environment of a Tanda the bench starts: its operator password.
fn child_env(run: &RunConfig) -> Vec<(String, String)> {
    vec![(
        "TANDA_OPERATOR_PASSWORD".to_owned(),
        operator_password(run).to_owned(),
    )]
}

fn child_args(run: &RunConfig) -> Vec<String> {
    let sync = match run.sqlite_synchronous {
        tanda_core::db::Durability::Normal => "normal",
        tanda_core::db::Durability::Full => "full",
    };
    vec!["--sqlite-synchronous".to_owned(), sync.to_owned()]
}

async fn hello_ceiling(args: &BenchArgs) -> anyhow::Result<Samples> {
    let hello = Started::hello().await?;
    let warm = closed_loop(
        hello.addr,
        args.concurrency,
        Duration::from_millis(500),
        u64::MAX,
        &Hello,
    )
    .await;
    drop(warm);
    Ok(closed_loop(
        hello.addr,
        args.concurrency,
        args.duration,
        args.operations,
        &Hello,
    )
    .await)
}

/// The commit ceiling of the target's database, measured now and added to the table: pgbench's
/// single-insert rate for the distributed topology; for SQLite, the raw C API's rate, and beside
/// it the rate of the same transaction through Tanda's database layer.
async fn commit_ceiling(
    args: &BenchArgs,
    run: &RunConfig,
    target: &Target,
    table: &mut Table,
) -> anyhow::Result<Ceiling> {
    let seconds = args.duration.min(Duration::from_secs(5));
    if let Target::Cluster(..) = target {
        let (url, clients) = (args.servers.postgres_url.clone(), args.concurrency);
        let pgbench =
            tokio::task::spawn_blocking(move || baseline::pgbench_inserts(&url, clients, seconds))
                .await??;
        let name = "pgbench single-row inserts/s";
        let mut row = Row::plain(name, format!("{:.0}", pgbench.rate));
        if let Some(ms) = pgbench.cpu_ms_per_insert {
            row = row.note(format!("machine CPU {ms:.3} ms per insert"));
        }
        table.push(row);
        return Ok(Ceiling {
            name,
            rate: pgbench.rate,
            through_db: None,
            cpu_ms_per_op: pgbench
                .cpu_ms_per_insert
                .map(|ms| ("pgbench's per insert", ms)),
        });
    }
    let durability = run.sqlite_synchronous;
    let raw =
        tokio::task::spawn_blocking(move || baseline::sqlite_raw_commits(durability, seconds))
            .await??;
    let name = "SQLite single-row commits/s (C API)";
    table.push(Row::plain(name, format!("{raw:.0}")));
    let layered = baseline::sqlite_commits(durability, seconds).await?;
    table.push(
        Row::plain("the same through Tanda's Db", format!("{layered:.0}"))
            .against("the C API", raw),
    );
    Ok(Ceiling {
        name,
        rate: raw,
        through_db: Some(layered),
        cpu_ms_per_op: None,
    })
}

/// A commit ceiling: the database's own rate, (SQLite) the rate through Tanda's `Db`, and
/// (pgbench) the machine's CPU per commit.
struct Ceiling {
    name: &'static str,
    rate: f64,
    through_db: Option<f64>,
    cpu_ms_per_op: Option<(&'static str, f64)>,
}

async fn booking(args: &BenchArgs, run: &RunConfig, table: &mut Table) -> anyhow::Result<()> {
    let hello = hello_ceiling(args).await?;
    table.push(Row::ceiling(
        "HTTP ceiling: GET /hello req/s",
        hello.rate(),
        &hello,
    ));
    let target = Target::start(args, run).await?;
    commit_ceiling(args, run, &target, table).await?;
    let addr = target.addr();
    let mut conn = Conn::new(addr);
    scenario::drivers_online(&mut conn, 12).await?;
    // Offers would make every driver busy within a few bookings, and a booking with no driver
    // free is refused: pause dispatch so that this measures the front door alone (`ride`
    // measures the whole flow).
    switch_dispatch(&mut conn, "pause").await?;
    closed_loop(
        addr,
        args.concurrency,
        Duration::from_millis(500),
        u64::MAX,
        &Book,
    )
    .await;
    let commits = target.commits().await?;
    let clock = CpuClock::now();
    let samples = closed_loop(
        addr,
        args.concurrency,
        args.duration,
        args.operations,
        &Book,
    )
    .await;
    let spent = clock.and_then(|c| c.since(&target.process_names()));
    let commits = target.commits().await?.per(commits, samples.ok());
    switch_dispatch(&mut conn, "resume").await?;
    table.push(
        Row::rate(
            format!("bookings accepted/s ({})", target.label()),
            &samples,
        )
        .against("HTTP ceiling", hello.rate()),
    );
    table.push(Row::latency("booking latency", &samples));
    table.push(Row::plain("commits per booking", commits.to_string()));
    if let Some(spent) = spent {
        table.extend(cpu_rows("booking", &spent, samples.ok(), None));
    }
    target.stop().await;
    Ok(())
}

/// Committed units of work and the transactions they took.
#[derive(Clone, Copy, Default)]
struct Commits {
    units: f64,
    transactions: f64,
}

impl Commits {
    /// Per operation, from `before` to `self`.
    fn per(self, before: Commits, operations: u64) -> Commits {
        let n = operations.max(1) as f64;
        Commits {
            units: (self.units - before.units) / n,
            transactions: (self.transactions - before.transactions) / n,
        }
    }
}

impl std::fmt::Display for Commits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} (in {:.1} transactions)",
            self.units, self.transactions
        )
    }
}

async fn switch_dispatch(conn: &mut Conn, to: &str) -> anyhow::Result<()> {
    conn.post(
        &format!("/admin/consumers/dispatch/{to}"),
        &json!({}),
        axum::http::StatusCode::OK,
    )
    .await
    .map(drop)
    .map_err(|e| anyhow::anyhow!("{to} dispatch: {}", e.0))
}

async fn ride(args: &BenchArgs, run: &RunConfig, table: &mut Table) -> anyhow::Result<()> {
    let target = Target::start(args, run).await?;
    let ceiling = commit_ceiling(args, run, &target, table).await?;
    let addr = target.addr();
    // Two drivers per worker, and at least one at every named place: a pickup with no driver
    // within the pickup radius is refused (503), and a ride must find one to measure.
    let drivers = (args.concurrency * 2).max(tanda_web::places::SEOUL.len());
    scenario::drivers_online(&mut Conn::new(addr), drivers).await?;
    closed_loop(
        addr,
        args.concurrency,
        Duration::from_secs(1),
        u64::MAX,
        &Ride,
    )
    .await;
    let before = target.commits().await?;
    let clock = CpuClock::now();
    let samples = closed_loop(
        addr,
        args.concurrency,
        args.duration,
        args.operations,
        &Ride,
    )
    .await;
    let spent = clock.and_then(|c| c.since(&target.process_names()));
    let per_ride = target.commits().await?.per(before, samples.ok());
    flow_rows(
        table,
        ("ride", "rides completed/s", "request → COMPLETED"),
        &target,
        (&samples, spent),
        per_ride,
        &ceiling,
    );
    target.stop().await;
    Ok(())
}

async fn reservation(args: &BenchArgs, run: &RunConfig, table: &mut Table) -> anyhow::Result<()> {
    let target = Target::start(args, run).await?;
    let ceiling = commit_ceiling(args, run, &target, table).await?;
    let addr = target.addr();
    // Enough seats for the warm-up and for the fastest run this machine could make.
    let most = args.operations.min(20_000 * (args.duration.as_secs() + 2));
    let op = Reserve::set_up(&mut Conn::new(addr), args.concurrency, most).await?;
    closed_loop(
        addr,
        args.concurrency,
        Duration::from_secs(1),
        u64::MAX,
        &op,
    )
    .await;
    let before = target.commits().await?;
    let clock = CpuClock::now();
    let samples = closed_loop(addr, args.concurrency, args.duration, args.operations, &op).await;
    let spent = clock.and_then(|c| c.since(&target.process_names()));
    let per = target.commits().await?.per(before, samples.ok());
    flow_rows(
        table,
        (
            "reservation",
            "reservations confirmed/s",
            "request → CONFIRMED",
        ),
        &target,
        (&samples, spent),
        per,
        &ceiling,
    );
    target.stop().await;
    Ok(())
}

/// The rows of a multi-step flow: its rate set against the commit ceiling divided by the commits
/// one flow costs (the most the database could do), and, for SQLite, against the same through
/// Tanda's `Db`; its latency; its cost in commits, requests and the machine's CPU.
fn flow_rows(
    table: &mut Table,
    (flow, rate_name, latency_name): (&str, &str, &str),
    target: &Target,
    (samples, spent): (&Samples, Option<CpuUse>),
    commits_per: Commits,
    ceiling: &Ceiling,
) {
    let figure = format!("{rate_name} ({})", target.label());
    let requests_each = samples.requests as f64 / samples.ok().max(1) as f64;
    // A gateway at --url reports no commits of the services behind it: no ratio to set.
    let known = commits_per.units > 0.0;
    let per = |rate: f64| rate / commits_per.units;
    let rate = Row::rate(&figure, samples);
    if known {
        table.push(rate.against(
            &format!("{} ÷ commits each", ceiling.name),
            per(ceiling.rate),
        ));
        if let Some(through_db) = ceiling.through_db {
            table.push(
                Row::plain("  the same", format!("{:.0}", samples.rate()))
                    .against("Tanda's Db ÷ commits each", per(through_db)),
            );
        }
    } else {
        table.push(rate);
    }
    table.push(Row::latency(latency_name, samples));
    let commits = if known {
        commits_per.to_string()
    } else {
        "not reported at this URL".to_owned()
    };
    table.push(Row::plain(
        "commits each / HTTP requests each",
        format!("{commits} / {requests_each:.1}"),
    ));
    if let Some(spent) = spent {
        table.extend(cpu_rows(flow, &spent, samples.ok(), ceiling.cpu_ms_per_op));
    }
}

/// The machine's CPU per operation (set against the ceiling's, when it has one), then split by
/// process.
fn cpu_rows(
    operation: &str,
    spent: &CpuUse,
    operations: u64,
    ceiling: Option<(&str, f64)>,
) -> Vec<Row> {
    let total = Row::cpu(
        &format!("machine CPU per {operation}"),
        spent,
        operations,
        ceiling,
    );
    std::iter::once(total)
        .chain(cpu_by_process(spent, operations))
        .collect()
}

/// The machine's CPU per operation split by process: the processes that took at least 1 % of what
/// all processes took, most first, with that share.
fn cpu_by_process(spent: &CpuUse, operations: u64) -> impl Iterator<Item = Row> + '_ {
    let all: f64 = spent.by_process.iter().map(|(_, seconds)| seconds).sum();
    spent
        .by_process
        .iter()
        .map(move |(name, seconds)| {
            let ms = 1000.0 * seconds / operations.max(1) as f64;
            (name, ms, 100.0 * seconds / all.max(f64::EPSILON))
        })
        .filter(|(_, _, share)| *share >= 1.0)
        .map(|(name, ms, share)| {
            Row::plain(format!("  of which {name}"), format!("{ms:.3} ms"))
                .note(format!("{share:.0}%"))
        })
}

async fn footprint(args: &BenchArgs, run: &RunConfig, table: &mut Table) -> anyhow::Result<()> {
    let mut starts = Vec::new();
    for _ in 0..5 {
        let started = Started::all_in_one(&child_args(run), &child_env(run)).await?;
        starts.push(started.start_to_ready);
    }
    starts.sort();
    table.push(Row::plain(
        "start → ready, all-in-one (median of 5)",
        format!("{:.0} ms", starts[2].as_secs_f64() * 1000.0),
    ));
    let tanda = Started::all_in_one(&child_args(run), &child_env(run)).await?;
    load::sign_in(tanda.addr, operator_password(run)).await?;
    let mut conn = Conn::new(tanda.addr);
    scenario::drivers_online(&mut conn, 12).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    table.push(Row::plain(
        "idle RSS, whole system (all-in-one)",
        format!("{:.1} MiB", tanda.rss_mib()?),
    ));
    switch_dispatch(&mut conn, "pause").await?;
    let seconds = args.duration.min(Duration::from_secs(5));
    let load = closed_loop(
        tanda.addr,
        args.concurrency,
        seconds,
        args.operations,
        &Book,
    );
    tokio::pin!(load);
    let mut peak = tanda.rss_mib()?;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = &mut load => break,
            _ = tick.tick() => peak = peak.max(tanda.rss_mib()?),
        }
    }
    table.push(Row::plain(
        format!("peak RSS under load ({} clients booking)", args.concurrency),
        format!("{peak:.1} MiB"),
    ));
    drop(tanda);
    match one_service(args, run).await {
        Ok((ready, rss)) => {
            table.push(Row::plain(
                "start → ready, one service process (book)",
                format!("{:.0} ms", ready.as_secs_f64() * 1000.0),
            ));
            table.push(Row::plain(
                "idle RSS, one service process (book)",
                format!("{rss:.1} MiB"),
            ));
        }
        Err(e) => table.push(Row::plain(
            "one service process",
            format!("not measured: {e:#}"),
        )),
    }
    Ok(())
}

/// `tanda serve book` on PostgreSQL + NATS: start → ready and idle RSS.
async fn one_service(args: &BenchArgs, run: &RunConfig) -> anyhow::Result<(Duration, f64)> {
    let mut dist = args.servers.clone();
    dist.namespace = format!("benchone{}", std::process::id());
    let mut argv = vec![
        "serve".to_owned(),
        tanda_book::SPEC.name.to_owned(),
        "--http-addr".to_owned(),
        "127.0.0.1:0".to_owned(),
    ];
    argv.extend(child_args(run));
    let mut env = dist.to_env();
    env.extend(child_env(run));
    // Book fetches identity's keys only to verify a token, and nothing here sends one: the
    // figure is start-up and idle memory. Book refuses to start without being told where it is.
    env.push((
        "TANDA_UPSTREAMS".to_owned(),
        "identity=http://127.0.0.1:9".to_owned(),
    ));
    let outcome = async {
        // The first start creates the database; the second is what a restart costs.
        drop(Started::service(&argv, &env).await?);
        let book = Started::service(&argv, &env).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok::<_, anyhow::Error>((book.start_to_ready, book.rss_mib()?))
    }
    .await;
    purge(&dist).await;
    outcome
}
