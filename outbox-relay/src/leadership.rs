//! Exactly one relay per database: the one holding a session-level advisory lock. Other
//! processes of the same region (scaled-out projectors) wait as standbys and take over when
//! the holder's connection goes away.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tracing::info;

const RELAY_LOCK: i64 = 0x6169_676f_0002;

/// Held for as long as the relay publishes; dropping it releases the lock.
#[derive(Debug)]
pub struct Leadership {
    _connection: PgConnection,
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
                // Detached from the pool, so dropping it closes the session and releases the
                // lock, instead of parking a locked session in the pool.
                return Leadership {
                    _connection: connection.detach(),
                };
            }
        }
        if !announced {
            info!("outbox relay: another process publishes; standing by");
            announced = true;
        }
        tokio::time::sleep(retry).await;
    }
}
