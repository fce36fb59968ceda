//! A cluster of region nodes, each a separate process of the real `region-node` binary, each
//! with its own freshly created PostgreSQL database, all sharing one topic prefix of their own
//! on the test broker. Driven over HTTP; nodes can be stopped (SIGTERM), killed (SIGKILL) and
//! restarted on the same port and database.
//!
//! Each node is a [`NodeProcess`] (see `process.rs` for how the binary is found or built).
//!
//! Clusters take turns with every other test that runs node processes ([`TURN`]); children are killed and
//! databases dropped when the cluster is dropped. When a test fails, the end of every node's log
//! is printed and the logs are kept (`CLUSTER_KEEP_LOGS=1` keeps them in any case).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};

use super::diagnosis::catalogue_diagnosis;
use super::kafka::{brokers, unique_topic};
use super::ports::free_port;
use super::process::{NodeProcess, TURN};
use super::{Answer, wait_until, wait_until_within};

/// How long any eventual condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// The admin token every node of a cluster accepts.
pub const ADMIN_TOKEN: &str = "cluster-admin-token-0123456789";
/// A model unknown to a node for longer gets the cluster's catalogue diagnosis printed.
const UNKNOWN_FOR_LONG: Duration = Duration::from_secs(60);
/// Counter states are republished this often by every node.
pub const HEARTBEAT_MS: u64 = 200;
/// A region not heard from for longer is stale.
pub const STALE_AFTER_MS: u64 = 3000;
/// How often a node looks for retired models it still serves.
pub const WITHDRAWAL_INTERVAL_MS: u64 = 500;
/// Longest a read given a consistency token waits.
pub const READ_WAIT_MS: u64 = 5000;
/// Live streams a node serves at once.
pub const MAX_STREAMS: usize = 8;

