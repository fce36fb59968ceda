//! `aigo-bench isolation`: whether history reads can slow the write path. Commands at a steady
//! rate, first alone, then while many clients loop over the expensive reads (`?at=`, series, a
//! model's history); then how soon the projector's lag is back to zero once the readers stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::json;

use crate::history::rfc3339;
use crate::load::{percentile, uuid_like};

/// What to run.
#[derive(Debug, Clone)]
pub struct IsolationPlan {
    pub target: String,
    pub token: String,
    pub rate: f64,
    pub duration: Duration,
    pub clients: usize,
    /// Readers retry a 503 after this many ms instead of its `Retry-After`.
    pub impatient_ms: Option<u64>,
}

/// Commands at a steady rate: how they were answered and how fast.
#[derive(Debug, Default, Serialize)]
pub struct Steady {
    pub sent: usize,
    pub ok: usize,
    pub unavailable: usize,
    pub other: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Readers {
    pub requests: u64,
    pub ok: u64,
    /// 503 `busy` / `read-timeout`: the read side protecting itself.
    pub refused: u64,
    pub other: u64,
}

#[derive(Debug, Serialize)]
pub struct IsolationReport {
    pub alone: Steady,
    pub with_readers: Steady,
    pub readers: Readers,
    /// From the readers stopping to the first sample with no projector lag (None: not within
    /// 10 s).
    pub lag_zero_after_ms: Option<f64>,
}

pub async fn run(plan: &IsolationPlan) -> anyhow::Result<IsolationReport> {
    let client = reqwest::Client::new();
    let alone = steady(&client, plan, "alone").await?;
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new([
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ]);
    let model = some_model(&client, &plan.target).await?;
    let mut readers = Vec::with_capacity(plan.clients);
    for n in 0..plan.clients {
        let (client, stop, counters) = (client.clone(), stop.clone(), counters.clone());
        let (target, model, impatient) = (plan.target.clone(), model.clone(), plan.impatient_ms);
        readers.push(tokio::spawn(async move {
            read_loop(&client, &target, &model, n, &stop, &counters, impatient).await;
        }));
    }
    let with_readers = steady(&client, plan, "with-readers").await?;
    stop.store(true, Ordering::Relaxed);
    let stopped = Instant::now();
    for reader in readers {
        let _ = reader.await;
    }
    let lag_zero_after_ms = lag_zero(&client, &plan.target, stopped).await;
    let [requests, ok, refused, other] = &*counters;
    Ok(IsolationReport {
        alone,
        with_readers,
        readers: Readers {
            requests: requests.load(Ordering::Relaxed),
            ok: ok.load(Ordering::Relaxed),
            refused: refused.load(Ordering::Relaxed),
            other: other.load(Ordering::Relaxed),
        },
        lag_zero_after_ms,
    })
}

/// Registrations at `plan.rate` per second for `plan.duration`, each on its own task.
async fn steady(
    client: &reqwest::Client,
    plan: &IsolationPlan,
    tag: &str,
) -> anyhow::Result<Steady> {
    let run = uuid_like();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.rate.max(0.1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut sent = Vec::new();
    let mut n = 0;
    while started.elapsed() < plan.duration {
        ticker.tick().await;
        let id = format!("load/{tag}-{run}-{n}");
        n += 1;
        let request = client
            .post(format!("{}/v1/models", plan.target))
            .bearer_auth(&plan.token)
            .json(&json!({ "id": id, "provider": "load", "name": { "en": id } }));
        sent.push(tokio::spawn(async move {
            let at = Instant::now();
            let status = request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            (status, at.elapsed())
        }));
    }
    let mut report = Steady::default();
    let mut times = Vec::with_capacity(sent.len());
    for task in sent {
        let (status, took) = task.await.context("a command task")?;
        report.sent += 1;
        match status {
            200..=299 => report.ok += 1,
            503 => report.unavailable += 1,
            _ => report.other += 1,
        }
        times.push(took);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    report.p50_ms = ms(percentile(&times, 0.50));
    report.p99_ms = ms(percentile(&times, 0.99));
    report.max_ms = ms(times.last().copied().unwrap_or_default());
    Ok(report)
}

/// Any model of the node's catalogue, for the history reads.
async fn some_model(client: &reqwest::Client, target: &str) -> anyhow::Result<String> {
    let page: serde_json::Value = client
        .get(format!("{target}/v1/models?limit=1"))
        .send()
        .await?
        .json()
        .await?;
    page.get("items")
        .and_then(|items| items.get(0))
        .and_then(|item| item.get("id"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .context("the catalogue is empty")
}

/// One reader: `?at=` at a moment of the last hour, the last day's series at 1 h, and the
/// model's history, in turn, until `stop`.
async fn read_loop(
    client: &reqwest::Client,
    target: &str,
    model: &str,
    n: usize,
    stop: &AtomicBool,
    counters: &[AtomicU64; 4],
    impatient_ms: Option<u64>,
) {
    let mut turn = n;
    while !stop.load(Ordering::Relaxed) {
        let now = unix_now();
        let ago = i64::try_from(turn % 3600).unwrap_or(0);
        let url = match turn % 3 {
            0 => format!("{target}/v1/counts?at={}", rfc3339(now - ago)),
            1 => format!(
                "{target}/v1/counts/series?from={}&to={}&step=1h",
                rfc3339(now - 86_400),
                rfc3339(now)
            ),
            _ => format!("{target}/v1/models/{model}/history?limit=100"),
        };
        turn += 1;
        let answer = client.get(url).send().await;
        let status = answer.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
        let retry_after = answer.ok().and_then(|r| {
            r.headers()
                .get("retry-after")?
                .to_str()
                .ok()?
                .parse::<u64>()
                .ok()
        });
        let [requests, ok, refused, other] = counters;
        requests.fetch_add(1, Ordering::Relaxed);
        match status {
            200..=299 => ok.fetch_add(1, Ordering::Relaxed),
            503 => refused.fetch_add(1, Ordering::Relaxed),
            _ => other.fetch_add(1, Ordering::Relaxed),
        };
        if status == 503 {
            // As clients are asked to: wait what `Retry-After` says (or `impatient_ms`).
            let wait = match impatient_ms {
                Some(ms) => Duration::from_millis(ms),
                None => Duration::from_secs(retry_after.unwrap_or(1)),
            };
            tokio::time::sleep(wait).await;
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0)
}

/// Samples the node's projector lag every 20 ms from `since` on; answers when it is first 0.
async fn lag_zero(client: &reqwest::Client, target: &str, since: Instant) -> Option<f64> {
    while since.elapsed() < Duration::from_secs(10) {
        let text = client
            .get(format!("{target}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let lag: f64 = text
            .lines()
            .filter(|line| line.starts_with("aigo_projector_consumer_lag"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if lag == 0.0 {
            return Some(since.elapsed().as_secs_f64() * 1e3);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
