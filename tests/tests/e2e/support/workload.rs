//! A mixed command load over HTTP (every command kind, every region, many in flight) and the
//! ledger of what the acknowledged commands imply: the counts every node must reach, the
//! events that must be counted, and a recount of a node's catalogue to compare with.
//!
//! Each worker owns its models, so one model's commands are sequential (the ledger always
//! knows which commands are legal) while different models' commands run concurrently.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};

use super::cluster::Cluster;
use super::counts::{Counts, STATUSES, with_every_status};

const PROVIDERS: [&str; 5] = ["openai", "anthropic", "google", "meta", "mistral"];

/// The region that registers (and so owns) `id`: its registry owner, as the nodes compute it.
pub fn home_region<'r>(id: &str, regions: &'r [String]) -> &'r str {
    let names: Vec<&str> = regions.iter().map(String::as_str).collect();
    let owner = super::ownership::owner_of(&names, id);
    regions.iter().find(|r| **r == owner).map_or_else(
        || panic!("{owner} is not one of {regions:?}"),
        String::as_str,
    )
}

/// What the acknowledged commands made true of one model.
#[derive(Debug, Clone)]
pub struct Model {
    pub provider: String,
    pub home: String,
    pub active: bool,
    pub retired: bool,
    pub status: &'static str,
    pub served: BTreeSet<String>,
}

/// Which command kinds a workload sends.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Chance that a step registers a new model (else it changes one of the worker's models).
    pub register: f64,
    /// Chance that a change retires the model (withdrawals by retirement follow by themselves).
    pub retire: f64,
    /// Availability only in the model's home region (no wait for another catalogue).
    pub own_region_availability: bool,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            register: 0.15,
            retire: 0.03,
            own_region_availability: false,
        }
    }
}

/// The load and its ledger.
#[derive(Debug)]
pub struct Workload<'c> {
    cluster: &'c Cluster,
    /// region -> the processes that take its commands (one is picked at random each time).
    entry: BTreeMap<String, Vec<String>>,
    mix: Mix,
    models: Mutex<BTreeMap<String, Model>>,
    /// `(stream, sequence)` of every event of every acknowledged command.
    acknowledged: Mutex<BTreeSet<(String, u64)>>,
    by_kind: Mutex<BTreeMap<&'static str, u64>>,
    sent: AtomicUsize,
}

impl<'c> Workload<'c> {
    /// Commands for region R go to R's process(es) in `cluster`.
    pub fn new(cluster: &'c Cluster, mix: Mix) -> Self {
        let entry = cluster
            .regions
            .iter()
            .map(|r| (r.clone(), cluster.processes(r)))
            .collect();
        Self {
            cluster,
            entry,
            mix,
            models: Mutex::new(BTreeMap::new()),
            acknowledged: Mutex::new(BTreeSet::new()),
            by_kind: Mutex::new(BTreeMap::new()),
            sent: AtomicUsize::new(0),
        }
    }

