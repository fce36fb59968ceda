//! The node's memory of every actor state it has merged, kept in its own database, and the
//! exchange epoch it is in.
//!
//! The exchange topic is read from its end (see `exchange.rs`), so without this a node that
//! restarts while another region is down would leave that region's models out until it comes
//! back. With it, the node starts from the states it last saw: that region is counted as it was
//! and reported stale. States are CRDTs: saving joins with what is stored (several processes of
//! one region share the table), and restoring an old one never moves a count back.
//!
//! Restored states pass the same trust rules as exchanged ones: the own region's rows are
//! skipped (its actors come from the checkpoints), rows of regions outside the deployment, of
//! an older epoch, or with counters beyond their offsets are refused.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use sqlx::{PgExecutor, PgPool};
use tracing::{info, warn};

use crate::exchange::count_refusal;
use projector::Projection;
use projector::trust::{self, Refusal, TrustRules};
use projector::{ActorId, ActorState};

/// Where a refused restored state came from (the metric's `source` label).
const SOURCE: &str = "saved";

/// A saved state as stored, not decoded (audits report unreadable ones).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SavedState {
    pub region: String,
    pub partition: i32,
    pub state: Vec<u8>,
}

/// Every saved state.
pub async fn saved<'e>(db: impl PgExecutor<'e>) -> Result<Vec<SavedState>, sqlx::Error> {
    sqlx::query_as("SELECT region, partition, state FROM known_actor_states")
        .fetch_all(db)
        .await
}

/// Enters the recorded epoch, then merges the saved states the rules accept into `projection`
/// (without marking their regions as heard from). Answers how many were restored.
pub async fn restore(
    pool: &PgPool,
    projection: &Projection,
    rules: &TrustRules,
) -> Result<usize, sqlx::Error> {
    let epoch = recorded_epoch(pool).await?;
    projection.enter_epoch(epoch).await;
    let rows = saved(pool).await?;
    let mut states = Vec::with_capacity(rows.len());
    for row in rows {
        let state = match ActorState::decode(&row.state) {
            Ok(state) => state,
            Err(error) => {
                warn!(%error, "skipping an unreadable saved actor state");
                continue;
            }
        };
        match judge_saved(rules, epoch, &state) {
            Ok(true) => states.push(state),
            Ok(false) => {}
            Err(refusal) => count_refusal(SOURCE, state.actor(), &refusal, true),
        }
    }
    let restored = states.len();
    projection.restore(states).await;
    info!(actors = restored, epoch, "actor states restored");
    Ok(restored)
}

/// `Ok(false)`: the own region's (rebuilt from checkpoints instead).
fn judge_saved(rules: &TrustRules, epoch: u64, state: &ActorState) -> Result<bool, Refusal> {
    let region = &state.actor().region;
    if region == rules.own_region() {
        return Ok(false);
    }
    if !rules.is_foreign_member(region) {
        return Err(Refusal::UnknownRegion(region.clone()));
    }
    if state.epoch() < epoch {
        return Err(Refusal::OldEpoch {
            found: state.epoch(),
            current: epoch,
        });
    }
    trust::check_counters(state)?;
    Ok(true)
}

/// Saves every actor state that changed since the last save, every `every`, until `shutdown`;
/// then once more.
pub async fn keep(
    pool: PgPool,
    projection: Projection,
    every: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut saved: HashMap<ActorId, ActorState> = HashMap::new();
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
    saved: &mut HashMap<ActorId, ActorState>,
) -> Result<(), sqlx::Error> {
    // Copied under the read lock (only what changed), written after it is released: the
    // fold never waits on the database here.
    let changed: Vec<ActorState> = projection
        .with_view(|view, _| {
            view.actors()
                .filter(|state| saved.get(state.actor()) != Some(*state))
                .cloned()
                .collect()
        })
        .await;
    for state in changed {
        save_one(pool, &state).await?;
        saved.insert(state.actor().clone(), state);
    }
    Ok(())
}

/// Joins `state` with the stored row of its actor (a newer epoch wins whole), under the row's
/// lock: another process of the region saving at the same time cannot lose an update.
async fn save_one(pool: &PgPool, state: &ActorState) -> Result<(), sqlx::Error> {
    let actor = state.actor();
    let mut tx = pool.begin().await?;
    let stored: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT state FROM known_actor_states WHERE region = $1 AND partition = $2 FOR UPDATE",
    )
    .bind(actor.region.as_str())
    .bind(actor.partition)
    .fetch_optional(&mut *tx)
    .await?;
    let mut merged = state.clone();
    if let Some(stored) = stored.and_then(|bytes| ActorState::decode(&bytes).ok()) {
        // A stored row of another actor is replaced (`merge` refuses it).
        let _ = merged.merge(&stored);
    }
    let bytes = merged
        .encode()
        .map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
    sqlx::query(
        "INSERT INTO known_actor_states (region, partition, state, epoch, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (region, partition)
         DO UPDATE SET state = excluded.state, epoch = excluded.epoch,
                       updated_at = excluded.updated_at",
    )
    .bind(actor.region.as_str())
    .bind(actor.partition)
    .bind(&bytes)
    .bind(epoch_column(merged.epoch()))
    .bind(Utc::now())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The exchange epoch this node's database recorded (0 before any reset).
pub async fn recorded_epoch(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let epoch: Option<i64> = sqlx::query_scalar("SELECT epoch FROM exchange_epoch")
        .fetch_optional(pool)
        .await?;
    Ok(epoch.map_or(0, i64::unsigned_abs))
}

/// Records `epoch` unless a newer one is recorded; answers the recorded epoch.
pub async fn record_epoch(pool: &PgPool, epoch: u64) -> Result<u64, sqlx::Error> {
    let recorded: i64 = sqlx::query_scalar(
        "INSERT INTO exchange_epoch (singleton, epoch, updated_at) VALUES (TRUE, $1, now())
         ON CONFLICT (singleton) DO UPDATE
            SET epoch = GREATEST(exchange_epoch.epoch, excluded.epoch),
                updated_at = CASE WHEN excluded.epoch > exchange_epoch.epoch
                                  THEN excluded.updated_at ELSE exchange_epoch.updated_at END
         RETURNING epoch",
    )
    .bind(epoch_column(epoch))
    .fetch_one(pool)
    .await?;
    Ok(recorded.unsigned_abs())
}

/// Forgets every saved state of an epoch before `epoch`; answers how many.
pub async fn forget_before(pool: &PgPool, epoch: u64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM known_actor_states WHERE epoch < $1")
        .bind(epoch_column(epoch))
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Epochs beyond [`trust::MAX_EPOCH`] are refused before they get here; saturate anyway.
fn epoch_column(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}
