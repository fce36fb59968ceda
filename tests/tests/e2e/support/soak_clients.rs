//! The soak's clients besides the command load, each keeping a record of what it saw: live
//! stream watchers (resuming with `Last-Event-ID`), `?at=` readers, and contenders that write
//! the same models concurrently with `If-Match` and repeat idempotency keys.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::cluster::Cluster;
use super::counts::{Counts, STATUSES};
use super::sse::{Opened, SseClient};
use super::workload::home_region;

/// A stream goes quiet for no longer than this (freshness ticks come every 500 ms) unless its
/// node is gone: then the watcher reconnects.
const QUIET: Duration = Duration::from_secs(3);
const RETRY: Duration = Duration::from_millis(250);

/// What one live stream watcher saw.
#[derive(Debug, Default)]
pub struct WatchRecord {
    pub connections: u64,
    pub events: u64,
    pub snapshots: u64,
    pub last_id: Option<u64>,
    /// The counts of the last `snapshot` or `counts` event.
    pub last_counts: Option<Value>,
    /// Ids that did not follow the one before (neither the next id nor a snapshot).
    pub gaps: Vec<String>,
}

/// Watches `GET /v1/stream` of one process: every numbered event must follow the one before,
/// across reconnections with `Last-Event-ID`, unless it is a fresh `snapshot`.
#[derive(Debug)]
pub struct Watcher {
    pub process: String,
    pub record: Mutex<WatchRecord>,
}

impl Watcher {
    pub fn new(process: &str) -> Self {
        Self {
            process: process.to_owned(),
            record: Mutex::new(WatchRecord::default()),
        }
    }

    /// Runs until `stop`, reconnecting whenever the stream ends or goes quiet.
    pub async fn run(&self, cluster: &Cluster, stop: &AtomicBool) {
        let url = format!("{}/v1/stream", cluster.node(&self.process).base);
        while !stop.load(Ordering::SeqCst) {
            let last_id = self.record.lock().unwrap().last_id;
            let opened = tokio::time::timeout(QUIET, SseClient::try_open(&url, last_id)).await;
            let mut client = match opened {
                Ok(Ok(Opened::Stream(client))) => client,
                // Down, restarting, or refusing (503 while it is not ready, 429 while its
                // old connections are not yet closed): try again.
                _ => {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            self.record.lock().unwrap().connections += 1;
            while !stop.load(Ordering::SeqCst) {
                let Some(event) = client.next(QUIET).await else {
                    break;
                };
                // Only these are numbered: a `freshness` tick has no id of its own (the SSE
                // parser repeats the last one).
                if !["snapshot", "counts", "change"].contains(&event.event.as_str()) {
                    continue;
                }
                let Some(id) = event.id else { continue };
                let mut record = self.record.lock().unwrap();
                record.events += 1;
                let snapshot = event.event == "snapshot";
                if snapshot {
                    record.snapshots += 1;
                } else if let Some(last) = record.last_id
                    && id != last + 1
                {
                    record
                        .gaps
                        .push(format!("{} after {last}: {id}", event.event));
                }
                record.last_id = Some(id);
                if snapshot || event.event == "counts" {
                    record.last_counts = Some(event.data);
                }
            }
        }
    }

    /// Ok once the last counts it received equal `expected`.
    pub fn saw(&self, expected: &Counts) -> Result<(), String> {
        let record = self.record.lock().unwrap();
        let Some(body) = &record.last_counts else {
            return Err(format!("{}: no counts received yet", self.process));
        };
        let got = Counts::from_body(body)?;
        if got == *expected {
            Ok(())
        } else {
            Err(format!(
                "{}: last streamed counts differ: {}",
                self.process,
                super::workload::diff(&got, expected)
            ))
        }
    }
}

/// What the `?at=` readers were answered, by status (0: no answer, the node was down).
#[derive(Debug, Default)]
pub struct ReadRecord {
    pub by_status: BTreeMap<u16, u64>,
    /// Answers that are neither 200 nor a documented refusal (503, 429).
    pub violations: Vec<String>,
}

/// Reads `GET /v1/counts?at=` (an instant within the last two minutes) and `GET /v1/counts`
/// from random processes until `stop`.
pub async fn read_history(
    cluster: &Cluster,
    seed: u64,
    stop: &AtomicBool,
    record: &Mutex<ReadRecord>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4ead);
    let processes: Vec<String> = cluster
        .regions
        .iter()
        .flat_map(|r| cluster.processes(r))
        .collect();
    while !stop.load(Ordering::SeqCst) {
        let process = processes.choose(&mut rng).unwrap();
        let path = if rng.random_bool(0.7) {
            let at = Utc::now() - chrono::Duration::milliseconds(rng.random_range(0..120_000));
            format!(
                "/v1/counts?at={}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            )
        } else {
            "/v1/counts".to_owned()
        };
        let answer = cluster.send(process, Method::GET, &path, None, None).await;
        {
            let mut record = record.lock().unwrap();
            match answer {
                Ok(answer) => {
                    *record.by_status.entry(answer.status.as_u16()).or_default() += 1;
                    let allowed = [
                        StatusCode::OK,
                        StatusCode::SERVICE_UNAVAILABLE,
                        StatusCode::TOO_MANY_REQUESTS,
                    ];
                    if !allowed.contains(&answer.status) {
                        record.violations.push(format!(
                            "{process} GET {path}: {} {}",
                            answer.status, answer.body
                        ));
                    }
                }
                Err(_) => *record.by_status.entry(0).or_default() += 1,
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..300))).await;
    }
}

/// Models written by several contenders at once, with `If-Match` and repeated keys.
#[derive(Debug)]
pub struct Contention {
    pub models: Vec<String>,
    /// `(stream, sequence)` of every event of every acknowledged write.
    pub acknowledged: Mutex<BTreeSet<(String, u64)>>,
    /// Answers by status.
    pub by_status: Mutex<BTreeMap<u16, u64>>,
    /// Repeated keys answered with the first answer's events.
    pub repeats_matched: Mutex<u64>,
    pub violations: Mutex<Vec<String>>,
}

/// Their provider: the ledger of the command load does not know them, the checker counts them
/// from the catalogue.
pub const CONTESTED_PROVIDER: &str = "contested";

impl Contention {
    /// Registers `count` models (each at its home region).
    pub async fn register(cluster: &Cluster, count: usize) -> Self {
        let contention = Self {
            models: (0..count)
                .map(|i| format!("{CONTESTED_PROVIDER}/c{i}"))
                .collect(),
            acknowledged: Mutex::new(BTreeSet::new()),
            by_status: Mutex::new(BTreeMap::new()),
            repeats_matched: Mutex::new(0),
            violations: Mutex::new(Vec::new()),
        };
        for id in &contention.models {
            let home = home_region(id, &cluster.regions);
            let body = json!({"id": id, "provider": CONTESTED_PROVIDER, "name": {"en": id}});
            let answer = cluster
                .command(home, Method::POST, "/v1/models", Some(body))
                .await;
            contention.acknowledge(&answer);
        }
        contention
    }

