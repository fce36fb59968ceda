//! A private Nisshi broker for tests that take the broker down: its own port and sqlite file,
//! so stopping it disturbs no other test, and data survives its restart.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A broker process this test started; killed when dropped.
#[derive(Debug)]
pub struct PrivateBroker {
    addr: SocketAddr,
    dir: PathBuf,
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
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("relay-broker-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut broker = Self {
            addr,
            dir,
            child: None,
        };
        broker.restart().await;
        broker
    }

    /// `bootstrap.servers` for this broker.
    pub fn brokers(&self) -> String {
        self.addr.to_string()
    }

    /// Kills the process (an outage, not a clean stop).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts the process again on the same port and storage, and waits until it listens.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let url = format!("tcp://{}", self.addr);
        // sqlite paths resolve against the working directory: run it in its own directory.
        let child = Command::new(nisshi_bin())
            .current_dir(&self.dir)
            .env("RUST_LOG", "error")
            .args(["broker", "--cluster-id", "relay-outage-test"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite:///nisshi.db"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr = self.addr;
        super::eventually("private broker accepts connections", || async move {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .ok()
                .map(drop)
        })
        .await;
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