    /// Commands acknowledged so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// Acknowledged commands by kind.
    pub fn by_kind(&self) -> BTreeMap<&'static str, u64> {
        self.by_kind.lock().unwrap().clone()
    }

    /// `(stream, sequence)` of every acknowledged event.
    pub fn acknowledged(&self) -> BTreeSet<(String, u64)> {
        self.acknowledged.lock().unwrap().clone()
    }

    pub fn models(&self) -> usize {
        self.models.lock().unwrap().len()
    }

    /// Runs `workers` concurrent workers until `total` commands were acknowledged or `stop` is
    /// set. Worker `w` draws its steps from `seed + w`.
    pub async fn run(&self, workers: usize, total: usize, seed: u64, stop: &AtomicBool) {
        let quota = AtomicUsize::new(total);
        futures::future::join_all((0..workers).map(|w| {
            let quota = &quota;
            async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(w as u64));
                let mut mine: Vec<String> = Vec::new();
                let mut next = 0_usize;
                while !stop.load(Ordering::SeqCst)
                    && quota
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| q.checked_sub(1))
                        .is_ok()
                {
                    self.step(w, &mut rng, &mut mine, &mut next).await;
                }
            }
        }))
        .await;
    }

    /// One command of worker `w`: a registration, or a legal change of one of its models.
    async fn step(&self, w: usize, rng: &mut StdRng, mine: &mut Vec<String>, next: &mut usize) {
        let live: Vec<String> = {
            let models = self.models.lock().unwrap();
            mine.iter()
                .filter(|id| !models[id.as_str()].retired)
                .cloned()
                .collect()
        };
        if live.len() < 2 || rng.random_bool(self.mix.register) {
            let provider = *PROVIDERS.choose(rng).unwrap();
            let id = format!("{provider}/w{w}-m{next}");
            *next += 1;
            self.register(rng, &id, provider).await;
            mine.push(id);
            return;
        }
        let id = live.choose(rng).unwrap().clone();
        let model = self.models.lock().unwrap()[&id].clone();
        let regions = self.cluster.regions.clone();
        match rng.random_range(0..100) {
            0..30 => {
                let action = if model.active {
                    "deactivate"
                } else {
                    "activate"
                };
                self.lifecycle(rng, &id, action).await;
            }
            30..45 => {
                let status = *STATUSES
                    .iter()
                    .filter(|s| **s != model.status)
                    .collect::<Vec<_>>()
                    .choose(rng)
                    .unwrap();
                self.set_status(rng, &id, status).await;
            }
            45..55 => self.update_metadata(rng, &id).await,
            _ if !model.active && rng.random_bool(self.mix.retire) => {
                self.lifecycle(rng, &id, "retire").await;
            }
            _ => {
                // A region that does not own the model can serve it only once its catalogue
                // has heard of it, which network faults can hold back for minutes: with
                // `own_region_availability`, availability is written by the model's home region.
                let region = if self.mix.own_region_availability {
                    model.home.clone()
                } else {
                    regions.choose(rng).unwrap().clone()
                };
                if model.served.contains(&region) {
                    self.availability(rng, &region, &id, false).await;
                } else {
                    self.availability(rng, &region, &id, true).await;
                }
            }
        }
    }

    /// Sends a command to one of `region`'s processes (retried with its idempotency key until
    /// accepted; any refusal fails the test) and records its events.
    async fn send(
        &self,
        rng: &mut StdRng,
        kind: &'static str,
        region: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) {
        let process = self.entry[region].choose(rng).unwrap().clone();
        let answer = self.cluster.command(&process, method, path, body).await;
        let events = answer["events"].as_array().cloned().unwrap_or_default();
        assert!(!events.is_empty(), "{kind} {path}: no events in {answer}");
        let mut acknowledged = self.acknowledged.lock().unwrap();
        for event in events {
            let stream = event["stream"].as_str().unwrap().to_owned();
            let sequence = event["sequence"].as_u64().unwrap();
            acknowledged.insert((stream, sequence));
        }
        drop(acknowledged);
        *self.by_kind.lock().unwrap().entry(kind).or_default() += 1;
        self.sent.fetch_add(1, Ordering::SeqCst);
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Model)) {
        change(self.models.lock().unwrap().get_mut(id).unwrap());
    }

    fn home(&self, id: &str) -> String {
        self.models.lock().unwrap()[id].home.clone()
    }

    async fn register(&self, rng: &mut StdRng, id: &str, provider: &str) {
        let home = home_region(id, &self.cluster.regions).to_owned();
        let body = json!({
            "id": id,
            "provider": provider,
            "name": { "en": id, "ko": format!("모델 {id}") },
        });
        self.send(
            rng,
            "register",
            &home,
            Method::POST,
            "/v1/models",
            Some(body),
        )
        .await;
        self.models.lock().unwrap().insert(
            id.to_owned(),
            Model {
                provider: provider.to_owned(),
                home,
                active: false,
                retired: false,
                status: "operational",
                served: BTreeSet::new(),
            },
        );
    }

    async fn lifecycle(&self, rng: &mut StdRng, id: &str, action: &'static str) {
        let home = self.home(id);
        let path = format!("/v1/models/{id}/{action}");
        self.send(rng, action, &home, Method::POST, &path, None)
            .await;
        self.update(id, |m| match action {
            "activate" => m.active = true,
            "deactivate" => m.active = false,
            _ => {
                m.retired = true;
                // Every serving region withdraws it by itself.
                m.served.clear();
            }
        });
    }

    async fn set_status(&self, rng: &mut StdRng, id: &str, status: &'static str) {
        let home = self.home(id);
        let path = format!("/v1/models/{id}/status");
        let body = json!({ "status": status });
        self.send(rng, "status", &home, Method::PUT, &path, Some(body))
            .await;
        self.update(id, |m| m.status = status);
    }

    async fn update_metadata(&self, rng: &mut StdRng, id: &str) {
        let home = self.home(id);
        let path = format!("/v1/models/{id}");
        let body = json!({ "name": { "en": format!("{id} v{}", rng.random::<u32>()) } });
        self.send(rng, "metadata", &home, Method::PATCH, &path, Some(body))
            .await;
    }

    /// `region` serves (or withdraws) `id`; retried while its catalogue does not know the model.
    async fn availability(&self, rng: &mut StdRng, region: &str, id: &str, serve: bool) {
        let path = format!("/v1/regions/{region}/models/{id}");
        let (kind, method) = if serve {
            ("serve", Method::PUT)
        } else {
            ("withdraw", Method::DELETE)
        };
        self.send(rng, kind, region, method, &path, None).await;
        self.update(id, |m| {
            if serve {
                m.served.insert(region.to_owned());
            } else {
                m.served.remove(region);
            }
        });
    }

    /// Records an import batch once every line was accepted: each line's `(kind, stream,
    /// version)` (one event each) and the models it left behind.
    pub fn record_import(
        &self,
        lines: impl IntoIterator<Item = (&'static str, String, u64)>,
        models: Vec<(String, Model)>,
    ) {
        let mut acknowledged = self.acknowledged.lock().unwrap();
        let mut by_kind = self.by_kind.lock().unwrap();
        for (kind, stream, version) in lines {
            acknowledged.insert((stream, version));
            *by_kind.entry(kind).or_default() += 1;
            self.sent.fetch_add(1, Ordering::SeqCst);
        }
        drop((acknowledged, by_kind));
        self.models.lock().unwrap().extend(models);
    }

    /// The counts every node must reach, from the ledger.
    pub fn expected(&self) -> Counts {
        let models = self.models.lock().unwrap();
        expected_counts(&self.cluster.regions, models.values())
    }
}

