//! A private Nisshi broker for tests that take the broker down: its own port and sqlite file,
//! so stopping it disturbs no other test, and data survives its restart. Or, for fault tests,
//! in memory behind a [`FaultProxy`] that it advertises as its own address, so every client
//! (bootstrap and the reconnections to the advertised broker alike) goes through the proxy.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::fault_proxy::FaultProxy;
use super::ports::free_addr;
use super::process::run_checked;

/// How a private broker stores its data and which address it gives clients.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// `memory://nisshi/` (fast; everything is lost when it stops) instead of sqlite.
    pub in_memory: bool,
    /// The address in the broker's metadata, which clients reconnect to (default: its own).
    pub advertised: Option<SocketAddr>,
}

/// The SCRAM user tests authenticate as on a broker that requires authentication.
pub const SCRAM_USER: &str = "aigo-node";
pub const SCRAM_PASSWORD: &str = "correct horse battery staple";

/// A broker process this test started; killed when dropped.
#[derive(Debug)]
pub struct PrivateBroker {
    addr: SocketAddr,
    advertised: SocketAddr,
    storage: String,
    dir: PathBuf,
    authentication: bool,
    child: Option<Child>,
}

fn nisshi_bin() -> PathBuf {
    std::env::var_os("NISSHI_BIN").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME or NISSHI_BIN must be set");
            PathBuf::from(home).join(".cargo/bin/nisshi")
        },
        PathBuf::from,
    )
}

impl PrivateBroker {
    /// Starts a broker on a free loopback port with sqlite storage in a fresh directory.
    pub async fn start() -> Self {
        Self::start_with(free_addr(), BrokerOptions::default()).await
    }

    /// Starts a broker listening on `addr`, stored and advertised as `options` say.
    pub async fn start_with(addr: SocketAddr, options: BrokerOptions) -> Self {
        let dir = std::env::temp_dir().join(format!("relay-broker-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let storage = if options.in_memory {
            "memory://nisshi/"
        } else {
            // As scripts/services.sh starts the dev broker (docs/BROKER.md, "The sqlite engine").
            "sqlite:///nisshi.db?mode=direct"
        };
        let mut broker = Self {
            addr,
            advertised: options.advertised.unwrap_or(addr),
            storage: storage.to_owned(),
            dir,
            authentication: false,
            child: None,
        };
        broker.restart().await;
        broker
    }

    /// An in-memory broker behind a fault proxy: the proxy listens on port P and forwards to
    /// the broker's port B, and the broker advertises P, so every Kafka client given
    /// [`PrivateBroker::brokers`] talks to it through the proxy only.
    pub async fn start_behind_proxy() -> (Self, FaultProxy) {
        Self::behind_proxy(true).await
    }

    /// As [`PrivateBroker::start_behind_proxy`], stored in sqlite: it keeps what it
    /// acknowledged across [`PrivateBroker::kill`] and [`PrivateBroker::restart`].
    pub async fn start_durable_behind_proxy() -> (Self, FaultProxy) {
        Self::behind_proxy(false).await
    }

    async fn behind_proxy(in_memory: bool) -> (Self, FaultProxy) {
        let listener = free_addr();
        let proxy = FaultProxy::start(listener)
            .await
            .expect("starting the fault proxy");
        let options = BrokerOptions {
            in_memory,
            advertised: Some(proxy.addr()),
        };
        let broker = Self::start_with(listener, options).await;
        (broker, proxy)
    }

    /// From now on, SASL/SCRAM-SHA-512 is required: [`SCRAM_USER`] is created (sqlite storage
    /// keeps it), then the broker restarts with `--authentication`.
    pub async fn require_authentication(&mut self) {
        assert!(!self.in_memory(), "the SCRAM user must survive the restart");
        let broker = format!("tcp://{}", self.addr);
        run_checked(
            Command::new(nisshi_bin())
                .current_dir(&self.dir)
                .env("RUST_LOG", "error")
                .args([
                    "user",
                    "create",
                    "--broker",
                    &broker,
                    "--mechanism",
                    "scram512",
                ])
                .args([SCRAM_USER, SCRAM_PASSWORD]),
            "nisshi user create",
        );
        self.kill();
        self.authentication = true;
        self.restart().await;
    }

    fn in_memory(&self) -> bool {
        self.storage.starts_with("memory:")
    }

    /// `bootstrap.servers` for this broker: the advertised address.
    pub fn brokers(&self) -> String {
        self.advertised.to_string()
    }

    /// Where the process itself listens (bypasses a proxy it advertises).
    pub fn listener(&self) -> SocketAddr {
        self.addr
    }

    /// Kills the process (an outage, not a clean stop).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a broker that hangs, then comes back with
    /// everything it had (an in-memory broker cannot be killed without losing its data).
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("the broker is running").id();
        let signal = if frozen { "STOP" } else { "CONT" };
        let sent = Command::new("kill")
            .args(["-s", signal, "--", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -s {signal} {pid}: {sent}");
    }

    /// Whether its data survives [`PrivateBroker::kill`].
    pub fn durable(&self) -> bool {
        !self.in_memory()
    }

    /// Starts the process again on the same port and storage, and waits until it listens.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let url = format!("tcp://{}", self.addr);
        let advertised = format!("tcp://{}", self.advertised);
        // Kept across restarts, and shown when a test fails (see Drop); NISSHI_RUST_LOG=warn
        // or debug says more.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let rust_log = std::env::var("NISSHI_RUST_LOG").unwrap_or_else(|_| "error".to_owned());
        // sqlite paths resolve against the working directory: run it in its own directory.
        let child = Command::new(nisshi_bin())
            .current_dir(&self.dir)
            .env("RUST_LOG", rust_log)
            .env("NO_COLOR", "1")
            .args(["broker", "--cluster-id", "relay-outage-test"])
            .args([
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
            ])
            .args(["--storage-engine", &self.storage])
            .args(self.authentication.then_some("--authentication"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr = self.addr;
        super::wait_until("private broker accepts connections", || async move {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .await;
        if !self.in_memory() {
            self.index_headers();
        }
    }

    /// The index Nisshi's sqlite schema lacks, as `scripts/services.sh` gives the dev broker:
    /// without it every fetched record scans every stored header.
    fn index_headers(&self) {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/nisshi-sqlite-index.py"
        );
        run_checked(
            Command::new("python3")
                .arg(script)
                .arg(self.dir.join("nisshi.db")),
            script,
        );
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("nisshi.log")
    }

    /// The last lines of the broker's log, for a failing test's output.
    fn print_log_tail(&self) {
        const LINES: usize = 40;
        let Ok(log) = std::fs::read_to_string(self.log_path()) else {
            return;
        };
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines
            .get(lines.len().saturating_sub(LINES)..)
            .unwrap_or_default();
        eprintln!("[broker] last {} lines of its log:", tail.len());
        for line in tail {
            eprintln!("[broker] {line}");
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log_tail();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
