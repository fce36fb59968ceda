//! Helpers shared by the end-to-end tests: each test gets its own database (sqlx::test), topics
//! and consumer groups, so tests run in parallel without seeing each other.
#![allow(dead_code, reason = "each test file uses a different subset")]

pub mod broker;
pub mod browser;
pub mod cli;
pub mod cluster;
pub mod counts;
pub mod events;
pub mod kafka;
pub mod node;
pub mod outbox;
pub mod sse;

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How long any eventual condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `check` until it returns `Some`, failing the test with `what` after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
