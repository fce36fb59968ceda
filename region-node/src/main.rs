use std::path::PathBuf;

use clap::{Parser, Subcommand};
use region_node::{Application, Settings, database, telemetry};

/// A region node of the AI-GO model tracker.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file; `AIGO_*` environment variables override it.
    #[arg(long, env = "AIGO_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the node's database if needed and apply every migration.
    Migrate,
    /// Serve the HTTP API and run the background tasks until SIGTERM or Ctrl-C.
    Serve,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init_tracing();
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Migrate => {
            database::migrate(&settings.database).await?;
            tracing::info!(region = %settings.region, "migrations applied");
        }
        Command::Serve => {
            let metrics = telemetry::init_metrics();
            let app = Application::build(&settings, metrics).await?;
            tracing::info!(region = %settings.region, addr = %app.local_addr()?, "region node serving");
            app.run_until_stopped(shutdown_signal()).await?;
        }
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
