//! Loopback ports for the processes a test starts (and restarts on the same port): chosen below
//! the kernel's ephemeral range and never twice in one run, so nothing can take one between the
//! choice and the process binding it.
//!
//! Binding port 0 and releasing it (what the harness did before) hands out an ephemeral port,
//! the range every outgoing connection also takes its local port from: with dozens of tests
//! connecting to PostgreSQL and the broker at once, a connection could hold the port by the time
//! the node bound it (`os error 98`, seen in CI's soak).

use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;

/// How many ports below the ephemeral range the harness hands out from.
const SPAN: u16 = 12_000;

/// The next candidate; starts at an offset of this process's id, so two test runs at once
/// start in different places.
static NEXT: Mutex<Option<u16>> = Mutex::new(None);

/// The first port of the kernel's ephemeral range (Linux default 32768).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// The range the harness hands ports out from: `SPAN` ports ending below the ephemeral range,
/// above the privileged ones.
fn range() -> (u16, u16) {
    let end = ephemeral_start();
    (end.saturating_sub(SPAN).max(1024), end)
}

/// A loopback port nothing listens on, below the ephemeral range, not handed out before in this
/// process.
pub fn free_port() -> u16 {
    let (low, end) = range();
    let span = end - low;
    let mut next = NEXT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut candidate = next
        .unwrap_or_else(|| low + u16::try_from(std::process::id() % u32::from(span)).unwrap_or(0));
    for _ in 0..span {
        let port = candidate;
        candidate = if candidate + 1 >= end {
            low
        } else {
            candidate + 1
        };
        // Something of the machine's own (a service, another run) may listen there: skip it.
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            *next = Some(candidate);
            return port;
        }
    }
    panic!("no free loopback port in {low}..{end}")
}

/// [`free_port`] as a loopback address.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::TcpStream;

    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_handed_out_twice() {
        let start = ephemeral_start();
        let ports: Vec<u16> = (0..500).map(|_| free_port()).collect();
        assert!(
            ports.iter().all(|&p| p < start),
            "a port in the ephemeral range (from {start}): {ports:?}"
        );
        assert_eq!(ports.iter().collect::<BTreeSet<_>>().len(), ports.len());
    }

    #[test]
    fn an_outgoing_connection_never_holds_a_handed_out_port() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a listener");
        let target = listener.local_addr().expect("its address");
        let ports: BTreeSet<u16> = (0..100).map(|_| free_port()).collect();
        // Fewer than the listen backlog (128): nothing accepts them.
        let connections: Vec<TcpStream> = (0..100)
            .map(|_| TcpStream::connect(target).expect("connecting"))
            .collect();
        for connection in &connections {
            let local = connection.local_addr().expect("local address").port();
            assert!(
                !ports.contains(&local),
                "connection took handed-out port {local}"
            );
        }
        for port in ports {
            TcpListener::bind(("127.0.0.1", port)).expect("a handed-out port binds");
        }
    }
}
