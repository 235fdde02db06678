//! The systems under test: a Tanda the bench starts (this same binary, all-in-one on a temporary
//! data dir, or one service), the bare "hello" server of the HTTP ceiling, or a Tanda at a URL.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::routing::get;
use tanda_core::host::{HttpConfig, serve};
use tanda_core::lifecycle::Lifecycle;
use tokio::net::TcpListener;

use super::load::Conn;

/// A process the bench started; killed when dropped.
pub struct Started {
    pub addr: SocketAddr,
    /// From spawning the process to its first `200` from `/readyz` (or `/hello`).
    pub start_to_ready: Duration,
    child: Child,
    _data: Option<tempfile::TempDir>,
}

impl Started {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Tanda all-in-one on a fresh data dir, with `extra` arguments and environment.
    pub async fn all_in_one(extra: &[String], env: &[(String, String)]) -> anyhow::Result<Started> {
        let data = tempfile::tempdir()?;
        let mut args = vec![
            "--data-dir".to_owned(),
            data.path().display().to_string(),
            "--http-addr".to_owned(),
            "127.0.0.1:0".to_owned(),
        ];
        args.extend_from_slice(extra);
        Self::spawn(&args, env, "/readyz", Some(data)).await
    }

    /// One service of the distributed topology (`tanda serve <service>`), configured by `env`.
    pub async fn service(args: &[String], env: &[(String, String)]) -> anyhow::Result<Started> {
        Self::spawn(args, env, "/readyz", None).await
    }

    /// The bare HTTP server of the ceiling (`tanda bench hello`).
    pub async fn hello() -> anyhow::Result<Started> {
        let args = ["bench", "hello", "--http-addr", "127.0.0.1:0"].map(str::to_owned);
        Self::spawn(&args, &[], "/hello", None).await
    }

    async fn spawn(
        args: &[String],
        env: &[(String, String)],
        ready_path: &str,
        data: Option<tempfile::TempDir>,
    ) -> anyhow::Result<Started> {
        let program = std::env::current_exe().context("finding this program")?;
        super::load::sign_out();
        let t0 = Instant::now();
        let mut child = Command::new(&program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("TANDA_LOG", "warn")
            // The load generator is many clients from one address.
            .env("TANDA_WRITE_RATE_LIMIT", "0")
            .env_remove("TANDA_DEMO")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let addr = tokio::task::spawn_blocking(move || listening_addr(stdout)).await??;
        let mut conn = Conn::new(addr);
        loop {
            if let Ok((status, _)) = conn.call(axum::http::Method::GET, ready_path, None).await
                && status.is_success()
            {
                break;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("{} did not become ready", program.display());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(Started {
            addr,
            start_to_ready: t0.elapsed(),
            child,
            _data: data,
        })
    }

    /// Resident memory now, in MiB.
    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        rss_mib(self.child.id())
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the child's "… listening on http://ADDR" line; the rest of its output is drained.
fn listening_addr(stdout: std::process::ChildStdout) -> anyhow::Result<SocketAddr> {
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some((_, url)) = line.split_once("http://") {
            let addr = url
                .trim()
                .parse()
                .context("reading the address it listens on")?;
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(addr);
        }
    }
    bail!("the process exited before it listened")
}

/// `VmRSS` of a process, in MiB.
pub fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")?;
    Ok(kib / 1024.0)
}

/// `tanda bench hello`: the HTTP ceiling, a `GET /hello` on the same server stack as Tanda
/// (tokio, hyper, axum, `tanda_core::host::serve`) and nothing behind it.
pub async fn serve_hello(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("hello is listening on http://{}", listener.local_addr()?);
    let router = Router::new().route("/hello", get(|| async { "hello" }));
    serve(listener, router, Lifecycle::new(), HttpConfig::default()).await?;
    Ok(())
}

/// The sum of a Prometheus counter over its labels, from `/metrics`.
pub async fn counter(conn: &mut Conn, name: &str) -> anyhow::Result<f64> {
    let (status, body) = conn.call(axum::http::Method::GET, "/metrics", None).await?;
    if !status.is_success() {
        bail!("/metrics answered {status}");
    }
    let text = String::from_utf8_lossy(&body);
    Ok(text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}