    fn acknowledge(&self, answer: &Value) {
        let mut acknowledged = self.acknowledged.lock().unwrap();
        for (stream, sequence) in events_of(answer) {
            acknowledged.insert((stream, sequence));
        }
    }

    /// One contender: reads a model's version, then changes it with `If-Match`, sometimes
    /// sending the same request twice with one idempotency key. Until `stop`.
    pub async fn contend(&self, cluster: &Cluster, seed: u64, stop: &AtomicBool) {
        let mut rng = StdRng::seed_from_u64(seed);
        while !stop.load(Ordering::SeqCst) {
            let id = self.models.choose(&mut rng).unwrap().clone();
            let region = home_region(&id, &cluster.regions);
            let process = cluster.processes(region).choose(&mut rng).unwrap().clone();
            let Ok(model) = cluster
                .send(
                    &process,
                    Method::GET,
                    &format!("/v1/models/{id}"),
                    None,
                    None,
                )
                .await
            else {
                tokio::time::sleep(RETRY).await;
                continue;
            };
            let Some(version) = model.body["version"].as_i64() else {
                tokio::time::sleep(RETRY).await;
                continue;
            };
            let (method, path, body) = match rng.random_range(0..3) {
                0 => (
                    Method::POST,
                    format!(
                        "/v1/models/{id}/{}",
                        ["activate", "deactivate"].choose(&mut rng).unwrap()
                    ),
                    None,
                ),
                1 => (
                    Method::PUT,
                    format!("/v1/models/{id}/status"),
                    Some(json!({"status": STATUSES.choose(&mut rng).unwrap()})),
                ),
                _ => (
                    Method::PATCH,
                    format!("/v1/models/{id}"),
                    Some(json!({"name": {"en": format!("{id} v{}", rng.random::<u32>())}})),
                ),
            };
            let request = Conditional {
                process,
                method,
                path,
                body,
                key: uuid::Uuid::new_v4().simple().to_string(),
                version,
            };
            let repeat = rng.random_bool(0.3);
            let first = self.write(cluster, &request).await;
            if repeat && let Some(first) = first {
                // The same request again, with the same key: the first answer, whatever
                // happened in between (other contenders moved the version on).
                let again = self.write(cluster, &request).await;
                if let Some(again) = again {
                    if events_of(&first) == events_of(&again) {
                        *self.repeats_matched.lock().unwrap() += 1;
                    } else {
                        self.violations.lock().unwrap().push(format!(
                            "{} {} {} key {}: repeated with another answer: {first} then {again}",
                            request.process, request.method, request.path, request.key
                        ));
                    }
                }
            }
        }
    }

    /// Sends one conditional write; the answer's body if it was applied. Refusals a contended
    /// write may get (409 wrong state, 412 another version, 503 an outage, 429) are counted;
    /// any other answer is a violation.
    async fn write(&self, cluster: &Cluster, request: &Conditional) -> Option<Value> {
        let Conditional {
            process,
            method,
            path,
            body,
            key,
            version,
        } = request;
        let answer = cluster
            .send_if_match(process, method.clone(), path, body.as_ref(), key, *version)
            .await;
        let Ok(answer) = answer else {
            *self.by_status.lock().unwrap().entry(0).or_default() += 1;
            return None;
        };
        *self
            .by_status
            .lock()
            .unwrap()
            .entry(answer.status.as_u16())
            .or_default() += 1;
        if answer.status.is_success() {
            self.acknowledge(&answer.body);
            return Some(answer.body);
        }
        let allowed = [
            StatusCode::CONFLICT,
            StatusCode::PRECONDITION_FAILED,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::TOO_MANY_REQUESTS,
        ];
        if !allowed.contains(&answer.status) {
            self.violations.lock().unwrap().push(format!(
                "{process} {method} {path} (If-Match {version}): {} {}",
                answer.status, answer.body
            ));
        }
        None
    }
}

/// One contender's request: sent once, or twice with the same key.
#[derive(Debug)]
struct Conditional {
    process: String,
    method: Method,
    path: String,
    body: Option<Value>,
    key: String,
    version: i64,
}

/// `(stream, sequence)` of each event of a command's answer.
fn events_of(answer: &Value) -> Vec<(String, u64)> {
    answer["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| Some((e["stream"].as_str()?.to_owned(), e["sequence"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}
