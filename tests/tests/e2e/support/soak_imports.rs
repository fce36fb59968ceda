//! Bulk imports as part of a load: `POST /v1/imports` batches of new models (registered,
//! activated, given a status, served by their home region, some deactivated or renamed), each
//! batch re-sent whole until every line is accepted, as `region-node import` does after a
//! failure. The idempotency keys make each re-send exact; the ledger records a batch only once
//! all of it was acknowledged.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::cluster::{ADMIN_TOKEN, Cluster};
use super::counts::STATUSES;
use super::workload::{Model, Workload, home_region};

const PROVIDERS: [&str; 3] = ["huggingface", "cohere", "xai"];
/// How long one request may take before it is abandoned and sent again.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One command line of a batch, what it does to its model, and the stream it writes.
struct Line {
    text: String,
    model: String,
    stream: String,
    kind: &'static str,
}

/// A batch and the models it leaves behind once every line is accepted.
struct Batch {
    region: String,
    lines: Vec<Line>,
    models: Vec<(String, Model)>,
}

/// Runs `loaders` concurrent importers until `stop` is set; each sends batches of about
/// `batch_lines` commands to a random process of a random region. Loader `l` draws from
/// `seed + l`; `patience` bounds how long one batch may keep failing.
pub async fn run_imports(
    workload: &Workload<'_>,
    cluster: &Cluster,
    loaders: usize,
    batch_lines: usize,
    seed: u64,
    patience: Duration,
    stop: &AtomicBool,
) {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("http client");
    futures::future::join_all((0..loaders).map(|l| {
        let client = &client;
        async move {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(l as u64));
            let mut number = 0_u64;
            while !stop.load(Ordering::SeqCst) {
                number += 1;
                let batch = draw_batch(cluster, &mut rng, seed, l, number, batch_lines);
                let process = cluster
                    .processes(&batch.region)
                    .choose(&mut rng)
                    .cloned()
                    .expect("a process of the region");
                let accepted = deliver(client, cluster, &process, &batch, patience).await;
                workload.record_import(
                    batch
                        .lines
                        .iter()
                        .zip(accepted)
                        .map(|(line, version)| (line.kind, line.stream.clone(), version)),
                    batch.models,
                );
            }
        }
    }))
    .await;
}

/// New models homed in one region, and commands for them.
fn draw_batch(
    cluster: &Cluster,
    rng: &mut StdRng,
    seed: u64,
    loader: usize,
    number: u64,
    lines: usize,
) -> Batch {
    let region = cluster.regions.choose(rng).unwrap().clone();
    let key = |n: usize| format!("soak-import-{seed}-{loader}-{number}-{n}");
    let mut batch = Batch {
        region: region.clone(),
        lines: Vec::new(),
        models: Vec::new(),
    };
    let mut candidate = 0_usize;
    let mut keys = 0_usize;
    let mut later: Vec<Line> = Vec::new();
    while batch.lines.len() + later.len() < lines {
        candidate += 1;
        let provider = *PROVIDERS.choose(rng).unwrap();
        let id = format!("{provider}/i{loader}-b{number}-m{candidate}");
        if home_region(&id, &cluster.regions) != region {
            continue;
        }
        let model_stream = format!("model:{id}");
        let mut command = |method: &str, path: String, body: Option<Value>| {
            keys += 1;
            let mut text = json!({ "idempotency_key": key(keys), "method": method, "path": path });
            if let Some(body) = body {
                text["body"] = body;
            }
            text.to_string()
        };
        batch.lines.push(Line {
            text: command(
                "POST",
                "/v1/models".to_owned(),
                Some(json!({ "id": id, "provider": provider, "name": { "en": id } })),
            ),
            model: id.clone(),
            stream: model_stream.clone(),
            kind: "imported register",
        });
        let status = *STATUSES
            .iter()
            .filter(|s| **s != "operational")
            .collect::<Vec<_>>()
            .choose(rng)
            .unwrap();
        let active = !rng.random_bool(0.3);
        let mut changes = vec![
            (
                "POST",
                format!("/v1/models/{id}/activate"),
                None,
                model_stream.clone(),
                "imported activate",
            ),
            (
                "PUT",
                format!("/v1/models/{id}/status"),
                Some(json!({ "status": status })),
                model_stream.clone(),
                "imported status",
            ),
            (
                "PUT",
                format!("/v1/regions/{region}/models/{id}"),
                None,
                format!("availability:{region}:{id}"),
                "imported serve",
            ),
        ];
        if rng.random_bool(0.2) {
            changes.push((
                "PATCH",
                format!("/v1/models/{id}"),
                Some(json!({ "name": { "en": format!("{id} renamed") } })),
                model_stream.clone(),
                "imported metadata",
            ));
        }
        if !active {
            changes.push((
                "POST",
                format!("/v1/models/{id}/deactivate"),
                None,
                model_stream.clone(),
                "imported deactivate",
            ));
        }
        for (method, path, body, stream, kind) in changes {
            later.push(Line {
                text: command(method, path, body),
                model: id.clone(),
                stream,
                kind,
            });
        }
        batch.models.push((
            id,
            Model {
                provider: provider.to_owned(),
                home: region.clone(),
                active,
                retired: false,
                status,
                served: BTreeSet::from([region.clone()]),
            },
        ));
    }
    // Registrations first: the import runs each model's lines in order, in waves.
    batch.lines.extend(later);
    batch
}

