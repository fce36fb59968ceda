//! Wake-ups from a `NOTIFY` channel: a background task owns the `PgListener` and turns
//! notifications into a coalescing `Notify` permit, so the waiting loop never cancels a read
//! half-way. Notifications lost while disconnected are covered by the loop's poll interval.
//! The relay listens to [`OUTBOX_CHANNEL`] (rows appended), the projectors of the region to
//! [`RELAYED_CHANNEL`] (rows on the topic).

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// Notified by every append that wrote outbox rows.
pub const OUTBOX_CHANNEL: &str = "outbox";
/// Notified by the relay each time rows it delivered to Kafka are marked published: the
/// region's records are on the topic.
pub const RELAYED_CHANNEL: &str = "relayed";

/// Handle on the listener task; the task stops when this is dropped.
#[derive(Debug)]
pub struct Wakeups {
    notify: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Wakeups {
    /// Listens to `channel` until dropped, reconnecting every `retry` after a failure.
    pub fn spawn(pool: PgPool, channel: &'static str, retry: Duration) -> Self {
        let notify = Arc::new(Notify::new());
        let task = tokio::spawn(listen(pool, channel, Arc::clone(&notify), retry));
        Self { notify, task }
    }

    /// Resolves at the next notification (immediately if one came since the last call).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listen(pool: PgPool, channel: &'static str, notify: Arc<Notify>, retry: Duration) {
    loop {
        match subscribe(&pool, channel).await {
            Ok(mut listener) => {
                // Rows committed while we were not listening would otherwise wait for the poll.
                notify.notify_one();
                loop {
                    match listener.recv().await {
                        Ok(_) => notify.notify_one(),
                        Err(sqlx::Error::PoolClosed) => return,
                        Err(error) => {
                            warn!(%error, channel, "listener lost its connection");
                            break;
                        }
                    }
                }
            }
            Err(sqlx::Error::PoolClosed) => return,
            Err(error) => debug!(%error, channel, "listener cannot connect yet"),
        }
        tokio::time::sleep(retry).await;
    }
}

async fn subscribe(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}
