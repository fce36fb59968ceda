//! Command-to-screen latency: registrations sent to one node at a steady rate, watched over
//! another node's live stream. Two figures per command: when its `change` event arrived (the
//! catalogue path) and when a `counts` event first included it (fold, state exchange, merge).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::json;

use crate::load::{percentile, uuid_like};

/// What a latency run measured.
#[derive(Debug)]
pub struct LatencyReport {
    pub sent: usize,
    pub change_seen: Vec<Duration>,
    pub counted: Vec<Duration>,
}

/// The parts of stream events this tool reads.
#[derive(Debug, Deserialize)]
struct Change {
    model_id: String,
}

#[derive(Debug, Deserialize)]
struct Totals {
    total: i64,
}

#[derive(Debug, Default)]
struct Ledger {
    /// Model id → when its registration was sent, in order of sending.
    sent: HashMap<String, (usize, Instant)>,
    change_seen: Vec<Duration>,
    /// Send instants in order: counts event with `total = base + k` covers the first k.
    order: Vec<Instant>,
    counted_upto: usize,
    counted: Vec<Duration>,
}

/// Where to write, where to watch, how fast and how many.
#[derive(Debug)]
pub struct Plan<'a> {
    pub write: &'a str,
    pub watch: &'a str,
    pub token: &'a str,
    pub rate: f64,
    pub count: usize,
}

pub async fn run(plan: Plan<'_>) -> anyhow::Result<LatencyReport> {
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/v1/stream", plan.watch))
        .send()
        .await
        .context("opening the watched node's stream")?
        .error_for_status()?;
    let mut events = response.bytes_stream().eventsource();
    // The snapshot gives the total before the run.
    let base = loop {
        let event = events
            .next()
            .await
            .context("the stream ended before its snapshot")??;
        if event.event == "snapshot" {
            let snapshot: Totals = serde_json::from_str(&event.data)?;
            break snapshot.total;
        }
    };
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let watcher = {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            while let Some(Ok(event)) = events.next().await {
                let now = Instant::now();
                let Ok(mut ledger) = ledger.lock() else { break };
                match event.event.as_str() {
                    "change" => {
                        let Ok(change) = serde_json::from_str::<Change>(&event.data) else {
                            continue;
                        };
                        if let Some((_, sent)) = ledger.sent.get(&change.model_id).copied() {
                            ledger.change_seen.push(now - sent);
                        }
                    }
                    "counts" | "snapshot" => {
                        let Ok(totals) = serde_json::from_str::<Totals>(&event.data) else {
                            continue;
                        };
                        let covered = totals.total - base;
                        let covered = usize::try_from(covered)
                            .unwrap_or(0)
                            .min(ledger.order.len());
                        for k in ledger.counted_upto..covered {
                            if let Some(sent) = ledger.order.get(k).copied() {
                                ledger.counted.push(now - sent);
                            }
                        }
                        ledger.counted_upto = ledger.counted_upto.max(covered);
                    }
                    _ => {}
                }
            }
        })
    };

    let bar = ProgressBar::new(plan.count as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} commands sent {per_sec} eta {eta}")
            .context("progress template")?,
    );
    let run_id = uuid_like();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.rate.max(0.1)));
    let mut requests = Vec::with_capacity(plan.count);
    for k in 0..plan.count {
        tick.tick().await;
        let id = format!("latency/{run_id}-{k}");
        if let Ok(mut ledger) = ledger.lock() {
            let now = Instant::now();
            ledger.sent.insert(id.clone(), (k, now));
            ledger.order.push(now);
        }
        let request = client
            .post(format!("{}/v1/models", plan.write))
            .bearer_auth(plan.token)
            .json(&json!({ "id": id, "provider": "latency", "name": { "en": id } }))
            .send();
        requests.push(tokio::spawn(request));
        bar.inc(1);
    }
    bar.finish();
    let mut failed = 0;
    for request in requests {
        if !matches!(request.await, Ok(Ok(ref r)) if r.status().is_success()) {
            failed += 1;
        }
    }
    anyhow::ensure!(failed == 0, "{failed} registrations failed");
    // Everything sent should arrive within seconds; stop waiting after 30 s regardless.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let done = ledger
            .lock()
            .map(|l| l.change_seen.len() >= plan.count && l.counted.len() >= plan.count)
            .unwrap_or(true);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.abort();
    let ledger = ledger
        .lock()
        .map_err(|_| anyhow::anyhow!("ledger poisoned"))?;
    let mut report = LatencyReport {
        sent: plan.count,
        change_seen: ledger.change_seen.clone(),
        counted: ledger.counted.clone(),
    };
    report.change_seen.sort();
    report.counted.sort();
    Ok(report)
}

impl LatencyReport {
    pub fn summary(&self) -> String {
        let line = |what: &str, samples: &[Duration]| {
            format!(
                "{what}: {}/{} seen, p50 {:.1?}, p99 {:.1?}, max {:.1?}",
                samples.len(),
                self.sent,
                percentile(samples, 0.50),
                percentile(samples, 0.99),
                samples.last().copied().unwrap_or_default()
            )
        };
        format!(
            "{}\n{}",
            line("change event", &self.change_seen),
            line("counts event", &self.counted)
        )
    }

    pub fn complete(&self) -> bool {
        self.change_seen.len() == self.sent && self.counted.len() == self.sent
    }
}