/// Sends the batch until every line is accepted; each line's stream version, in line order.
async fn deliver(
    client: &reqwest::Client,
    cluster: &Cluster,
    process: &str,
    batch: &Batch,
    patience: Duration,
) -> Vec<u64> {
    let url = format!("{}/v1/imports", cluster.node(process).base);
    let body: String = batch
        .lines
        .iter()
        .map(|l| format!("{}\n", l.text))
        .collect();
    let started = Instant::now();
    let mut last = String::new();
    loop {
        assert!(
            started.elapsed() < patience,
            "{process}: an import of {} lines still not accepted after {patience:?}: {last}",
            batch.lines.len()
        );
        match attempt(client, &url, &body, batch).await {
            Ok(versions) => return versions,
            Err(Retry(reason)) => last = reason,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Why a batch must be sent again (a passing failure).
struct Retry(String);

async fn attempt(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    batch: &Batch,
) -> Result<Vec<u64>, Retry> {
    let response = client
        .post(url)
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| Retry(format!("no answer: {e}")))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| Retry(format!("answer cut: {e}")))?;
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(Retry(format!("{status}: {text}")));
    }
    assert!(status.is_success(), "import refused whole: {status} {text}");
    let outcomes: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("result line {l:?}: {e}")))
        .collect();
    if outcomes.len() < batch.lines.len() {
        return Err(Retry(format!(
            "{} result lines for {} commands",
            outcomes.len(),
            batch.lines.len()
        )));
    }
    // A line refused for a passing reason (5xx, 429) makes its model's later lines fail too
    // (404, 409): both are sent again. Any other refusal is a violation.
    let mut failed: HashSet<&str> = HashSet::new();
    let mut versions = Vec::with_capacity(batch.lines.len());
    for (line, outcome) in batch.lines.iter().zip(&outcomes) {
        let status = outcome["status"].as_u64().unwrap_or(0);
        if (200..300).contains(&status) {
            versions.push(
                outcome["version"]
                    .as_u64()
                    .expect("an accepted line's version"),
            );
            continue;
        }
        let passing = status >= 500 || status == 429;
        assert!(
            passing || failed.contains(line.model.as_str()),
            "import line refused: {} -> {outcome}",
            line.text
        );
        failed.insert(&line.model);
    }
    if failed.is_empty() {
        Ok(versions)
    } else {
        Err(Retry(format!(
            "{} models with refused lines, e.g. {:?}",
            failed.len(),
            failed.iter().next()
        )))
    }
}

/// Lines per import batch of the soak.
pub fn batch_lines() -> usize {
    env_number("SOAK_IMPORT_LINES", 200)
}

/// Concurrent importers of the soak.
pub fn loaders() -> usize {
    env_number("SOAK_IMPORTERS", 1)
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |text| {
        text.parse()
            .unwrap_or_else(|_| panic!("{name}={text}: expected a number"))
    })
}