/// The counts `models` make, by the fold's rules, with every region of `regions` listed.
pub fn expected_counts<'a>(
    regions: &[String],
    models: impl IntoIterator<Item = &'a Model>,
) -> Counts {
    let mut counts = Counts {
        total: 0,
        active: 0,
        inactive: 0,
        retired: 0,
        by_status: with_every_status(BTreeMap::new()),
        by_provider: BTreeMap::new(),
        available: regions.iter().map(|r| (r.clone(), 0)).collect(),
    };
    for model in models {
        for region in &model.served {
            *counts.available.get_mut(region).unwrap() += 1;
        }
        if model.retired {
            counts.retired += 1;
            continue;
        }
        counts.total += 1;
        *counts.by_status.get_mut(model.status).unwrap() += 1;
        let provider = counts
            .by_provider
            .entry(model.provider.clone())
            .or_default();
        provider.0 += 1;
        if model.active {
            counts.active += 1;
            provider.1 += 1;
        } else {
            counts.inactive += 1;
        }
    }
    counts
}

/// The counts a node's catalogue implies (SQL on its database): what `/v1/models` lists.
pub async fn catalogue_recount(cluster: &Cluster, node: &str) -> Result<Counts, String> {
    let pool = cluster.pool(node).await;
    let models: Result<Vec<(String, String, String)>, _> =
        sqlx::query_as("SELECT provider, lifecycle, status FROM catalogue_models")
            .fetch_all(&pool)
            .await;
    let served: Result<Vec<(String, i64)>, _> = sqlx::query_as(
        "SELECT region, count(*) FROM catalogue_availability WHERE served GROUP BY region",
    )
    .fetch_all(&pool)
    .await;
    pool.close().await;
    let models = models.map_err(|e| format!("{node}: catalogue: {e}"))?;
    let served = served.map_err(|e| format!("{node}: availability: {e}"))?;
    let mut counts = Counts {
        total: 0,
        active: 0,
        inactive: 0,
        retired: 0,
        by_status: with_every_status(BTreeMap::new()),
        by_provider: BTreeMap::new(),
        available: cluster.regions.iter().map(|r| (r.clone(), 0)).collect(),
    };
    for (region, n) in served {
        counts.available.insert(region, n);
    }
    for (provider, lifecycle, status) in models {
        if lifecycle == "retired" {
            counts.retired += 1;
            continue;
        }
        counts.total += 1;
        *counts.by_status.entry(status).or_default() += 1;
        let entry = counts.by_provider.entry(provider).or_default();
        entry.0 += 1;
        if lifecycle == "active" {
            counts.active += 1;
            entry.1 += 1;
        } else {
            counts.inactive += 1;
        }
    }
    Ok(counts)
}

/// Ok once every node's `/v1/counts` and catalogue equal `expected`; else what differs.
pub async fn check_converged(
    cluster: &Cluster,
    nodes: &[String],
    expected: &Counts,
) -> Result<(), String> {
    let mut differences = Vec::new();
    for node in nodes {
        let live = Counts::from_body(&cluster.counts(node).await?)?;
        if live != *expected {
            differences.push(format!("{node} /v1/counts: {}", diff(&live, expected)));
        }
        let catalogue = catalogue_recount(cluster, node).await?;
        if catalogue != *expected {
            differences.push(format!("{node} catalogue: {}", diff(&catalogue, expected)));
        }
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(differences.join("\n"))
    }
}

/// The fields of `got` that differ from `want`.
pub fn diff(got: &Counts, want: &Counts) -> String {
    let mut out = Vec::new();
    for (name, g, w) in [
        ("total", got.total, want.total),
        ("active", got.active, want.active),
        ("inactive", got.inactive, want.inactive),
        ("retired", got.retired, want.retired),
    ] {
        if g != w {
            out.push(format!("{name} {g} (want {w})"));
        }
    }
    if got.by_status != want.by_status {
        out.push(format!(
            "by_status {:?} (want {:?})",
            got.by_status, want.by_status
        ));
    }
    if got.by_provider != want.by_provider {
        out.push(format!(
            "by_provider {:?} (want {:?})",
            got.by_provider, want.by_provider
        ));
    }
    if got.available != want.available {
        out.push(format!(
            "available {:?} (want {:?})",
            got.available, want.available
        ));
    }
    out.join("; ")
}
