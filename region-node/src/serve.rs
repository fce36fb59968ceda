//! How the node accepts HTTP connections: each peer's address reaches the handlers (the live
//! stream caps streams per client address), and a connection whose written data the client
//! stops taking is closed after the write timeout (`TCP_USER_TIMEOUT`), so a client that
//! stops reading a live stream cannot hold its slot for ever.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::{TcpListener, TcpStream};

/// Serves `router` on `listener` until `shutdown`, then drains gracefully.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    write_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(move |stream| limit_unsent(stream, write_timeout));
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// The kernel closes the connection once written data stays unacknowledged, or unsent because
/// the client's window is closed, for `timeout`. Without it, a client that stops reading (a
/// suspended laptop, a stuck proxy) keeps its connection, and its live stream's slot, for as
/// long as TCP keeps probing a zero window: indefinitely.
fn limit_unsent(stream: &mut TcpStream, timeout: Duration) {
    if let Err(error) = socket2::SockRef::from(&*stream).set_tcp_user_timeout(Some(timeout)) {
        tracing::warn!(%error, "could not set the write timeout on a connection");
    }
}
