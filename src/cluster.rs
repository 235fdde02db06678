//! `tanda cluster`: the whole distributed topology on one machine, for trying it out — every
//! service as its own `tanda serve` process on the given PostgreSQL and NATS, each with its log
//! file. Pay and dispatch are given the service secret (`--service-secret`, or one made for the
//! cluster); the other processes are not. SIGTERM or Ctrl-C stops them all gracefully.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tanda_core::credential::ServiceSecret;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::config::{Distributed, RunConfig, Service};

/// The running processes of a local cluster.
pub struct Cluster {
    program: PathBuf,
    pub gateway: SocketAddr,
    pub addrs: BTreeMap<&'static str, SocketAddr>,
    children: BTreeMap<&'static str, Child>,
    /// Instances beyond the first of a service ([`Cluster::add_instance`]).
    extra: Vec<Child>,
    /// Replicas started with the first instances, until they are ready.
    extra_starting: Vec<Replica>,
    /// Where each replica beyond the first listens: the gateway balances over them too.
    replicas: Vec<(&'static str, SocketAddr)>,
    env: Vec<(String, String)>,
    /// The secret pay and dispatch share: the one given, or one made for this cluster.
    service_secret: ServiceSecret,
    logs: PathBuf,
}

const SERVICE_SECRET_ENV: &str = "TANDA_SERVICE_SECRET";

/// Runs the cluster (and, with --demo, the demo against its gateway) until SIGTERM/Ctrl-C.
pub async fn run(run: RunConfig, dist: Distributed) -> anyhow::Result<()> {
    let program = std::env::current_exe().context("finding the tanda binary")?;
    let mut cluster = Cluster::start(&program, &run, &dist).await?;
    for (name, addr) in &cluster.addrs {
        println!(
            "  {name:<17} http://{addr}   log: {}",
            cluster.logs.join(format!("{name}.log")).display()
        );
    }
    let url = format!("http://{}", cluster.gateway);
    println!("Tanda is listening on {url}");
    let demo = match (&run.demo, &run.services.identity.operator_password) {
        (true, Some(password)) => Some(crate::demo::start(
            &url,
            run.demo_pace,
            password,
            &CancellationToken::new(),
        )),
        _ => None,
    };
    tanda_core::lifecycle::termination_signal().await;
    if let Some(demo) = demo {
        demo.stop().await;
    }
    cluster.stop().await;
    Ok(())
}

impl Cluster {
    /// Starts every service (and the gateway) as `program serve …` and waits until each is
    /// ready. With `--base-port 0` every process binds a free port itself and reports it, so no
    /// other process can take the port in between; a service then starts once the services it
    /// calls are listening (the gateway last), because it is told where they are.
    pub async fn start(
        program: &Path,
        run: &RunConfig,
        dist: &Distributed,
    ) -> anyhow::Result<Cluster> {
        Self::start_replicated(program, run, dist, 1).await
    }

    /// [`Cluster::start`] with `replicas` instances of every service but the gateway, the
    /// instances of a service started at the same moment (as an orchestrator would).
    pub async fn start_replicated(
        program: &Path,
        run: &RunConfig,
        dist: &Distributed,
        replicas: usize,
    ) -> anyhow::Result<Cluster> {
        let mut cluster = Self::prepare(program, run, dist)?;
        let at = |service: Service| {
            let port = match dist.base_port {
                0 => 0,
                base => base + service.port_offset(),
            };
            SocketAddr::from(([127, 0, 0, 1], port))
        };
        // Waves: every service whose upstreams are all listening starts, then the next wave.
        let mut waiting: Vec<Service> = Service::all().to_vec();
        while !waiting.is_empty() {
            let (wave, rest): (Vec<Service>, Vec<Service>) = waiting.into_iter().partition(|s| {
                s.calls()
                    .into_iter()
                    .all(|up| cluster.addrs.contains_key(up.name()))
            });
            if wave.is_empty() {
                bail!("services that call each other in a circle cannot start one after the other");
            }
            cluster.start_wave(&wave, replicas, at).await?;
            waiting = rest;
        }
        cluster.gateway = cluster.addrs[Service::Gateway.name()];
        for service in Service::all() {
            cluster.wait_ready(*service).await?;
        }
        cluster.wait_extra_ready().await?;
        Ok(cluster)
    }

    /// A cluster with nothing started yet: its logs directory made, the environment every
    /// process is given, the service secret.
    fn prepare(program: &Path, run: &RunConfig, dist: &Distributed) -> anyhow::Result<Cluster> {
        if run.http_addr.is_some() {
            bail!("the cluster's gateway listens on --base-port; --http-addr is per process");
        }
        let logs = run.data_dir.join("logs");
        tanda_core::db::private_dir(&run.data_dir)
            .and_then(|()| std::fs::create_dir_all(&logs))
            .with_context(|| format!("creating {}", logs.display()))?;
        let mut env = run.to_env();
        env.extend(dist.to_env());
        // Only the processes that need it are given the service secret (see `spawn`).
        env.retain(|(k, _)| k != SERVICE_SECRET_ENV);
        let service_secret = dist
            .service_secret
            .clone()
            .unwrap_or_else(ServiceSecret::random);
        Ok(Cluster {
            program: program.to_path_buf(),
            gateway: SocketAddr::from(([127, 0, 0, 1], 0)),
            addrs: BTreeMap::new(),
            children: BTreeMap::new(),
            extra: Vec::new(),
            extra_starting: Vec::new(),
            replicas: Vec::new(),
            env,
            service_secret,
            logs,
        })
    }

