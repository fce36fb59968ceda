//! A TLS-terminating proxy (`socat`) in front of a plaintext listener: what a broker's TLS
//! listener looks like to a client, for a broker (Nisshi 0.7) that cannot terminate TLS.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::certs::TestCerts;

/// A running `socat`; killed when dropped.
#[derive(Debug)]
pub struct TlsProxy {
    addr: SocketAddr,
    child: Child,
}

impl TlsProxy {
    /// Listens on a free loopback port with `certs`' server certificate and forwards every
    /// connection, decrypted, to `upstream`.
    pub async fn start(certs: &TestCerts, upstream: SocketAddr) -> Self {
        let addr = super::ports::free_addr();
        Self::start_on(addr, certs, upstream).await
    }

    /// As [`TlsProxy::start`], on `addr`.
    pub async fn start_on(addr: SocketAddr, certs: &TestCerts, upstream: SocketAddr) -> Self {
        let listen = format!(
            "OPENSSL-LISTEN:{},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            addr.port(),
            certs.cert().display(),
            certs.key().display()
        );
        let child = Command::new("socat")
            .args([listen, format!("TCP:{upstream}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("running socat (scripts/install-deps.sh installs it)");
        super::wait_until("the TLS proxy listens", || async move {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .await;
        Self { addr, child }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
