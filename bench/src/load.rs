//! `aigo-bench load`: a command load generator against running nodes.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

/// What a load run measured.
#[derive(Debug)]
pub struct LoadReport {
    pub commands: usize,
    pub failures: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl LoadReport {
    pub fn per_second(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Sends `models` registrations, then as many activations, to `base` with `concurrency`
/// requests in flight: the whole write path (HTTP, auth, decide, append + outbox commit).
pub async fn run(
    base: &str,
    token: &str,
    models: usize,
    concurrency: usize,
) -> anyhow::Result<LoadReport> {
    let client = reqwest::Client::new();
    let run_id = uuid_like();
    let bar = ProgressBar::new((models * 2) as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} commands {per_sec} eta {eta}")
            .context("progress template")?,
    );
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(models * 2);
    let mut failures = 0;
    for phase in ["register", "activate"] {
        let mut results = futures::stream::iter(0..models)
            .map(|i| {
                let client = client.clone();
                let id = format!("load/{run_id}-{i}");
                async move {
                    let request = if phase == "register" {
                        client.post(format!("{base}/v1/models")).json(&json!({
                            "id": id, "provider": "load", "name": { "en": id }
                        }))
                    } else {
                        client.post(format!("{base}/v1/models/{id}/activate"))
                    };
                    let sent = Instant::now();
                    let ok = request
                        .bearer_auth(token)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    (ok, sent.elapsed())
                }
            })
            .buffer_unordered(concurrency.max(1));
        while let Some((ok, latency)) = results.next().await {
            failures += usize::from(!ok);
            latencies.push(latency);
            bar.inc(1);
        }
    }
    bar.finish();
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(LoadReport {
        commands: latencies.len(),
        failures,
        elapsed,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    })
}

pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

/// A short id unique per run, so repeated runs never collide on model ids.
pub fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}")
}