    /// Starts `wave`'s services (each told where every service already listening is), the first
    /// instance of each at `at`, and waits until those listen; the other replicas start on free
    /// ports and are waited for at the end.
    async fn start_wave(
        &mut self,
        wave: &[Service],
        replicas: usize,
        at: impl Fn(Service) -> SocketAddr,
    ) -> anyhow::Result<()> {
        if wave.contains(&Service::Gateway) {
            self.replicas_listening().await?;
        }
        self.env.retain(|(k, _)| k != "TANDA_UPSTREAMS");
        let upstreams: Vec<String> = self
            .addrs
            .iter()
            .filter(|(name, _)| **name != Service::Gateway.name())
            .map(|(name, addr)| (*name, *addr))
            .chain(self.replicas.iter().copied())
            .map(|(name, addr)| format!("{name}=http://{addr}"))
            .collect();
        if !upstreams.is_empty() {
            self.env
                .push(("TANDA_UPSTREAMS".into(), upstreams.join(",")));
        }
        let mut started = Vec::new();
        for service in wave {
            started.push((
                *service,
                self.spawn(*service, at(*service), service.name())?,
            ));
            let more = if *service == Service::Gateway {
                0
            } else {
                replicas.saturating_sub(1)
            };
            for n in 0..more {
                let label = format!("{}-{}", service.name(), n + 2);
                let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
                let process = self.spawn(*service, any_port, &label)?;
                self.extra_starting.push(Replica {
                    service: *service,
                    label,
                    process,
                    addr: None,
                });
            }
        }
        for (service, mut process) in started {
            let Some(addr) = process.listening().await else {
                bail!(
                    "{} did not start listening; see {}",
                    service.name(),
                    self.log(service.name()).display()
                );
            };
            self.addrs.insert(service.name(), addr);
            self.children.insert(service.name(), process.child);
        }
        Ok(())
    }

    /// Waits until every replica started so far listens, and notes where.
    async fn replicas_listening(&mut self) -> anyhow::Result<()> {
        for replica in &mut self.extra_starting {
            if replica.addr.is_some() {
                continue;
            }
            let Some(addr) = replica.process.listening().await else {
                bail!(
                    "{} did not start listening; see {}",
                    replica.label,
                    self.logs.join(format!("{}.log", replica.label)).display()
                );
            };
            replica.addr = Some(addr);
            self.replicas.push((replica.service.name(), addr));
        }
        Ok(())
    }

    /// Waits until every replica beyond the first of each service is ready.
    async fn wait_extra_ready(&mut self) -> anyhow::Result<()> {
        self.replicas_listening().await?;
        for mut replica in std::mem::take(&mut self.extra_starting) {
            let addr = replica.addr.expect("listening");
            let ready =
                wait_ready(&replica.label, addr, &mut replica.process.child, &self.logs).await;
            self.extra.push(replica.process.child);
            ready?;
        }
        Ok(())
    }

    /// Starts one more instance of `service` on a free port, with the same configuration (so the
    /// same database and streams: the instances share the work), and waits until it is ready.
    /// The gateway keeps sending requests to the first instance. Returns where the new one listens.
    pub async fn add_instance(&mut self, service: Service) -> anyhow::Result<SocketAddr> {
        let label = format!("{}-{}", service.name(), self.extra.len() + 2);
        let mut process = self.spawn(service, SocketAddr::from(([127, 0, 0, 1], 0)), &label)?;
        let addr = process.listening().await;
        let ready = match addr {
            Some(addr) => wait_ready(&label, addr, &mut process.child, &self.logs).await,
            None => Err(anyhow::anyhow!(
                "{label} did not start listening; see {}",
                self.log(&label).display()
            )),
        };
        self.extra.push(process.child);
        ready.map(|()| addr.expect("ready means listening"))
    }

