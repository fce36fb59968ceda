use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
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
    /// Measure the write path: register then activate MODELS models on a running node.
    Load {
        /// Base URL of the node.
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        target: String,
        /// A token with write access on that node.
        #[arg(long, env = "AIGO_TOKEN", default_value = "dev-admin-token-change-me")]
        token: String,
        #[arg(long, default_value_t = 2000)]
        models: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Measure command-to-stream latency: register COUNT models on one node at RATE per
    /// second and time their arrival on another node's live stream.
    Latency {
        /// Base URL of the node that takes the commands.
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        write: String,
        /// Base URL of the node whose stream is watched.
        #[arg(long, default_value = "http://127.0.0.1:8082")]
        watch: String,
        #[arg(long, env = "AIGO_TOKEN", default_value = "dev-admin-token-change-me")]
        token: String,
        /// Commands per second.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        #[arg(long, default_value_t = 300)]
        count: usize,
    },
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
}

fn parse_instant(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| format!("{raw:?} is not an RFC 3339 instant: {e}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    telemetry::init_tracing();
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Load {
            target,
            token,
            models,
            concurrency,
        } => {
            let report = region_node::load::run(&target, &token, models, concurrency).await?;
            println!(
                "{} commands in {:.2?}: {:.0} commands/s, p50 {:.2?}, p99 {:.2?}, {} failed",
                report.commands,
                report.elapsed,
                report.per_second(),
                report.p50,
                report.p99,
                report.failures
            );
            anyhow::ensure!(report.failures == 0, "{} commands failed", report.failures);
        }
        Command::Latency {
            write,
            watch,
            token,
            rate,
            count,
        } => {
            let plan = region_node::latency::Plan {
                write: &write,
                watch: &watch,
                token: &token,
                rate,
                count,
            };
            let report = region_node::latency::run(plan).await?;
            println!("{}", report.summary());
            anyhow::ensure!(report.complete(), "not every command reached the stream");
        }
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
