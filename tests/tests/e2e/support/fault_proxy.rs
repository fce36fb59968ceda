//! A fault-injecting TCP proxy on loopback, between clients and one upstream address, with
//! faults switched at run time: pass-through, latency per chunk, drop (close every open
//! connection), reset mid-stream (close a connection after N more client->server bytes),
//! blackhole (accept, forward nothing until healed) and cut (refuse new connections).
//!
//! Written here rather than taken from crates.io: the Toxiproxy clients there
//! (`toxiproxy_rust`, `noxious-client`) drive a separate Toxiproxy server this machine does not
//! have, and `noxious` (the Rust port's core) is a 2021 edition-2018 crate on tokio-util 0.6
//! whose API serves its own HTTP server, with no "reset after N bytes" toxic.
//!
//! Bounded: at most [`MAX_CONNECTIONS`] open connections, 16 KiB buffered per direction. Every
//! task it started ends when the proxy is dropped (both sides of every connection are closed).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

/// Connections open at once; more are refused (closed at once) and counted.
pub const MAX_CONNECTIONS: usize = 512;
const CHUNK: usize = 16 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the proxy currently does to traffic. `heal` restores the default (pass-through).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Mode {
    latency: Duration,
    blackhole: bool,
    cut: bool,
    /// Bumped by every `reset_after`: connections open at that moment arm their budget.
    reset_generation: u64,
    reset_bytes: Option<u64>,
}

/// What the proxy did, by kind of fault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Connections accepted and forwarded upstream.
    pub connections: u64,
    /// Connections closed by [`FaultProxy::drop_connections`].
    pub dropped: u64,
    /// Connections closed mid-stream by [`FaultProxy::reset_after`].
    pub reset: u64,
    /// Connections refused while cut (or over [`MAX_CONNECTIONS`], or upstream unreachable).
    pub refused: u64,
    /// Chunks forwarded late because of [`FaultProxy::latency`].
    pub delayed_chunks: u64,
    /// Chunks held back by a [`FaultProxy::blackhole`] until it was healed.
    pub held_chunks: u64,
    /// Chunks passed on, in either direction.
    pub forwarded_chunks: u64,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    connections: Mutex<HashMap<u64, AbortHandle>>,
    stats: Mutex<FaultStats>,
}

