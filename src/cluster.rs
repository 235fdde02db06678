//! `tanda cluster`: the whole distributed topology on one machine, for trying it out — every
//! service as its own `tanda serve` process on the given PostgreSQL and NATS, each with its log
//! file. SIGTERM or Ctrl-C stops them all gracefully.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};
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
    env: Vec<(String, String)>,
    logs: PathBuf,
}

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
    let demo = run
        .demo
        .then(|| crate::demo::start(&url, run.demo_pace, &CancellationToken::new()));
    tanda_core::lifecycle::termination_signal().await;
    if let Some(demo) = demo {
        demo.stop().await;
    }
    cluster.stop().await;
    Ok(())
}

impl Cluster {
    /// Starts every service (and the gateway) as `program serve …` and waits until each is
    /// ready. With `--base-port 0` every process gets a free port.
    pub async fn start(
        program: &Path,
        run: &RunConfig,
        dist: &Distributed,
    ) -> anyhow::Result<Cluster> {
        if run.http_addr.is_some() {
            bail!("the cluster's gateway listens on --base-port; --http-addr is per process");
        }
        let mut addrs = BTreeMap::new();
        for service in Service::ALL {
            let port = if dist.base_port == 0 {
                free_port()?
            } else {
                dist.base_port + service.port_offset()
            };
            addrs.insert(service.name(), SocketAddr::from(([127, 0, 0, 1], port)));
        }
        let upstreams: Vec<String> = Service::ALL
            .iter()
            .filter(|s| **s != Service::Gateway)
            .map(|s| format!("{}=http://{}", s.name(), addrs[s.name()]))
            .collect();
        let mut env = run.to_env();
        env.extend(dist.to_env());
        env.push(("TANDA_UPSTREAMS".into(), upstreams.join(",")));
        let logs = run.data_dir.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let mut cluster = Cluster {
            program: program.to_path_buf(),
            gateway: addrs["gateway"],
            addrs,
            children: BTreeMap::new(),
            extra: Vec::new(),
            env,
            logs,
        };
        for service in Service::ALL {
            let name = service.name();
            let child = cluster.spawn(service, cluster.addrs[name], name)?;
            cluster.children.insert(name, child);
        }
        for service in Service::ALL {
            cluster.wait_ready(service).await?;
        }
        Ok(cluster)
    }

    /// Starts one more instance of `service` on a free port, with the same configuration (so the
    /// same database and streams: the instances share the work), and waits until it is ready.
    /// The gateway keeps sending requests to the first instance. Returns where the new one listens.
    pub async fn add_instance(&mut self, service: Service) -> anyhow::Result<SocketAddr> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let label = format!("{}-{}", service.name(), self.extra.len() + 2);
        let mut child = self.spawn(service, addr, &label)?;
        let ready = wait_ready(&label, addr, &mut child, &self.logs).await;
        self.extra.push(child);
        ready.map(|()| addr)
    }

    /// Starts `program serve <service>` on `addr`, logging to `<label>.log`.
    fn spawn(&self, service: Service, addr: SocketAddr, label: &str) -> anyhow::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{label}.log")))
            .context("opening the log file")?;
        Command::new(&self.program)
            .args(["serve", service.name()])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TANDA_HTTP_ADDR", addr.to_string())
            // The demo runs in this process, against the gateway; not again in the gateway.
            .env_remove("TANDA_DEMO")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {label}"))
    }

    async fn wait_ready(&mut self, service: Service) -> anyhow::Result<()> {
        let name = service.name();
        let child = self
            .children
            .get_mut(name)
            .with_context(|| format!("{name} is not running"))?;
        wait_ready(name, self.addrs[name], child, &self.logs).await
    }

    /// SIGKILL the (first) instance of `service`, for fault tests: no shutdown code runs in it.
    pub async fn kill9(&mut self, service: Service) {
        if let Some(mut child) = self.children.remove(service.name()) {
            let _ = child.kill().await;
        }
    }

    /// Starts a killed process again and waits until it is ready.
    pub async fn restart(&mut self, service: Service) -> anyhow::Result<()> {
        self.kill9(service).await;
        let name = service.name();
        let child = self.spawn(service, self.addrs[name], name)?;
        self.children.insert(name, child);
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

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Drops a namespace's databases and streams: what a throw-away cluster (a test's, a
/// benchmark's) leaves behind. Best effort: what cannot be reached is left.
pub async fn purge(dist: &Distributed) {
    use sqlx::Connection;
    let namespace = &dist.namespace;
    let admin_url = format!("{}/postgres", dist.postgres_url.trim_end_matches('/'));
    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
        for service in Service::ALL.iter().filter(|s| **s != Service::Gateway) {
            let db = format!("{namespace}_{}", service.name().replace('-', "_"));
            let drop = format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut admin)
                .await;
        }
    }
    if let Ok(client) = async_nats::connect(dist.nats_url.as_str()).await {
        let js = async_nats::jetstream::new(client);
        for service in crate::serve::SOURCES {
            let _ = js
                .delete_stream(format!("{namespace}_{}", service.service).to_ascii_uppercase())
                .await;
        }
    }
}
