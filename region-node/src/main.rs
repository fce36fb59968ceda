//! The `region-node` binary: parses the command line and runs the chosen subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use region_node::telemetry::{self, LogFormat};
use region_node::{Application, Settings, bulk, database};

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
    /// Send every event of this region's store to its topic again, in position order, after
    /// the topic lost records (deleted and created again; a broker that keeps topics in memory
    /// restarted). The region's running relay sends them; nodes notice the topic's new
    /// incarnation and read it again, dropping what they already hold. Waits until all are
    /// sent; prints a summary (JSON).
    Republish {
        /// Return once the events are marked, without waiting for the relay.
        #[arg(long)]
        no_wait: bool,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Send a file of import lines (NDJSON commands, each with its idempotency key) to a node's
    /// `POST /v1/imports`; prints a summary (JSON). Exits 0 when every line was accepted, 2 when
    /// some were refused, 1 when lines could not be delivered (re-send the same file).
    Import {
        /// The NDJSON file (the format of `GET /v1/exports`).
        file: PathBuf,
        #[command(flatten)]
        node: NodeArgs,
        /// Command lines per request.
        #[arg(long, default_value_t = 10_000)]
        chunk_lines: usize,
        /// Re-sends of an undelivered chunk (or of its lines answered 5xx) before giving up.
        #[arg(long, default_value_t = 5)]
        retries: u32,
        /// Write refused lines' results (NDJSON) to this file instead of the first few to stderr.
        #[arg(long)]
        problems: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Save a node's catalogue as import lines (`GET /v1/exports`).
    Export {
        #[command(flatten)]
        node: NodeArgs,
        /// The file to write; standard output without it.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

/// Which node a client subcommand talks to, and as whom.
#[derive(Debug, clap::Args)]
struct NodeArgs {
    /// The node's base URL, such as http://127.0.0.1:8081.
    #[arg(long)]
    target: String,
    /// A bearer token that may write as the node's region.
    #[arg(long, env = "AIGO_TOKEN", hide_env_values = true)]
    token: String,
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
    // The bulk clients talk to a node over HTTP and need no node configuration.
    match cli.command {
        Command::Import {
            file,
            node,
            chunk_lines,
            retries,
            problems,
            quiet,
        } => return import(file, node, chunk_lines, retries, problems, quiet).await,
        Command::Export {
            node,
            output,
            quiet,
        } => {
            let options = bulk::ExportOptions {
                target: node.target,
                token: node.token,
                output,
                progress: !quiet,
            };
            let lines = bulk::export(&options).await?;
            eprintln!("exported {lines} lines");
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
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
        Command::Republish { no_wait, quiet } => {
            let done = region_node::republish::run(&settings, !no_wait, !quiet).await?;
            println!("{}", serde_json::to_string(&done)?);
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
        Command::Import { .. } | Command::Export { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

async fn import(
    file: PathBuf,
    node: NodeArgs,
    chunk_lines: usize,
    retries: u32,
    problems: Option<PathBuf>,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let options = bulk::ImportOptions {
        file,
        target: node.target,
        token: node.token,
        chunk_lines,
        retries,
        progress: !quiet,
        problems,
    };
    let summary = bulk::import(&options).await?;
    eprintln!(
        "imported {} lines in {:.1} s ({:.0} commands/s): {} accepted, {} refused, {} failed",
        summary.lines,
        summary.seconds,
        summary.commands_per_second,
        summary.accepted,
        summary.refused_total(),
        summary.failed
    );
    println!("{}", serde_json::to_string(&summary)?);
    Ok(if summary.failed > 0 {
        ExitCode::FAILURE
    } else if summary.refused_total() > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
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
