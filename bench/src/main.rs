//! The `aigo-bench` binary: load, latency and history-read measurements against running nodes,
//! and the replaced platform's SQL counts as a baseline server.

use clap::{Parser, Subcommand};

/// Measures running AI-GO region nodes over HTTP.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Measure whether history reads slow the write path: registrations at RATE per second
    /// for DURATION seconds alone, then again while CLIENTS loop over `?at=`, series and a
    /// model's history; then how soon the projector's lag is 0 once they stop. Prints JSON.
    Isolation {
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        target: String,
        #[arg(long, env = "AIGO_TOKEN", default_value = "dev-admin-token-change-me")]
        token: String,
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        #[arg(long, default_value_t = 30)]
        duration: u64,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Readers retry a refused read after this many ms, ignoring `Retry-After`.
        #[arg(long)]
        impatient_ms: Option<u64>,
    },
    /// Measure history reads on a running node: `?at=` at random instants between FROM and
    /// TO (Unix seconds), and a 721-point series (30 days at 1 h) ending at TO. Prints JSON.
    History {
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        target: String,
        #[arg(long)]
        from: i64,
        #[arg(long)]
        to: i64,
        #[arg(long, default_value_t = 200)]
        at_runs: usize,
        #[arg(long, default_value_t = 30)]
        series_runs: usize,
    },
    /// GET one URL from CONNECTIONS keep-alive connections for DURATION seconds (after WARMUP
    /// seconds not counted): requests/s and latency percentiles, like wrk. Prints a summary
    /// line, then the same figures as JSON.
    ReadLoad {
        /// The URL, e.g. a node's `/v1/counts` or `sql-counts-server`'s.
        #[arg(long, default_value = "http://127.0.0.1:8081/v1/counts")]
        url: String,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        #[arg(long, default_value_t = 20)]
        duration: u64,
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// Seconds before a request counts as failed.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Create (or re-create) the replaced platform's `models` table with MODELS rows, indexed
    /// on `is_active` and `provider`, in DATABASE_URL. Prints JSON (timings, size, query plan).
    SqlCountsFill {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long, default_value_t = 1_000_000)]
        models: u64,
    },
    /// Answer `GET /v1/counts` by counting the `models` table with SQL on every request, the
    /// way the replaced platform did. Runs until SIGTERM or Ctrl-C.
    SqlCountsServer {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long, default_value = "127.0.0.1:8097")]
        listen: std::net::SocketAddr,
        /// Database connections (requests beyond wait for one).
        #[arg(long, default_value_t = 10)]
        pool: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Load {
            target,
            token,
            models,
            concurrency,
        } => {
            let report = bench::load::run(&target, &token, models, concurrency).await?;
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
            let plan = bench::latency::Plan {
                write: &write,
                watch: &watch,
                token: &token,
                rate,
                count,
            };
            let report = bench::latency::run(plan).await?;
            println!("{}", report.summary());
            anyhow::ensure!(report.complete(), "not every command reached the stream");
        }
        Command::Isolation {
            target,
            token,
            rate,
            duration,
            clients,
            impatient_ms,
        } => {
            let plan = bench::isolation::IsolationPlan {
                target,
                token,
                rate,
                duration: std::time::Duration::from_secs(duration),
                clients,
                impatient_ms,
            };
            let report = bench::isolation::run(&plan).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::History {
            target,
            from,
            to,
            at_runs,
            series_runs,
        } => {
            let plan = bench::history::HistoryPlan {
                target: &target,
                from,
                to,
                at_runs,
                series_runs,
            };
            let report = bench::history::run(&plan).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::ReadLoad {
            url,
            connections,
            duration,
            warmup,
            timeout,
        } => {
            let plan = bench::read_load::ReadPlan {
                url,
                connections,
                warmup: std::time::Duration::from_secs(warmup),
                duration: std::time::Duration::from_secs(duration),
                timeout: std::time::Duration::from_secs(timeout),
            };
            let report = bench::read_load::run(&plan).await?;
            println!("{}", report.summary());
            println!("{}", serde_json::to_string(&report)?);
            anyhow::ensure!(report.requests > 0, "no request completed");
        }
        Command::SqlCountsFill {
            database_url,
            models,
        } => {
            let report = bench::sql_counts::fill(&database_url, models).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::SqlCountsServer {
            database_url,
            listen,
            pool,
        } => bench::sql_counts::serve(&database_url, listen, pool).await?,
    }
    Ok(())
}
