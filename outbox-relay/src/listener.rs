//! Wake-ups from `NOTIFY outbox`: a background task owns the `PgListener` and turns
//! notifications into a coalescing `Notify` permit, so the relay loop never cancels a read
//! half-way. Notifications lost while disconnected are covered by the loop's poll interval.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

pub(crate) const CHANNEL: &str = "outbox";

/// Handle on the listener task; the task stops when this is dropped.
#[derive(Debug)]
pub(crate) struct Wakeups {
    notify: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Wakeups {
    pub(crate) fn spawn(pool: PgPool, retry: Duration) -> Self {
        let notify = Arc::new(Notify::new());
        let task = tokio::spawn(listen(pool, Arc::clone(&notify), retry));
        Self { notify, task }
    }

    /// Resolves at the next notification (immediately if one came since the last call).
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listen(pool: PgPool, notify: Arc<Notify>, retry: Duration) {
    loop {
        match subscribe(&pool).await {
            Ok(mut listener) => {
                // Rows committed while we were not listening would otherwise wait for the poll.
                notify.notify_one();
                loop {
                    match listener.recv().await {
                        Ok(_) => notify.notify_one(),
                        Err(sqlx::Error::PoolClosed) => return,
                        Err(error) => {
                            warn!(%error, "outbox listener lost its connection");
                            break;
                        }
                    }
                }
            }
            Err(sqlx::Error::PoolClosed) => return,
            Err(error) => debug!(%error, "outbox listener cannot connect yet"),
        }
        tokio::time::sleep(retry).await;
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
