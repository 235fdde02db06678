//! `tanda`: parses the configuration and runs Tanda all-in-one.

use std::process::ExitCode;

use clap::Parser;
use tanda::config::LogFormat;
use tanda::{App, Cli};
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
    let app = match App::start(cli.run).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("tanda: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("Tanda is listening on http://{}", app.addr());
    match app.wait().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tanda: {e:#}");
            ExitCode::FAILURE
        }
    }
}
