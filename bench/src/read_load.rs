//! `aigo-bench read-load`: GET one URL from a fixed number of keep-alive connections for a fixed
//! time, as wrk does, and report requests/s and latency percentiles. The same client measures
//! a node's `GET /v1/counts` and the SQL baseline (`aigo-bench sql-counts-server`), so the two
//! figures differ only by the server.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::load::percentile;

/// What to load, how hard and for how long.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    pub url: String,
    /// Requests in flight at once, one per connection.
    pub connections: usize,
    /// Requests sent during this first period are not counted (connections open, caches warm).
    pub warmup: Duration,
    /// Measured period: no request is sent after it ends; those in flight are awaited.
    pub duration: Duration,
    /// A request not answered within this counts as failed.
    pub timeout: Duration,
}

/// What a read-load run measured. Latencies cover every counted request, failed or not.
#[derive(Debug, Serialize)]
pub struct ReadReport {
    pub url: String,
    pub connections: usize,
    pub requests: usize,
    pub failures: usize,
    pub elapsed_s: f64,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Mean body size of the successful answers.
    pub bytes_per_answer: usize,
}

impl ReadReport {
    pub fn summary(&self) -> String {
        format!(
            "GET {} with {} connections: {} requests in {:.1} s: {:.1} requests/s, \
             p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} failed, {} bytes/answer",
            self.url,
            self.connections,
            self.requests,
            self.elapsed_s,
            self.requests_per_second,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
            self.failures,
            self.bytes_per_answer
        )
    }
}

/// One request's outcome.
struct Sample {
    ok: bool,
    latency: Duration,
    bytes: usize,
}

/// Runs `plan`: `connections` loops, each sending its next GET as soon as the previous one is
/// answered, until the measured period ends.
pub async fn run(plan: &ReadPlan) -> anyhow::Result<ReadReport> {
    let connections = plan.connections.max(1);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(plan.timeout)
        .build()
        .context("building the HTTP client")?;
    let measure_from = Instant::now() + plan.warmup;
    let stop_at = measure_from + plan.duration;
    let mut loops = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (client, url) = (client.clone(), plan.url.clone());
        loops.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let sent = Instant::now();
                if sent >= stop_at {
                    break;
                }
                let (ok, bytes) = match client.get(&url).send().await {
                    Ok(response) if response.status().is_success() => {
                        match response.bytes().await {
                            Ok(body) => (true, body.len()),
                            Err(_) => (false, 0),
                        }
                    }
                    _ => (false, 0),
                };
                if sent >= measure_from {
                    samples.push(Sample {
                        ok,
                        latency: sent.elapsed(),
                        bytes,
                    });
                }
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for handle in loops {
        samples.extend(handle.await.context("a client loop failed")?);
    }
    let elapsed = measure_from.elapsed();
    let failures = samples.iter().filter(|s| !s.ok).count();
    let ok = samples.len() - failures;
    let bytes: usize = samples.iter().map(|s| s.bytes).sum();
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(ReadReport {
        url: plan.url.clone(),
        connections,
        requests: samples.len(),
        failures,
        elapsed_s: elapsed.as_secs_f64(),
        requests_per_second: ok as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        p50_ms: ms(percentile(&latencies, 0.50)),
        p90_ms: ms(percentile(&latencies, 0.90)),
        p99_ms: ms(percentile(&latencies, 0.99)),
        max_ms: ms(latencies.last().copied().unwrap_or_default()),
        bytes_per_answer: bytes.checked_div(ok).unwrap_or(0),
    })
}
