//! `tanda`: parses the configuration and runs Tanda all-in-one, one service, or the local cluster.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;
use tanda::config::{Command, LogFormat, Service};
use tanda::{App, Cli, bench, cluster, demo, serve};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter =
        EnvFilter::try_from_env("TANDA_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    match cli.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }
    let mut cli = cli;
    let demo = match demo_password(&mut cli) {
        Ok(password) => password.map(|p| (cli.run.demo_pace, p)),
        Err(e) => {
            eprintln!("tanda: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command {
        None => run(App::start(cli.run).await, "Tanda is listening on", demo).await,
        Some(Command::Serve {
            service,
            distributed,
        }) => {
            let banner = format!("Tanda {} is listening on", service.name());
            if demo.is_some() && service != Service::Gateway {
                tracing::warn!("--demo runs with the gateway (`serve gateway`); ignored here");
            }
            let demo = demo.filter(|_| service == Service::Gateway);
            run(
                serve::start(service, cli.run, distributed).await,
                &banner,
                demo,
            )
            .await
        }
        Some(Command::Cluster { distributed }) => cluster::run(cli.run, distributed).await,
        Some(Command::Bench(args)) => bench::run(args, cli.run).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tanda: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The operator password the demo signs in with, when the demo runs. Without a configured one,
/// all-in-one and the cluster make a fresh one for this run (the operator's password from now
/// on) and print it, so the operator's page can be opened too; `serve gateway` cannot, since
/// identity runs elsewhere.
fn demo_password(cli: &mut Cli) -> anyhow::Result<Option<String>> {
    if !cli.run.demo {
        return Ok(None);
    }
    if let Some(password) = &cli.run.services.identity.operator_password {
        return Ok(Some(password.clone()));
    }
    if matches!(cli.command, Some(Command::Serve { .. })) {
        anyhow::bail!("--demo with `serve gateway` needs TANDA_OPERATOR_PASSWORD, identity's");
    }
    let password: String = rand::Rng::sample_iter(rand::rng(), rand::distr::Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    println!(
        "Demo: sign in as `operator` with the password {password} (set TANDA_OPERATOR_PASSWORD to choose it)"
    );
    cli.run.services.identity.operator_password = Some(password.clone());
    Ok(Some(password))
}

/// Serves until SIGTERM/Ctrl-C; with `demo` (its pace and the operator's password), the demo
/// runs against this process and stops as soon as shutdown begins.
async fn run(
    app: anyhow::Result<App>,
    banner: &str,
    demo: Option<(f64, String)>,
) -> anyhow::Result<()> {
    let app = app?;
    println!("{banner} http://{}", app.addr());
    let demo = demo.map(|(pace, password)| {
        let url = format!("http://{}", reachable(app.addr()));
        demo::start(&url, pace, &password, &stop_on_termination())
    });
    let outcome = app.wait().await;
    if let Some(demo) = demo {
        demo.stop().await;
    }
    outcome
}

/// Where a client on this machine reaches a server listening on `addr` (e.g. `0.0.0.0:8080`).
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(Ipv6Addr::LOCALHOST.into()),
        _ => {}
    }
    addr
}

/// Cancelled on SIGTERM/Ctrl-C, when the server begins its graceful shutdown.
fn stop_on_termination() -> CancellationToken {
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        tanda_core::lifecycle::termination_signal().await;
        stop.cancel();
    });
    token
}
