//! Helpers shared by the end-to-end tests: each test gets its own database (sqlx::test), topics
//! and consumer groups, so tests run in parallel without seeing each other.
#![allow(dead_code, reason = "each test file uses a different subset")]

pub mod broker;
pub mod browser;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod counts;
pub mod database;
pub mod diagnosis;
pub mod events;
pub mod faketime;
pub mod fault_proxy;
pub mod kafka;
pub mod metrics;
pub mod node;
pub mod outbox;
pub mod ownership;
pub mod ports;
pub mod private_postgres;
pub mod process;
pub mod read_only;
pub mod soak_clients;
pub mod soak_faults;
pub mod soak_imports;
pub mod sse;
pub mod tls_proxy;
pub mod topic_check;
pub mod workload;

use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::time::Instant;

/// The regions the tests' deployments are made of.
pub const EU: &str = "eu-west";
pub const US: &str = "us-east";
pub const AP: &str = "ap-northeast";

/// How long any eventual condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `check` until it answers `Ok`, failing the test after [`DEADLINE`] with `what` and the
/// last reason `check` gave. No timed assertions: the deadline only bounds a hang.
pub async fn wait_until<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    wait_until_within(what, DEADLINE, check).await
}

/// [`wait_until`] with its own bound (a soak waits out outages longer than [`DEADLINE`]).
pub async fn wait_until_within<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    let deadline = started + within;
    let mut attempts = 0_u32;
    loop {
        attempts += 1;
        match check().await {
            Ok(value) => {
                if attempts > 1 {
                    eprintln!("[wait] {what}: after {:.1?}", started.elapsed());
                }
                return value;
            }
            Err(reason) => {
                assert!(
                    Instant::now() < deadline,
                    "timed out after {within:?} waiting for: {what}\nlast answer: {reason}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a request answered: status, headers and the body as JSON (a JSON string when the
/// body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// The seed in the environment variable `var`, or a fresh one; printed with how to replay
/// `what` with it.
pub fn seed_from_env(var: &str, what: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed: {seed} ({var}={seed} replays {what})");
    seed
}

/// Logs to the test's captured output (shown when it fails); `RUST_LOG` overrides the filter.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
