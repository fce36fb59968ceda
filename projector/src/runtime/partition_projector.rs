//! Folds this region's events topic into one CRDT actor per partition.
//!
//! The region's projector processes form one consumer group, so each partition is folded by
//! exactly one of them at a time. A partition's fold is loaded from its checkpoint the first
//! time one of its records arrives; records below the checkpoint's offset are skipped (the
//! Kafka group offset is only a hint), so a restart or rebalance resumes exactly where the last
//! durable commit stopped. Checkpoints are committed in batches, one transaction for every
//! partition that moved; only then is the new state published and merged.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use domain::RegionId;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use tracing::{Instrument, info, info_span, warn};

use super::checkpoint::{self, CheckpointError};
use super::exchange::StatePublisher;
use super::projection::Projection;
use super::source::{ExplicitOffsets, group_config};
use crate::{ActorId, ActorState, FoldError, FoldOutcome, PartitionFold};

#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    pub brokers: String,
    pub region: RegionId,
    pub events_topic: String,
    pub group: String,
    /// A checkpoint is committed after this many records...
    pub commit_every: usize,
    /// ...or this long after the first uncommitted one, whichever comes first.
    pub commit_interval: Duration,
    /// Every assigned partition's state is republished this often, traffic or not, so other
    /// nodes can tell a quiet region from a silent one.
    pub heartbeat: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Fold(#[from] FoldError),
}

/// One partition being folded by this process.
struct Owned {
    fold: PartitionFold,
    next_offset: i64,
    dirty: bool,
}

struct Projector {
    config: ProjectorConfig,
    pool: PgPool,
    projection: Projection,
    publisher: StatePublisher,
    owned: HashMap<i32, Owned>,
    uncommitted: usize,
    oldest_uncommitted: Option<Instant>,
    last_heartbeat: Instant,
}

/// Runs until `shutdown`, then commits what it folded.
pub async fn run_projector(
    config: ProjectorConfig,
    pool: PgPool,
    projection: Projection,
    publisher: StatePublisher,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProjectorError> {
    let starts = checkpoint::next_offsets(&pool, &config.events_topic)
        .await
        .map_err(CheckpointError::from)?;
    let context = ExplicitOffsets::new(starts, "projector_consumer_lag");
    let consumer: StreamConsumer<ExplicitOffsets> =
        group_config(&config.brokers, &config.group).create_with_context(context)?;
    consumer.subscribe(&[config.events_topic.as_str()])?;
    info!(topic = %config.events_topic, group = %config.group, "projector started");
    let mut projector = Projector {
        config,
        pool,
        projection,
        publisher,
        owned: HashMap::new(),
        uncommitted: 0,
        oldest_uncommitted: None,
        last_heartbeat: Instant::now(),
    };
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let wait = projector.time_to_commit();
        let received = tokio::select! {
            biased;
            () = shutdown.as_mut() => break,
            received = tokio::time::timeout(wait, consumer.recv()) => received,
        };
        match received {
            Ok(Ok(message)) => projector.fold(&message).await?,
            Ok(Err(error)) => {
                warn!(%error, "projector: consumer error");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_elapsed) => {}
        }
        projector.forget_revoked(&consumer).await;
        if projector.commit_due() {
            projector.commit_with_retry(&consumer).await;
        }
        if projector.last_heartbeat.elapsed() >= projector.config.heartbeat {
            projector.heartbeat(&consumer).await?;
        }
    }
    projector.commit_with_retry(&consumer).await;
    info!("projector stopped");
    Ok(())
}