    /// Starts `program serve <service>` on `addr` (port 0: a free one), logging to `<label>.log`.
    /// Its stdout is read for the line saying where it listens, and copied to the log.
    fn spawn(&self, service: Service, addr: SocketAddr, label: &str) -> anyhow::Result<Process> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(label))
            .context("opening the log file")?;
        let mut command = Command::new(&self.program);
        if service.needs_service_secret() {
            command.env(SERVICE_SECRET_ENV, self.service_secret.expose());
        } else {
            command.env_remove(SERVICE_SECRET_ENV);
        }
        let mut child = command
            .args(["serve", service.name()])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TANDA_HTTP_ADDR", addr.to_string())
            // The demo runs in this process, against the gateway; not again in the gateway.
            .env_remove("TANDA_DEMO")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.try_clone()?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {label}"))?;
        let stdout = child.stdout.take().context("the child's stdout")?;
        let banner = format!("Tanda {} is listening on http://", service.name());
        let (report, listening) = oneshot::channel();
        tokio::spawn(copy_to_log(stdout, log, banner, report));
        Ok(Process { child, listening })
    }

    fn log(&self, label: &str) -> PathBuf {
        self.logs.join(format!("{label}.log"))
    }

    async fn wait_ready(&mut self, service: Service) -> anyhow::Result<()> {
        let name = service.name();
        let child = self
            .children
            .get_mut(name)
            .with_context(|| format!("{name} is not running"))?;
        wait_ready(name, self.addrs[name], child, &self.logs).await
    }

    /// Where the replicas of `service` started with the cluster listen (beyond the first).
    pub fn replicas_of(&self, service: Service) -> Vec<SocketAddr> {
        self.replicas
            .iter()
            .filter(|(name, _)| *name == service.name())
            .map(|(_, addr)| *addr)
            .collect()
    }

    /// The pid of the (first) instance of each service, the gateway's among them.
    pub fn pids(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        self.children
            .iter()
            .filter_map(|(name, child)| Some((*name, child.id()?)))
    }

    /// SIGKILL the (first) instance of `service`, for fault tests: no shutdown code runs in it.
    pub async fn kill9(&mut self, service: Service) {
        if let Some(mut child) = self.children.remove(service.name()) {
            let _ = child.kill().await;
        }
    }

    /// Starts a killed process again, where it listened before, and waits until it is ready.
    pub async fn restart(&mut self, service: Service) -> anyhow::Result<()> {
        self.kill9(service).await;
        let name = service.name();
        let process = self.spawn(service, self.addrs[name], name)?;
        self.children.insert(name, process.child);
        self.wait_ready(service).await
    }

    /// SIGTERM to every process (the gateway first, so clients see it go), then waits.
    pub async fn stop(&mut self) {
        for (name, child) in self.children.iter_mut() {
            if *name == "gateway" {
                terminate(child);
            }
        }
        for child in self.children.values().chain(&self.extra) {
            terminate(child);
        }
        for child in self.children.values_mut().chain(&mut self.extra) {
            if tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        self.children.clear();
        self.extra.clear();
    }
}

/// Waits until the process `label` (a child listening on `addr`) answers `/readyz`.
async fn wait_ready(
    label: &str,
    addr: SocketAddr,
    child: &mut Child,
    logs: &Path,
) -> anyhow::Result<()> {
    let url = format!("http://{addr}/readyz");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = || logs.join(format!("{label}.log"));
    loop {
        if client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("{label} exited ({status}); see {}", log().display());
        }
        if Instant::now() > deadline {
            bail!("{label} did not become ready; see {}", log().display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        // SIGTERM: the graceful path (readiness false, drain, flush the outbox).
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
}

/// A child process just started, and where it says it listens (`None`: it exited first).
struct Process {
    child: Child,
    listening: oneshot::Receiver<Option<SocketAddr>>,
}

impl Process {
    /// Where the process listens, once it says so; `None` if it exits or says nothing for a minute.
    async fn listening(&mut self) -> Option<SocketAddr> {
        tokio::time::timeout(Duration::from_secs(60), &mut self.listening)
            .await
            .ok()?
            .ok()?
    }
}

/// Copies a child's stdout to its log, reporting the address in the first line that starts with
/// `banner` (or `None`, if its stdout ends first).
async fn copy_to_log(
    stdout: ChildStdout,
    log: std::fs::File,
    banner: String,
    report: oneshot::Sender<Option<SocketAddr>>,
) {
    let mut log = tokio::fs::File::from_std(log);
    let mut lines = BufReader::new(stdout).lines();
    let mut report = Some(report);
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(addr) = line.strip_prefix(&banner)
            && let Some(report) = report.take()
        {
            let _ = report.send(addr.trim().parse().ok());
        }
        if log.write_all(format!("{line}\n").as_bytes()).await.is_err() {
            break;
        }
    }
    if let Some(report) = report {
        let _ = report.send(None);
    }
}

/// Drops a namespace's databases and streams: what a throw-away cluster (a test's, a
/// benchmark's) leaves behind. Best effort: what cannot be reached is left.
pub async fn purge(dist: &Distributed) {
    use sqlx::Connection;
    let namespace = &dist.namespace;
    let admin_url = format!("{}/postgres", dist.postgres_url.trim_end_matches('/'));
    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
        for spec in crate::registry::specs() {
            let drop = format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                dist.database(spec.name)
            );
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut admin)
                .await;
        }
    }
    if let Ok(client) = async_nats::connect(dist.nats_url.as_str()).await {
        let js = async_nats::jetstream::new(client);
        for service in crate::registry::nats_sources() {
            let _ = js
                .delete_stream(format!("{namespace}_{}", service.service).to_ascii_uppercase())
                .await;
        }
    }
}

/// A replica beyond the first, started with the first instances.
struct Replica {
    service: Service,
    label: String,
    process: Process,
    /// Where it listens, once it said.
    addr: Option<SocketAddr>,
}