/// Node settings that lift the per-token command rate limit: a load test's many commands come
/// from one token.
pub fn unlimited_commands() -> Vec<(String, String)> {
    [
        ("AIGO_HTTP__COMMANDS_PER_SECOND", "1000000"),
        ("AIGO_HTTP__COMMAND_BURST", "1000000"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// What a test may change about the nodes of a cluster it starts.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// TOML appended to every node's configuration file, after its last table: whole tables
    /// only (`[projector.extra]`, `[ownership]`), which replace nothing the harness sets.
    pub extra_toml: String,
    /// Environment variables of every node process.
    pub env: Vec<(String, String)>,
    /// The broker list the nodes use instead of the shared test broker.
    pub brokers: Option<String>,
    /// The PostgreSQL server (admin URL) the nodes' databases are created on, instead of
    /// `DATABASE_URL` (e.g. a private server the test restarts).
    pub database_url: Option<String>,
    /// The nodes' topic prefix instead of a fresh one (a test that prepares topics first).
    pub topic_prefix: Option<String>,
    /// Per region, the server address its processes reach their database through (e.g. a
    /// fault proxy of that region in front of `database_url`'s server); databases are still
    /// created through `database_url`.
    pub region_database_urls: BTreeMap<String, String>,
    /// How long [`Cluster::command`] retries a write before failing (default [`DEADLINE`]): a
    /// soak waits out outages longer than that.
    pub patience: Option<Duration>,
}

/// One region node: its process (if running), port, database and files.
#[derive(Debug)]
pub struct Node {
    pub region: String,
    pub port: u16,
    pub base: String,
    pub database: String,
    pub database_url: String,
    pub process: NodeProcess,
}

#[derive(Debug)]
pub struct Cluster {
    pub topic_prefix: String,
    pub regions: Vec<String>,
    nodes: BTreeMap<String, Node>,
    dir: PathBuf,
    admin_url: String,
    client: reqwest::Client,
    options: ClusterOptions,
    // Released after the children are killed (fields drop after `Drop::drop`).
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{database}{query}", &base[..host_end])
}

impl Node {
    /// The node's configuration file (for running other `region-node` subcommands on it).
    pub fn config_path(&self) -> &Path {
        self.process.config()
    }

    fn config_toml(&self, regions: &[String], prefix: &str, options: &ClusterOptions) -> String {
        let regions = regions
            .iter()
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            r#"region = "{region}"
regions = [{regions}]

[http]
listen = "127.0.0.1:{port}"
read_wait_ms = {READ_WAIT_MS}
max_streams = {MAX_STREAMS}
stream_tick_ms = 500

[database]
url = "{url}"
max_connections = 5
acquire_timeout_ms = 3000

[kafka]
brokers = "{brokers}"
topic_prefix = "{prefix}"
partitions = 3
message_timeout_ms = 10000

[projector]
commit_every = 1000
commit_interval_ms = 50
heartbeat_ms = {HEARTBEAT_MS}
stale_after_ms = {STALE_AFTER_MS}
withdrawal_interval_ms = {WITHDRAWAL_INTERVAL_MS}

[[tokens]]
name = "cluster-admin"
secret = "{ADMIN_TOKEN}"
scopes = ["admin"]

{extra}
"#,
            region = self.region,
            port = self.port,
            url = self.database_url,
            brokers = options.brokers.clone().unwrap_or_else(brokers),
            extra = options.extra_toml,
        )
    }
}

impl Cluster {
    /// Starts one node per region, all knowing each other, and waits until each is ready.
    pub async fn start(regions: &[&str]) -> Self {
        Self::start_with(regions, ClusterOptions::default()).await
    }

    /// [`Cluster::start`] with `options` applied to every node.
    pub async fn start_with(regions: &[&str], options: ClusterOptions) -> Self {
        let cluster = Self::start_unready(regions, options).await;
        for region in &cluster.regions {
            cluster.wait_ready(region).await;
        }
        cluster
    }

    /// Starts the nodes as [`Cluster::start_with`] does, without waiting for them to be ready
    /// (they may never be, or exit).
    pub async fn start_unready(regions: &[&str], options: ClusterOptions) -> Self {
        let turn = TURN.lock().await;
        let binary = super::process::binary();
        let admin_url = options.database_url.clone().unwrap_or_else(|| {
            std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
        });
        let id = uuid::Uuid::new_v4().simple().to_string();
        let topic_prefix = options
            .topic_prefix
            .clone()
            .unwrap_or_else(|| unique_topic("conv"));
        let dir = std::env::temp_dir().join(format!("aigo-cluster-{id}"));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        eprintln!(
            "[cluster] {} nodes of {}, topic prefix {topic_prefix}, files in {}",
            regions.len(),
            binary.display(),
            dir.display()
        );
        let regions: Vec<String> = regions.iter().map(|r| (*r).to_owned()).collect();
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connecting to DATABASE_URL");
        let mut nodes = BTreeMap::new();
        for region in &regions {
            let database = format!("aigo_c_{id}_{}", region.replace('-', "_"));
            sqlx::query(&format!("CREATE DATABASE \"{database}\""))
                .execute(&mut admin)
                .await
                .expect("CREATE DATABASE");
            let port = free_port();
            let node = Node {
                region: region.clone(),
                port,
                base: format!("http://127.0.0.1:{port}"),
                database_url: with_database(
                    options
                        .region_database_urls
                        .get(region)
                        .unwrap_or(&admin_url),
                    &database,
                ),
                database,
                process: NodeProcess::new(
                    region,
                    dir.join(format!("{region}.toml")),
                    dir.join(format!("{region}.log")),
                    options.env.clone(),
                ),
            };
            std::fs::write(
                node.process.config(),
                node.config_toml(&regions, &topic_prefix, &options),
            )
            .expect("writing the node's configuration");
            nodes.insert(region.clone(), node);
        }
        let _ = admin.close().await;
        let cluster = Self {
            topic_prefix,
            regions,
            nodes,
            dir,
            admin_url,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
            options,
            _turn: turn,
        };
        for node in cluster.nodes.values() {
            node.process.spawn();
        }
        cluster
    }

    /// Starts one more process of `region`'s node: same database, topics and configuration,
    /// its own port and log (a scaled-out process: it shares the projector's partitions, and
    /// its relay stands by while the first one publishes). Returns its name, which the other
    /// methods take in place of a region (`node`, `send`, `kill`, `stop`, ...).
    pub async fn add_process(&mut self, region: &str) -> String {
        let first = self.node(region);
        let count = self.nodes.values().filter(|n| n.region == region).count();
        let name = format!("{region}#{}", count + 1);
        let port = free_port();
        let node = Node {
            region: region.to_owned(),
            port,
            base: format!("http://127.0.0.1:{port}"),
            database: first.database.clone(),
            database_url: first.database_url.clone(),
            process: NodeProcess::new(
                &name,
                self.dir.join(format!("{name}.toml")),
                self.dir.join(format!("{name}.log")),
                self.options.env.clone(),
            ),
        };
        std::fs::write(
            node.process.config(),
            node.config_toml(&self.regions, &self.topic_prefix, &self.options),
        )
        .expect("writing the process's configuration");
        node.process.spawn();
        self.nodes.insert(name.clone(), node);
        self.wait_ready(&name).await;
        name
    }

    /// The names of every process of `region` (the first is the region's own name).
    pub fn processes(&self, region: &str) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.region == region)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Whether the process is running (false once it exited, by itself or killed).
    pub fn running(&self, name: &str) -> bool {
        let node = self.node(name);
        node.process.pid().is_some() && node.process.exited().is_none()
    }

    /// The node's log so far.
    pub fn log_text(&self, name: &str) -> String {
        self.node(name).process.log_text()
    }

    pub fn node(&self, region: &str) -> &Node {
        self.nodes
            .get(region)
            .unwrap_or_else(|| panic!("no node for region {region}"))
    }

    /// Waits for `/readyz` to answer 200; fails at once if the process exits.
    pub async fn wait_ready(&self, region: &str) {
        let node = self.node(region);
        let url = format!("{}/readyz", node.base);
        let url = url.as_str();
        wait_until(&format!("{region} ready"), || async move {
            if let Some(status) = node.process.exited() {
                panic!(
                    "{region} exited before it was ready ({status}):\n{}",
                    node.process.log_tail()
                );
            }
            match self.client.get(url).send().await {
                Ok(r) if r.status() == StatusCode::OK => Ok(()),
                Ok(r) => Err(format!(
                    "readyz answered {}: {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )),
                Err(e) => Err(format!("readyz: {e}")),
            }
        })
        .await;
    }

    /// Sends SIGTERM and waits for a graceful exit (at most 30 s, then SIGKILL and a failure).
    pub async fn stop(&self, region: &str) -> ExitStatus {
        let node = self.node(region);
        let pid = node
            .process
            .pid()
            .unwrap_or_else(|| panic!("{region} is not running"));
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {pid}: {sent}");
        match node.process.wait_exit(Duration::from_secs(30)).await {
            Some(status) => status,
            None => {
                node.process.kill_now();
                panic!(
                    "{region} did not stop within 30 s of SIGTERM:\n{}",
                    node.process.log_tail()
                );
            }
        }
    }

    /// SIGKILL: the process dies wherever it is.
    pub fn kill(&self, region: &str) {
        let node = self.node(region);
        assert!(node.process.pid().is_some(), "{region} is not running");
        node.process.kill_now();
    }

    /// The binary the process runs from its next start on (a rolling deploy).
    pub fn set_binary(&self, name: &str, binary: PathBuf) {
        self.node(name).process.set_binary(binary);
    }

    /// Starts a stopped or killed node again, same port, database and configuration.
    pub async fn restart(&self, region: &str) {
        self.node(region).process.spawn();
        self.wait_ready(region).await;
    }

    /// Sends a request to `region`'s node as admin; `Err` if no answer came.
    pub async fn send(
        &self,
        region: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, String> {
        let url = format!("{}{path}", self.node(region).base);
        let mut request = self.client.request(method, url).bearer_auth(ADMIN_TOKEN);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        Self::answer(request, &format!("{region} {path}")).await
    }

    /// Sends `request`; its answer, or `Err` naming `what` if none came.
    async fn answer(request: reqwest::RequestBuilder, what: &str) -> Result<Answer, String> {
        let response = request.send().await.map_err(|e| format!("{what}: {e}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(|e| format!("{what}: {e}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// A conditional write: `If-Match: "<version>"` and an idempotency key, as admin; `Err`
    /// if no answer came.
    pub async fn send_if_match(
        &self,
        name: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: &str,
        version: i64,
    ) -> Result<Answer, String> {
        let url = format!("{}{path}", self.node(name).base);
        let mut request = self
            .client
            .request(method, url)
            .bearer_auth(ADMIN_TOKEN)
            .header("idempotency-key", idempotency_key)
            .header("if-match", format!("\"{version}\""));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        Self::answer(request, &format!("{name} {path}")).await
    }

    /// A write that must succeed: retried with the same idempotency key while the node is not
    /// reachable, answers 503, or does not know the model yet (404 `unknown-model`: its
    /// catalogue has not caught up with the model's home region). Any other refusal fails.
    pub async fn command(
        &self,
        region: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let key = uuid::Uuid::new_v4().simple().to_string();
        let what = format!("{region}: {method} {path} accepted");
        let method = &method;
        let body = body.as_ref();
        let key = key.as_str();
        let patience = self.options.patience.unwrap_or(DEADLINE);
        let (unknown_since, diagnosed) = (&Mutex::new(None), &AtomicBool::new(false));
        let label = what.as_str();
        wait_until_within(&what, patience, || async move {
            match self
                .send(region, method.clone(), path, body, Some(key))
                .await
            {
                Ok(answer) if answer.status.is_success() => Ok(answer.body),
                Ok(answer) if answer.status == StatusCode::SERVICE_UNAVAILABLE => {
                    Err(format!("{}: {}", answer.status, answer.body))
                }
                Ok(answer)
                    if answer.status == StatusCode::NOT_FOUND
                        && answer.body["code"] == "unknown-model" =>
                {
                    let since = *unknown_since
                        .lock()
                        .unwrap()
                        .get_or_insert_with(Instant::now);
                    if since.elapsed() > UNKNOWN_FOR_LONG && !diagnosed.swap(true, Ordering::SeqCst)
                    {
                        eprintln!(
                            "[{label}] the model is still unknown after {:?}; {}",
                            since.elapsed(),
                            catalogue_diagnosis(self).await
                        );
                    }
                    Err(format!("{}: {}", answer.status, answer.body))
                }
                Ok(answer) => panic!(
                    "{region}: {method} {path} refused: {} {}",
                    answer.status, answer.body
                ),
                Err(error) => Err(error),
            }
        })
        .await
    }

    /// An unauthenticated GET at `region`'s node, with extra headers.
    pub async fn get(&self, region: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.try_get(region, path, headers)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Cluster::get`], or why there was no answer (a process killed meanwhile).
    pub async fn try_get(
        &self,
        region: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let url = format!("{}{path}", self.node(region).base);
        let mut request = self.client.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{region} GET {path}: {e}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// `GET /v1/counts` at `region`'s node.
    pub async fn counts(&self, region: &str) -> Result<Value, String> {
        let answer = self
            .send(region, Method::GET, "/v1/counts", None, None)
            .await?;
        if answer.status == StatusCode::OK {
            Ok(answer.body)
        } else {
            Err(format!("{region}: counts answered {}", answer.status))
        }
    }

    /// Replaces the extra environment `region`'s process gets from its next start on (a
    /// stopped node restarted under another clock, say).
    pub fn set_env(&mut self, region: &str, env: Vec<(String, String)>) {
        self.nodes
            .get_mut(region)
            .unwrap_or_else(|| panic!("no node for region {region}"))
            .process
            .set_env(env);
    }

    /// Starts a stopped node again without waiting for it to be ready (it may never be).
    pub fn spawn(&self, region: &str) {
        self.node(region).process.spawn();
    }

    /// True once `region`'s log (every run of the node) contains `needle`.
    pub fn log_contains(&self, region: &str, needle: &str) -> bool {
        self.node(region).process.log_text().contains(needle)
    }

    /// Drops `region`'s (stopped) node's database and creates it empty: a region database
    /// lost and recreated, while its topics keep what the old one wrote.
    pub async fn recreate_database(&self, region: &str) {
        let node = self.node(region);
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .expect("connecting to DATABASE_URL");
        for sql in [
            format!("DROP DATABASE \"{}\" WITH (FORCE)", node.database),
            format!("CREATE DATABASE \"{}\"", node.database),
        ] {
            sqlx::query(&sql).execute(&mut admin).await.expect(&sql);
        }
        let _ = admin.close().await;
    }

    /// A connection pool on `region`'s database (close it when done).
    pub async fn pool(&self, region: &str) -> PgPool {
        PgPool::connect(&self.node(region).database_url)
            .await
            .expect("connecting to the node's database")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.values() {
            node.process.kill_now();
        }
        let failed = std::thread::panicking();
        if failed {
            for node in self.nodes.values() {
                eprintln!(
                    "===== last lines of {} ({}) =====\n{}",
                    node.region,
                    node.process.log_path().display(),
                    node.process.log_tail()
                );
            }
        }
        if failed || std::env::var_os("CLUSTER_KEEP_LOGS").is_some() {
            eprintln!("[cluster] logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        // Dropped from a thread of its own: Drop is synchronous and may run inside a runtime.
        let url = self.admin_url.clone();
        let databases: BTreeSet<String> = self.nodes.values().map(|n| n.database.clone()).collect();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&url)
                    .await
                    .map_err(|e| e.to_string())?;
                for database in databases {
                    sqlx::query(&format!(
                        "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                    ))
                    .execute(&mut admin)
                    .await
                    .map_err(|e| e.to_string())?;
                }
                let _ = admin.close().await;
                Ok::<(), String>(())
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("[cluster] databases not dropped: {error}");
        }
    }
}
