//! `tanda`: parses the configuration and runs Tanda all-in-one, one service, or the local cluster.

use std::process::ExitCode;

use clap::Parser;
use tanda::config::{Command, LogFormat};
use tanda::{App, Cli, cluster, serve};
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
    let outcome = match cli.command {
        None => run(App::start(cli.run).await, "Tanda is listening on").await,
        Some(Command::Serve {
            service,
            distributed,
        }) => {
            let banner = format!("Tanda {} is listening on", service.name());
            run(serve::start(service, cli.run, distributed).await, &banner).await
        }
        Some(Command::Cluster { distributed }) => cluster::run(cli.run, distributed).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tanda: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(app: anyhow::Result<App>, banner: &str) -> anyhow::Result<()> {
    let app = app?;
    println!("{banner} http://{}", app.addr());
    app.wait().await
}
