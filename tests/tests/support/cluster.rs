//! A cluster of region nodes, each a separate process of the real `region-node` binary, each
//! with its own freshly created PostgreSQL database, all sharing one topic prefix of their own
//! on the test broker. Driven over HTTP; nodes can be stopped (SIGTERM), killed (SIGKILL) and
//! restarted on the same port and database.
//!
//! The binary: `tests` is another package than `region-node`, so `CARGO_BIN_EXE_region-node`
//! is not available (artifact dependencies are unstable). Instead, the first cluster of a test
//! run runs `cargo build -p region-node --bin region-node` into the target directory and
//! profile this test binary was built in (found from `current_exe()`: `<target>/<profile>/deps/
//! <test>`, which honours `CARGO_TARGET_DIR` and `--release`/`--profile`). That build is a
//! no-op when the binary is up to date, and never leaves a stale binary under test.
//! `REGION_NODE_BIN=/path/to/region-node` skips the build and uses that binary.
//!
//! Clusters run one at a time in a test binary (the machine is small); children are killed and
//! databases dropped when the cluster is dropped. When a test fails, the end of every node's log
//! is printed and the logs are kept (`CLUSTER_KEEP_LOGS=1` keeps them in any case).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::time::Instant;

use super::kafka::{brokers, unique_topic};

/// How long any eventual condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// The admin token every node of a cluster accepts.
pub const ADMIN_TOKEN: &str = "cluster-admin-token-0123456789";
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