impl Projector {
    async fn fold(&mut self, message: &BorrowedMessage<'_>) -> Result<(), ProjectorError> {
        let partition = message.partition();
        if !self.owned.contains_key(&partition) {
            let owned = self.load(partition).await?;
            self.owned.insert(partition, owned);
        }
        let Some(owned) = self.owned.get_mut(&partition) else {
            return Ok(());
        };
        if message.offset() < owned.next_offset {
            metrics::counter!("projector_redelivered_total").increment(1);
            return Ok(());
        }
        let payload = message.payload().unwrap_or_default();
        let outcome = owned.fold.apply_bytes(message.offset(), payload)?;
        metrics::counter!("projector_events_folded_total", "outcome" => outcome_label(&outcome))
            .increment(1);
        owned.next_offset = message.offset() + 1;
        owned.dirty = true;
        self.uncommitted += 1;
        self.oldest_uncommitted.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// The partition's committed fold, or a fresh one; its state is published right away so
    /// the other regions learn about a new owner's actor without waiting for traffic.
    async fn load(&self, partition: i32) -> Result<Owned, ProjectorError> {
        let (fold, next_offset) = match self.load_checkpoint(partition).await? {
            Some((fold, next)) => (fold, next),
            None => (
                PartitionFold::new(ActorId::new(self.config.region.clone(), partition)),
                0,
            ),
        };
        info!(partition, next_offset, "projector: partition loaded");
        let state = fold.state();
        self.publisher.publish(&state);
        self.projection.observe([state]).await;
        Ok(Owned {
            fold,
            next_offset,
            dirty: false,
        })
    }

    /// A database outage delays folding instead of ending it; a corrupt checkpoint is fatal.
    async fn load_checkpoint(
        &self,
        partition: i32,
    ) -> Result<Option<(PartitionFold, i64)>, ProjectorError> {
        let mut delay = Duration::from_millis(100);
        loop {
            match checkpoint::load(&self.pool, &self.config.events_topic, partition).await {
                Err(CheckpointError::Database(error)) => {
                    warn!(%error, partition, retry_in_ms = delay.as_millis(), "projector: checkpoint not loaded");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                other => return Ok(other?),
            }
        }
    }

    fn time_to_commit(&self) -> Duration {
        let heartbeat = self
            .config
            .heartbeat
            .saturating_sub(self.last_heartbeat.elapsed());
        match self.oldest_uncommitted {
            Some(since) => self
                .config
                .commit_interval
                .saturating_sub(since.elapsed())
                .min(heartbeat),
            None => heartbeat,
        }
    }

    /// Commits, loads assigned partitions that had no traffic yet, and republishes every
    /// owned partition's (committed) state.
    async fn heartbeat(
        &mut self,
        consumer: &StreamConsumer<ExplicitOffsets>,
    ) -> Result<(), ProjectorError> {
        self.last_heartbeat = Instant::now();
        self.commit_with_retry(consumer).await;
        let assigned: Vec<i32> = consumer
            .assignment()
            .map(|list| list.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default();
        for partition in assigned {
            if !self.owned.contains_key(&partition) {
                let owned = self.load(partition).await?;
                self.owned.insert(partition, owned);
            }
        }
        if !self.projection.is_caught_up() {
            let topic = &self.config.events_topic;
            let positions: Vec<((String, i32), i64)> = self
                .owned
                .iter()
                .map(|(partition, owned)| ((topic.clone(), *partition), owned.next_offset))
                .collect();
            if consumer.context().caught_up(&positions) {
                info!(partitions = positions.len(), "projector caught up");
                self.projection.mark_caught_up();
            }
        }
        let states: Vec<ActorState> = self.owned.values().map(|o| o.fold.state()).collect();
        for state in &states {
            self.publisher.publish(state);
        }
        self.projection.observe(states).await;
        Ok(())
    }

    fn commit_due(&self) -> bool {
        self.uncommitted >= self.config.commit_every
            || self
                .oldest_uncommitted
                .is_some_and(|since| since.elapsed() >= self.config.commit_interval)
    }

    /// Commits until it works: the fold must not run ahead of what is durable for long.
    async fn commit_with_retry(&mut self, consumer: &StreamConsumer<ExplicitOffsets>) {
        let mut delay = Duration::from_millis(100);
        while let Err(error) = self.commit(consumer).await {
            warn!(%error, retry_in_ms = delay.as_millis(), "projector: checkpoint commit failed");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn commit(
        &mut self,
        consumer: &StreamConsumer<ExplicitOffsets>,
    ) -> Result<(), sqlx::Error> {
        let dirty: BTreeSet<i32> = self
            .owned
            .iter()
            .filter(|(_, owned)| owned.dirty)
            .map(|(partition, _)| *partition)
            .collect();
        if dirty.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let span = info_span!(
            "fold_batch",
            partitions = dirty.len(),
            events = self.uncommitted
        );
        let states = async {
            let mut tx = self.pool.begin().await?;
            let mut states = Vec::with_capacity(dirty.len());
            for partition in &dirty {
                let Some(owned) = self.owned.get(partition) else {
                    continue;
                };
                let snapshot = owned
                    .fold
                    .snapshot()
                    .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
                checkpoint::save(
                    &mut tx,
                    &self.config.region,
                    &self.config.events_topic,
                    *partition,
                    owned.next_offset,
                    &snapshot,
                )
                .await?;
                states.push(owned.fold.state());
            }
            tx.commit().await?;
            Ok::<Vec<ActorState>, sqlx::Error>(states)
        }
        .instrument(span)
        .await?;
        metrics::histogram!("projector_commit_seconds").record(started.elapsed().as_secs_f64());

        let mut hint = TopicPartitionList::new();
        for partition in &dirty {
            if let Some(owned) = self.owned.get_mut(partition) {
                owned.dirty = false;
                consumer.context().advance(
                    &self.config.events_topic,
                    *partition,
                    owned.next_offset,
                );
                let _ = hint.add_partition_offset(
                    &self.config.events_topic,
                    *partition,
                    Offset::Offset(owned.next_offset),
                );
            }
        }
        // A hint for where the group resumes; the checkpoint decides what is skipped.
        let _ = consumer.commit(&hint, CommitMode::Async);
        for state in &states {
            self.publisher.publish(state);
        }
        self.projection.observe(states).await;
        self.uncommitted = 0;
        self.oldest_uncommitted = None;
        Ok(())
    }

    /// Commits, then drops partitions a rebalance took away: their next owner loads them from
    /// the checkpoint, and so do we if they come back.
    async fn forget_revoked(&mut self, consumer: &StreamConsumer<ExplicitOffsets>) {
        let revoked: Vec<i32> = consumer
            .context()
            .take_revoked()
            .into_iter()
            .map(|(_, partition)| partition)
            .collect();
        if revoked.is_empty() {
            return;
        }
        self.commit_with_retry(consumer).await;
        for partition in revoked {
            if self.owned.remove(&partition).is_some() {
                info!(partition, "projector: partition revoked");
            }
        }
    }
}

fn outcome_label(outcome: &FoldOutcome) -> &'static str {
    match outcome {
        FoldOutcome::Applied => "applied",
        FoldOutcome::Duplicate { .. } => "duplicate",
        FoldOutcome::Skipped(_) => "skipped",
    }
}