impl Shared {
    fn count(&self, bump: impl FnOnce(&mut FaultStats)) {
        bump(&mut self.stats.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, HashMap<u64, AbortHandle>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The proxy: listens on its own loopback port until dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port, forwarding to `upstream` (which need not be up yet:
    /// a connection it refuses is closed on the client's side too).
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await
    }

    /// [`FaultProxy::start`] on a chosen address.
    pub async fn start_on(listen: SocketAddr, upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            mode: watch::Sender::new(Mode::default()),
            connections: Mutex::new(HashMap::new()),
            stats: Mutex::new(FaultStats::default()),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What was injected so far.
    pub fn stats(&self) -> FaultStats {
        *self
            .shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.connections().len()
    }

    /// Back to pass-through: no latency, no blackhole, new connections accepted, armed resets
    /// disarmed. Open connections stay open.
    pub fn heal(&self) {
        self.shared.mode.send_modify(|mode| {
            let generation = mode.reset_generation + 1;
            *mode = Mode {
                reset_generation: generation,
                ..Mode::default()
            };
        });
    }

    /// Every chunk, in both directions, is forwarded `delay` late (until healed).
    pub fn latency(&self, delay: Duration) {
        self.shared.mode.send_modify(|mode| mode.latency = delay);
    }

    /// Connections stay open and new ones are accepted, but nothing is forwarded until healed.
    pub fn blackhole(&self) {
        self.shared.mode.send_modify(|mode| mode.blackhole = true);
    }

    /// New connections are closed as soon as they are accepted (until healed).
    pub fn cut(&self) {
        self.shared.mode.send_modify(|mode| mode.cut = true);
    }

    /// Closes every open connection now, both sides. Returns how many.
    pub fn drop_connections(&self) -> usize {
        let open: Vec<AbortHandle> = self.shared.connections().drain().map(|(_, a)| a).collect();
        for connection in &open {
            connection.abort();
        }
        let dropped = open.len();
        self.shared
            .count(|s| s.dropped += u64::try_from(dropped).unwrap_or(u64::MAX));
        dropped
    }

    /// Every connection open now is closed (both sides) once `bytes` more client->server bytes
    /// have been forwarded: the first `bytes` of a request pass, the rest never does, so a
    /// produce request in flight is cut in the middle. Connections opened later are not armed.
    /// Returns how many connections were armed.
    pub fn reset_after(&self, bytes: u64) -> usize {
        self.shared.mode.send_modify(|mode| {
            mode.reset_generation += 1;
            mode.reset_bytes = Some(bytes);
        });
        self.open_connections()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.drop_connections();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0_u64;
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of file descriptors or similar: try again shortly instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let refuse = shared.mode.borrow().cut || shared.connections().len() >= MAX_CONNECTIONS;
        if refuse {
            shared.count(|s| s.refused += 1);
            drop(client);
            continue;
        }
        next_id += 1;
        let id = next_id;
        // Registered under the lock before the task can finish and deregister itself.
        let mut open = shared.connections();
        let task = tokio::spawn(connection(id, client, Arc::clone(&shared)));
        open.insert(id, task.abort_handle());
    }
}

/// Removes a connection from the open set however its task ends (finished or aborted).
struct Registered {
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.connections().remove(&self.id);
    }
}

async fn connection(id: u64, client: TcpStream, shared: Arc<Shared>) {
    let _registered = Registered {
        id,
        shared: Arc::clone(&shared),
    };
    let upstream =
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(shared.upstream)).await {
            Ok(Ok(stream)) => stream,
            _ => {
                shared.count(|s| s.refused += 1);
                return;
            }
        };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    shared.count(|s| s.connections += 1);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    // Whichever direction ends first (EOF, error, reset) ends the connection: both sockets are
    // dropped, so both peers see it closed. Kafka clients never half-close.
    tokio::select! {
        _ = pump(client_read, upstream_write, &shared, true) => {}
        _ = pump(upstream_read, client_write, &shared, false) => {}
    }
}

/// Why a direction stopped forwarding.
enum Stop {
    Closed,
    Reset,
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    shared: &Shared,
    client_to_server: bool,
) -> Stop {
    let mut mode = shared.mode.subscribe();
    // Resets armed before this connection existed do not apply to it.
    let mut seen_generation = mode.borrow_and_update().reset_generation;
    let mut budget: Option<u64> = None;
    let mut buf = vec![0_u8; CHUNK];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return Stop::Closed,
            Ok(n) => n,
        };
        let current = mode.borrow_and_update().clone();
        if client_to_server && current.reset_generation != seen_generation {
            seen_generation = current.reset_generation;
            budget = current.reset_bytes;
        }
        if current.blackhole {
            shared.count(|s| s.held_chunks += 1);
            while mode.borrow_and_update().blackhole {
                if mode.changed().await.is_err() {
                    return Stop::Closed;
                }
            }
        }
        let latency = mode.borrow().latency;
        if !latency.is_zero() {
            shared.count(|s| s.delayed_chunks += 1);
            tokio::time::sleep(latency).await;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        if let Some(left) = budget {
            let len = u64::try_from(n).unwrap_or(u64::MAX);
            if len >= left {
                let head = usize::try_from(left).map_or(chunk, |l| chunk.get(..l).unwrap_or(chunk));
                let _ = to.write_all(head).await;
                shared.count(|s| s.reset += 1);
                return Stop::Reset;
            }
            budget = Some(left - len);
        }
        if to.write_all(chunk).await.is_err() {
            return Stop::Closed;
        }
        shared.count(|s| s.forwarded_chunks += 1);
    }
}