/// Polls `check` until it answers `Ok`, failing the test after [`DEADLINE`] with `what` and the
/// last reason `check` gave. No timed assertions: the deadline only bounds a hang.
pub async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    let deadline = started + DEADLINE;
    let mut attempts = 0_u32;
    loop {
        attempts += 1;
        match check().await {
            Ok(value) => {
                if attempts > 1 {
                    eprintln!("[cluster] {what}: after {:.1?}", started.elapsed());
                }
                return value;
            }
            Err(reason) => {
                assert!(
                    Instant::now() < deadline,
                    "timed out after {DEADLINE:?} waiting for: {what}\nlast answer: {reason}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a request answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

/// One region node: its process (if running), port, database and files.
#[derive(Debug)]
pub struct Node {
    pub region: String,
    pub port: u16,
    pub base: String,
    pub database: String,
    pub database_url: String,
    config: PathBuf,
    log: PathBuf,
    child: Mutex<Option<Child>>,
}

#[derive(Debug)]
pub struct Cluster {
    pub topic_prefix: String,
    pub regions: Vec<String>,
    nodes: BTreeMap<String, Node>,
    dir: PathBuf,
    admin_url: String,
    client: reqwest::Client,
    // Released after the children are killed (fields drop after `Drop::drop`).
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// One cluster at a time per test binary.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The `region-node` binary, built (or found up to date) once per test binary.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Ok(path) = std::env::var("REGION_NODE_BIN") {
            return PathBuf::from(path);
        }
        let exe = std::env::current_exe().expect("test executable path");
        // <target>/<profile dir>/deps/<test binary>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary in <target>/<profile>/deps")
            .to_path_buf();
        let target_dir = profile_dir.parent().expect("target directory");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev".to_owned(),
            Some(other) => other.to_owned(),
            None => "dev".to_owned(),
        };
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .current_dir(workspace)
            .args([
                "build",
                "--quiet",
                "-p",
                "region-node",
                "--bin",
                "region-node",
            ])
            .args(["--profile", &profile])
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .expect("running cargo build -p region-node");
        assert!(status.success(), "cargo build -p region-node: {status}");
        let binary = profile_dir.join("region-node");
        assert!(binary.exists(), "{} was not built", binary.display());
        binary
    })
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The last `bytes` of a file, lossily decoded.
fn tail(path: &Path, bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

impl Node {
    /// The node's configuration file (for running other `region-node` subcommands on it).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    fn config_toml(&self, regions: &[String], prefix: &str) -> String {
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
"#,
            region = self.region,
            port = self.port,
            url = self.database_url,
            brokers = brokers(),
        )
    }

    /// Starts the process; panics if one is running.
    fn spawn(&self) {
        let mut child = self.child.lock().expect("child lock");
        assert!(child.is_none(), "{} is already running", self.region);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("node log file");
        let mut command = Command::new(binary());
        command
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        // The file is the configuration: nothing from the test's environment overrides it.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AIGO_") {
                command.env_remove(name);
            }
        }
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        *child = Some(command.spawn().expect("spawning region-node"));
    }

    /// `None` while running (or not started), the exit status once it ended.
    fn exited(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().expect("child lock");
        child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    fn pid(&self) -> Option<u32> {
        self.child
            .lock()
            .expect("child lock")
            .as_ref()
            .map(Child::id)
    }

    fn log_tail(&self) -> String {
        tail(&self.log, 6000)
    }

    /// Waits for the process to end (after a signal), reaping it.
    async fn wait_exit(&self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            {
                let mut child = self.child.lock().expect("child lock");
                let running = child.as_mut()?;
                if let Ok(Some(status)) = running.try_wait() {
                    *child = None;
                    return Some(status);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill_now(&self) {
        if let Some(mut child) = self.child.lock().expect("child lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Cluster {
    /// Starts one node per region, all knowing each other, and waits until each is ready.
    pub async fn start(regions: &[&str]) -> Self {
        let turn = TURN.lock().await;
        let binary = binary();
        let admin_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let id = uuid::Uuid::new_v4().simple().to_string();
        let topic_prefix = unique_topic("conv");
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
                database_url: with_database(&admin_url, &database),
                database,
                config: dir.join(format!("{region}.toml")),
                log: dir.join(format!("{region}.log")),
                child: Mutex::new(None),
            };
            std::fs::write(&node.config, node.config_toml(&regions, &topic_prefix))
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
            _turn: turn,
        };
        for node in cluster.nodes.values() {
            node.spawn();
        }
        for region in &cluster.regions {
            cluster.wait_ready(region).await;
        }
        cluster
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
            if let Some(status) = node.exited() {
                panic!(
                    "{region} exited before it was ready ({status}):\n{}",
                    node.log_tail()
                );
            }
            match self.client.get(url).send().await {
                Ok(r) if r.status() == StatusCode::OK => Ok(()),
                Ok(r) => Err(format!("readyz answered {}", r.status())),
                Err(e) => Err(format!("readyz: {e}")),
            }
        })
        .await;
    }

    /// Sends SIGTERM and waits for a graceful exit (at most 30 s, then SIGKILL and a failure).
    pub async fn stop(&self, region: &str) -> ExitStatus {
        let node = self.node(region);
        let pid = node
            .pid()
            .unwrap_or_else(|| panic!("{region} is not running"));
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {pid}: {sent}");
        match node.wait_exit(Duration::from_secs(30)).await {
            Some(status) => status,
            None => {
                node.kill_now();
                panic!(
                    "{region} did not stop within 30 s of SIGTERM:\n{}",
                    node.log_tail()
                );
            }
        }
    }

    /// SIGKILL: the process dies wherever it is.
    pub fn kill(&self, region: &str) {
        let node = self.node(region);
        assert!(node.pid().is_some(), "{region} is not running");
        node.kill_now();
    }

    /// Starts a stopped or killed node again, same port, database and configuration.
    pub async fn restart(&self, region: &str) {
        self.node(region).spawn();
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
        let response = request
            .send()
            .await
            .map_err(|e| format!("{region} {path}: {e}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("{region} {path}: {e}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
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
        wait_until(&what, || async move {
            match self
                .send(region, method.clone(), path, body, Some(key))
                .await
            {
                Ok(answer) if answer.status.is_success() => Ok(answer.body),
                Ok(answer)
                    if answer.status == StatusCode::SERVICE_UNAVAILABLE
                        || (answer.status == StatusCode::NOT_FOUND
                            && answer.body["code"] == "unknown-model") =>
                {
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
        let url = format!("{}{path}", self.node(region).base);
        let mut request = self.client.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{region} GET {path}: {e}"));
        let status = response.status();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        let mut body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if let (Some(etag), Value::Object(fields)) = (etag, &mut body) {
            fields.insert("__etag".into(), Value::String(etag));
        }
        Answer { status, body }
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
            node.kill_now();
        }
        let failed = std::thread::panicking();
        if failed {
            for node in self.nodes.values() {
                eprintln!(
                    "===== last lines of {} ({}) =====\n{}",
                    node.region,
                    node.log.display(),
                    node.log_tail()
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
        let databases: Vec<String> = self.nodes.values().map(|n| n.database.clone()).collect();
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
