//! The node's memory of every actor state it has merged, kept in its own database.
//!
//! The exchange topic is read from its end (see `exchange.rs`), so without this a node that
//! restarts while another region is down would leave that region's models out until it comes
//! back. With it, the node starts from the states it last saw: that region is counted as it was
//! and reported stale. States are CRDTs, so restoring an old one never moves a count back.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use domain::RegionId;
use sqlx::PgPool;
use tracing::{info, warn};

use super::projection::Projection;
use crate::ActorState;

/// Merges the saved states into `projection` (without marking their regions as heard from).
pub async fn restore(pool: &PgPool, projection: &Projection) -> Result<usize, sqlx::Error> {
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT state FROM known_actor_states")
        .fetch_all(pool)
        .await?;
    let states: Vec<ActorState> = rows
        .into_iter()
        .filter_map(|(bytes,)| {
            ActorState::decode(&bytes)
                .map_err(|error| warn!(%error, "skipping an unreadable saved actor state"))
                .ok()
        })
        .collect();
    let restored = states.len();
    projection.restore(states).await;
    info!(actors = restored, "actor states restored");
    Ok(restored)
}

/// Saves every actor state that changed since the last save, every `every`, until `shutdown`;
/// then once more.
pub async fn keep(
    pool: PgPool,
    projection: Projection,
    every: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut saved: HashMap<String, Vec<u8>> = HashMap::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stopping = tokio::select! {
            () = shutdown.as_mut() => true,
            () = tokio::time::sleep(every) => false,
        };
        if let Err(error) = save(&pool, &projection, &mut saved).await {
            warn!(%error, "actor states not saved; retrying");
        }
        if stopping {
            return;
        }
    }
}

async fn save(
    pool: &PgPool,
    projection: &Projection,
    saved: &mut HashMap<String, Vec<u8>>,
) -> Result<(), sqlx::Error> {
    // Encoded under the read lock, written after it is released: the fold never waits on
    // the database here.
    let encoded: Vec<(String, RegionId, i32, Vec<u8>)> = projection
        .with_view(|view, _| {
            view.actors()
                .filter_map(|state| {
                    let actor = state.actor();
                    let bytes = state.encode().ok()?;
                    Some((
                        actor.to_string(),
                        actor.region.clone(),
                        actor.partition,
                        bytes,
                    ))
                })
                .collect()
        })
        .await;
    for (key, region, partition, bytes) in encoded {
        if saved.get(&key) == Some(&bytes) {
            continue;
        }
        sqlx::query(
            "INSERT INTO known_actor_states (region, partition, state, updated_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (region, partition)
             DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(region.as_str())
        .bind(partition)
        .bind(&bytes)
        .bind(Utc::now())
        .execute(pool)
        .await?;
        saved.insert(key, bytes);
    }
    Ok(())
}
