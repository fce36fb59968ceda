//! Exactly one relay per database: the one holding a session-level advisory lock. Other
//! processes of the same region (scaled-out projectors) wait as standbys and take over when
//! the holder's connection goes away.
//!
//! The lock lives as long as the holder's session: a PostgreSQL restart (or a dropped
//! connection) ends it and lets a standby take over, while the old holder would not notice
//! until it used that session again. So the holder checks its session before every batch
//! ([`Leadership::still_held`]) and stands down as soon as it is gone.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tracing::info;

const RELAY_LOCK: i64 = 0x6169_676f_0002;

/// Held for as long as the relay publishes; dropping it releases the lock.
#[derive(Debug)]
pub struct Leadership {
    connection: PgConnection,
}

impl Leadership {
    /// True while the session holding the lock is alive: it is never unlocked explicitly,
    /// so the lock lasts exactly as long as the session.
    pub async fn still_held(&mut self) -> bool {
        let alive = sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&mut self.connection)
            .await;
        matches!(alive, Ok(1))
    }
}

/// Waits until this process holds the relay lock.
pub async fn acquire(pool: &PgPool, retry: Duration) -> Leadership {
    let mut announced = false;
    loop {
        if let Ok(mut connection) = pool.acquire().await {
            let held: Result<bool, _> = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(RELAY_LOCK)
                .fetch_one(&mut *connection)
                .await;
            if let Ok(true) = held {
                info!("outbox relay: this process publishes");
                metrics::gauge!("outbox_relay_leader").set(1.0);
                // Detached from the pool, so dropping it closes the session and releases the
                // lock, instead of parking a locked session in the pool.
                return Leadership {
                    connection: connection.detach(),
                };
            }
        }
        if !announced {
            info!("outbox relay: another process publishes; standing by");
            metrics::gauge!("outbox_relay_leader").set(0.0);
            announced = true;
        }
        tokio::time::sleep(retry).await;
    }
}
