//! The `region-node` binary: parses the command line and runs the chosen subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use region_node::telemetry::{self, LogFormat};
use region_node::{Application, Settings, database};

/// A region node of the AI-GO model tracker.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file; `AIGO_*` environment variables override it.
    #[arg(long, env = "AIGO_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// How log lines are written to stderr (`RUST_LOG` filters them).
    #[arg(
        long,
        env = "AIGO_LOG_FORMAT",
        global = true,
        value_enum,
        default_value_t
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the node's database if needed and apply every migration.
    Migrate,
    /// Serve the HTTP API and run the background tasks until SIGTERM or Ctrl-C.
    Serve,
    /// Rebuild the counters from every region's events topic, from offset zero, in memory,
    /// and print them (JSON on stdout, the shape of `GET /v1/counts?at=`).
    Replay {
        /// Only events that occurred at or before this RFC 3339 instant.
        #[arg(long, value_parser = parse_instant)]
        until: Option<DateTime<Utc>>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Rebuild this region's actors from its topic and compare them, counter by counter, with
    /// the live projection's checkpoints; exits non-zero on any difference.
    Audit {
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Start a new epoch of the counter-state exchange: every node drops the actor states it
    /// merged from other nodes, rebuilds its region's actors from their checkpoints and
    /// republishes them (the way back from a bad state; nothing is lost). Prints the epochs.
    ResetStates,
}

fn parse_instant(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| format!("{raw:?} is not an RFC 3339 instant: {e}"))
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // Outside the runtime: the optional span exporter's HTTP client blocks. Dropped last, so
    // the spans of the whole run are flushed.
    let _tracing = telemetry::init_tracing(cli.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Replay { until, quiet } => {
            let options = region_node::replay::ReplayOptions {
                until,
                regions: None,
                progress: !quiet,
            };
            let run = region_node::replay::run(&settings, options).await?;
            let summary = run.summary(until);
            eprintln!(
                "replayed {} records ({} folded) in {:.2?}: {:.0} events/s",
                summary.records_read,
                summary.events_replayed,
                run.elapsed,
                summary.events_per_second
            );
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Command::Audit { quiet } => {
            let pool = database::connect(&settings.database).await?;
            let report = region_node::audit::run(&settings, &pool, !quiet).await?;
            println!("{report}");
            if !report.differences.is_empty() {
                // The report above says what differs; the exit status says that something does.
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::ResetStates => {
            let reset = region_node::reset_states::run(&settings).await?;
            tracing::info!(
                previous = reset.previous,
                epoch = reset.epoch,
                "exchange epoch bumped"
            );
            println!("{}", serde_json::to_string(&reset)?);
        }
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
    Ok(ExitCode::SUCCESS)
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
