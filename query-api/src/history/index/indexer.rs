//! The history indexer: keeps `history_blocks` level with the event log. One per database (the
//! holder of an advisory lock, on the connection it writes with, so a lost connection is a lost
//! lock); it catches up from the saved folds at start, then follows the log by arrival, woken
//! by the catalogue follower's change feed.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use event_store::event_log;
use event_store::history_index::{self as index, FoldSave, StoredBlock, StoredFold};
use projector::{ActorId, ChangeFeed, CodecError};
use sqlx::{Acquire, PgConnection, PgPool};
use tokio::sync::broadcast::error::RecvError;
use tracing::{Instrument, info, info_span, warn};

use super::actor_log::{ActorLog, BlockPolicy, Pushed, actor_of};

/// Only one indexer per database writes.
const INDEX_LOCK: i64 = 0x6169_676f_0004;
/// Rows read per step while following the log.
const FOLLOW_BATCH: i64 = 5_000;
/// Rows of one actor read (and folded, then written) at a time while catching up.
const CATCH_UP_PAGE: i64 = 20_000;
/// Looks for new rows at least this often, notified or not.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// How often a process that does not hold the lock tries again.
const STANDBY_RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("a saved history fold: {0}")]
    Codec(#[from] CodecError),
}

/// Indexes until `shutdown`; an error ends it (the supervisor restarts it, which rebuilds from
/// the saved folds).
pub async fn run_indexer(
    pool: PgPool,
    feed: ChangeFeed,
    policy: BlockPolicy,
    shutdown: impl Future<Output = ()>,
) -> Result<(), IndexError> {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut conn = pool.acquire().await?.detach();
    loop {
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(INDEX_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if held {
            break;
        }
        tokio::select! {
            () = shutdown.as_mut() => return Ok(()),
            () = tokio::time::sleep(STANDBY_RETRY) => {}
        }
    }
    // Subscribed before catching up: whatever is logged meanwhile wakes the follow loop.
    let mut notices = feed.subscribe();
    let mut indexer = Indexer {
        logs: BTreeMap::new(),
        policy,
    };
    let mut through = indexer.catch_up(&mut conn).await?;
    loop {
        let read = indexer
            .follow(&mut conn, through)
            .instrument(info_span!("history_index_batch", after = through))
            .await?;
        if let Some(next) = read.filter(|(_, rows)| *rows > 0).map(|(next, _)| next) {
            through = next;
            continue;
        }
        tokio::select! {
            () = shutdown.as_mut() => return Ok(()),
            received = notices.recv() => {
                if matches!(received, Err(RecvError::Closed)) {
                    return Ok(());
                }
                // One read covers every notice queued meanwhile.
                while notices.try_recv().is_ok() {}
            }
            () = tokio::time::sleep(IDLE_TICK) => {}
        }
    }
}

struct Indexer {
    logs: BTreeMap<ActorId, ActorLog>,
    policy: BlockPolicy,
}

impl Indexer {
    /// Resumes every actor from its saved fold and folds the rest of its log; answers the
    /// arrival the index then reaches.
    async fn catch_up(&mut self, conn: &mut PgConnection) -> Result<i64, IndexError> {
        let started = Instant::now();
        let mut tx = conn.begin().await?;
        index::reset(&mut tx).await?;
        tx.commit().await?;
        let through = event_log::max_arrival(&mut *conn).await?;
        let mut saved: BTreeMap<ActorId, StoredFold> = BTreeMap::new();
        for fold in index::load_folds(&mut *conn).await? {
            if let Ok(region) = domain::RegionId::parse(&fold.region) {
                saved.insert(ActorId::new(region, fold.partition), fold);
            }
        }
        let mut actors: BTreeSet<ActorId> = saved.keys().cloned().collect();
        for (region, partition) in event_log::actors(&mut *conn).await? {
            if let Ok(region) = domain::RegionId::parse(&region) {
                actors.insert(ActorId::new(region, partition));
            }
        }
        let mut folded = 0_u64;
        for actor in actors {
            let log = self.resumed(conn, &actor, saved.get(&actor)).await?;
            let after = log.last_position();
            self.logs.insert(actor.clone(), log);
            folded += self.fold_actor(conn, &actor, after, through).await?;
        }
        let mut tx = conn.begin().await?;
        index::set_indexed_through(&mut tx, through).await?;
        tx.commit().await?;
        info!(
            actors = self.logs.len(),
            events = folded,
            through,
            elapsed_ms = started.elapsed().as_millis(),
            "history index caught up"
        );
        Ok(through)
    }

    /// The actor's log resumed from `saved`, unless a row arrived after it that belongs before
    /// it, or it does not decode (then from nothing, its index dropped: the index is derived
    /// data, rebuilt from the log).
    async fn resumed(
        &self,
        conn: &mut PgConnection,
        actor: &ActorId,
        saved: Option<&StoredFold>,
    ) -> Result<ActorLog, IndexError> {
        let region = actor.region.as_str();
        if let Some(saved) = saved {
            let late = event_log::arrived_out_of_order(
                &mut *conn,
                region,
                actor.partition,
                saved.position,
                saved.through_arrival,
            )
            .await?;
            if !late {
                let rows = index::load_fold_facts(&mut *conn, region, actor.partition).await?;
                match ActorLog::resume(actor.clone(), saved, rows) {
                    Ok(log) => return Ok(log),
                    Err(error) => {
                        warn!(%error, %actor, "history index: a saved fold does not decode; rebuilding the actor");
                    }
                }
            }
        }
        index::forget_actor(conn, region, actor.partition).await?;
        Ok(ActorLog::new(actor.clone()))
    }

    /// Folds `actor`'s rows after `after` up to arrival `through`, writing as it goes.
    async fn fold_actor(
        &mut self,
        conn: &mut PgConnection,
        actor: &ActorId,
        after: i64,
        through: i64,
    ) -> Result<u64, IndexError> {
        let region = actor.region.to_string();
        let (mut after, mut folded) = (after, 0_u64);
        loop {
            let rows = event_log::actor_rows(
                &mut *conn,
                &region,
                actor.partition,
                after,
                through,
                CATCH_UP_PAGE,
            )
            .await?;
            let Some(last) = rows.last().map(|row| row.row.position) else {
                return Ok(folded);
            };
            if let Some(log) = self.logs.get_mut(actor) {
                for row in &rows {
                    log.push(row.arrival, &row.row, self.policy);
                }
            }
            folded += rows.len() as u64;
            let mut tx = conn.begin().await?;
            self.write(&mut tx, [actor]).await?;
            tx.commit().await?;
            after = last;
        }
    }

    /// Folds the next rows after arrival `after`; answers the arrival reached and how many
    /// rows were read (`None` when nothing was logged).
    async fn follow(
        &mut self,
        conn: &mut PgConnection,
        after: i64,
    ) -> Result<Option<(i64, usize)>, IndexError> {
        let rows = event_log::rows_after(&mut *conn, after, FOLLOW_BATCH).await?;
        let Some(last) = rows.last().map(|row| row.arrival) else {
            return Ok(None);
        };
        let mut touched = BTreeSet::new();
        let mut rebuild = BTreeSet::new();
        for row in &rows {
            let Some(actor) = actor_of(&row.row) else {
                continue;
            };
            if rebuild.contains(&actor) {
                continue;
            }
            let log = self
                .logs
                .entry(actor.clone())
                .or_insert_with(|| ActorLog::new(actor.clone()));
            match log.push(row.arrival, &row.row, self.policy) {
                Pushed::Appended => {
                    touched.insert(actor);
                }
                Pushed::OutOfOrder => {
                    rebuild.insert(actor);
                }
            }
        }
        let mut tx = conn.begin().await?;
        self.write(&mut tx, touched.iter().filter(|a| !rebuild.contains(*a)))
            .await?;
        for actor in &rebuild {
            // Rare (a re-sent or restored region log): the actor's index starts over.
            info!(%actor, "history index: an event arrived out of log order; rebuilding the actor");
            index::forget_actor(&mut tx, actor.region.as_str(), actor.partition).await?;
            self.logs
                .insert(actor.clone(), ActorLog::new(actor.clone()));
            self.fold_actor(&mut tx, actor, 0, last).await?;
        }
        index::set_indexed_through(&mut tx, last).await?;
        tx.commit().await?;
        metrics::counter!("history_index_events_total").increment(rows.len() as u64);
        Ok(Some((last, rows.len())))
    }

    /// Writes what `actors` closed or grew, and any resume point due.
    async fn write<'a>(
        &mut self,
        conn: &mut PgConnection,
        actors: impl IntoIterator<Item = &'a ActorId>,
    ) -> Result<(), IndexError> {
        let mut blocks: Vec<StoredBlock> = Vec::new();
        let mut folds: Vec<FoldSave> = Vec::new();
        for actor in actors {
            if let Some(log) = self.logs.get_mut(actor) {
                let (closed, fold) = log.take_writes()?;
                blocks.extend(closed);
                folds.extend(fold);
            }
        }
        for chunk in blocks.chunks(1_000) {
            index::upsert_blocks(&mut *conn, chunk).await?;
        }
        index::save_folds(conn, &folds).await?;
        Ok(())
    }
}
