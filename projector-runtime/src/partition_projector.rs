//! Folds this region's events topic into one CRDT actor per partition.
//!
//! The region's projector processes share the partitions out through advisory locks in the
//! region's database ([`claims`](crate::claims)), so each partition is folded by one of them
//! at a time. A partition's fold is loaded from its checkpoint when this process takes the
//! partition, and read from the checkpoint's offset (records below it are skipped should they
//! come), so a restart or hand-over resumes exactly where the last durable commit stopped.
//! Checkpoints are committed in batches, one transaction for every partition that moved; a
//! partition is handed over only after its last commit.
//!
//! A new state is published and merged as soon as the records at hand are folded, before its
//! checkpoint commits: the fold is deterministic, so whoever folds those records again after a
//! crash (this process or the partition's next owner, from the last checkpoint) reaches the
//! same state, dot for dot, and merging it again changes nothing. Waiting for the commit would
//! only add its interval to every change's way to the other regions.
//!
//! A partition whose topic may have been deleted and created again (a record below the read
//! point arrived, or the consumer's offset fell out of the partition's range) stops being read
//! until [`incarnation`](crate::incarnation) says whether the record it last consumed is still
//! there; if not, it is read again from offset zero: the fold drops what it already applied.
//!
//! Once caught up, a projector that got no record for a while stops fetching
//! ([`doze`](crate::doze)) and starts again when the region's relay says it published
//! (`NOTIFY relayed`). Far behind, it reads with a long fetch wait ([`gears`](crate::gears)).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use domain::{EventEnvelope, RegionId};
use event_store::ReadPoint;
use kafka_client::KafkaClient;
use rdkafka::Message;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use sqlx::PgPool;
use tracing::{Instrument, info, info_span, warn};

use crate::checkpoint::{self, CheckpointError};
use crate::claims::{PartitionClaims, PartitionKey};
use crate::doze::{Doze, IdlePolicy, WakeCause};
use crate::exchange::StatePublisher;
use crate::gears::{Gears, ReaderNames};
use crate::incarnation::{self, RecordStamp, Verdict};
use crate::source::{TopicPartitions, start_reading, stop_reading};
use crate::undecodable::{Undecodable, UndecodableError, UndecodablePolicy};
use outbox_relay::{RELAYED_CHANNEL, Wakeups};
use projector::Projection;
use projector::{ActorId, ActorState, FoldError, FoldOutcome, PartitionFold, SkipReason};

#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    pub kafka: KafkaClient,
    /// The client of the consumer that reads while far behind ([`gears`](crate::gears)):
    /// `kafka` with a long fetch wait. None: one consumer always.
    pub catch_up_kafka: Option<KafkaClient>,
    pub region: RegionId,
    pub events_topic: String,
    /// Names the region's projector processes in their partition claims and on the broker.
    pub group: String,
    /// A checkpoint is committed after this many records...
    pub commit_every: usize,
    /// ...or this long after the first uncommitted one, whichever comes first.
    pub commit_interval: Duration,
    /// Every assigned partition's state is republished this often, traffic or not, so other
    /// nodes can tell a quiet region from a silent one.
    pub heartbeat: Duration,
    /// What to do with a record that is not an event this build can read.
    pub undecodable: UndecodablePolicy,
    /// Where `dead-letter` copies such records.
    pub dead_letter_topic: String,
    /// When a caught-up projector with nothing to read stops fetching.
    pub idle: IdlePolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Fold(#[from] FoldError),
    #[error(transparent)]
    Undecodable(#[from] UndecodableError),
}

/// One partition being folded by this process.
struct Owned {
    fold: PartitionFold,
    next: ReadPoint,
    dirty: bool,
    /// False while it waits to learn whether its topic is still the incarnation `next` was
    /// read from: it is not read meanwhile.
    checked: bool,
}

impl Owned {
    /// The record last consumed, by which the partition's incarnation is recognized.
    fn last_record(&self) -> Option<RecordStamp> {
        let timestamp_ms = self.next.last_record_ms?;
        Some(RecordStamp {
            offset: self.next.next_offset.checked_sub(1)?,
            timestamp_ms,
        })
    }

    /// True if `message` is the record last consumed, delivered again.
    fn is_last_record(&self, message: &BorrowedMessage<'_>) -> bool {
        self.last_record().is_some_and(|last| {
            incarnation::judge(last, message.offset(), message.timestamp().to_millis())
                == Verdict::Same
        })
    }
}

struct Projector {
    config: ProjectorConfig,
    pool: PgPool,
    projection: Projection,
    publisher: StatePublisher,
    undecodable: Undecodable,
    claims: PartitionClaims,
    partitions: TopicPartitions,
    owned: HashMap<i32, Owned>,
    uncommitted: usize,
    oldest_uncommitted: Option<Instant>,
    last_heartbeat: Instant,
    /// Partitions folded since their state was last published.
    unpublished: BTreeSet<i32>,
    last_publish: Instant,
    doze: Doze,
    /// The consumer's offset fell out of a partition's range since the last check: a
    /// partition with no record to recognize is then a new incarnation too.
    offsets_reset: bool,
    /// When partitions waiting for an incarnation check are checked next.
    next_check: Instant,
}

/// Under a steady stream of records (never a moment with none at hand), states are still
/// published at least this often.
const PUBLISH_AT_LEAST_EVERY: Duration = Duration::from_millis(10);

/// While catching up, a checkpoint waits for this many times `commit_every` records...
const CATCH_UP_COMMIT_FACTOR: usize = 100;
/// ...or this long.
const CATCH_UP_COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// How long an incarnation check waits for the broker; undecided partitions are checked again
/// at the next heartbeat.
const INCARNATION_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// How soon the listener for the relay's notifications tries again after losing PostgreSQL.
const LISTENER_RETRY: Duration = Duration::from_secs(1);

/// Runs until `shutdown`, then commits what it folded.
pub async fn run_projector(
    config: ProjectorConfig,
    pool: PgPool,
    projection: Projection,
    publisher: StatePublisher,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProjectorError> {
    let mut gears = Gears::new(
        &config.kafka,
        config.catch_up_kafka.as_ref(),
        &config.group,
        ReaderNames {
            tail: "projector",
            bulk: "projector_catch_up",
            lag_metric: "projector_consumer_lag",
        },
    )?;
    let undecodable = Undecodable::new(
        config.undecodable,
        &config.kafka,
        &config.dead_letter_topic,
        &config.group,
    )?;
    info!(topic = %config.events_topic, group = %config.group, "projector started");
    let claims = PartitionClaims::new(pool.clone(), config.group.clone());
    let partitions = TopicPartitions::new(vec![config.events_topic.clone()]);
    let relayed = Wakeups::spawn(pool.clone(), RELAYED_CHANNEL, LISTENER_RETRY);
    let doze = Doze::new("projector", config.idle);
    let mut projector = Projector {
        config,
        pool,
        claims,
        partitions,
        projection,
        publisher,
        undecodable,
        owned: HashMap::new(),
        uncommitted: 0,
        oldest_uncommitted: None,
        last_heartbeat: Instant::now(),
        unpublished: BTreeSet::new(),
        last_publish: Instant::now(),
        doze,
        offsets_reset: false,
        next_check: Instant::now(),
    };
    let mut shutdown = std::pin::pin!(shutdown);
    projector.heartbeat(&gears).await?;
    loop {
        // With states to publish, only take a record already at hand; none means the burst
        // is folded: publish now.
        let wait = if projector.unpublished.is_empty() {
            projector
                .time_to_commit()
                .min(projector.doze.next_decision())
        } else {
            Duration::ZERO
        };
        let asleep = projector.doze.is_asleep();
        let consumer = gears.reader();
        let received = tokio::select! {
            biased;
            () = shutdown.as_mut() => break,
            () = relayed.notified(), if asleep => {
                projector.wake(&gears, WakeCause::Told)?;
                continue;
            }
            received = tokio::time::timeout(wait, consumer.recv()) => received,
        };
        match received {
            Ok(Ok(message)) => {
                projector.doze.stir();
                projector.fold(&message).await?;
            }
            Ok(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                // librdkafka does not say which partition: check them all.
                warn!(
                    "projector: a partition's read point is out of its range; checking the topic's incarnation"
                );
                projector.offsets_reset = true;
                projector.uncheck_all();
            }
            Ok(Err(error)) => {
                warn!(%error, "projector: consumer error");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_elapsed) => projector.publish_unpublished().await,
        }
        if projector.last_publish.elapsed() >= PUBLISH_AT_LEAST_EVERY {
            projector.publish_unpublished().await;
        }
        if projector.next_check <= Instant::now()
            && projector.owned.values().any(|owned| !owned.checked)
        {
            projector.check_incarnations(&gears).await?;
        }
        if projector.commit_due() {
            projector.commit_with_retry().await;
        }
        if projector.last_heartbeat.elapsed() >= projector.config.heartbeat {
            projector.heartbeat(&gears).await?;
        }
        gears.shift_if_due(|| projector.positions(), projector.doze.is_asleep())?;
        if projector.doze.is_asleep() && !gears.caught_up(&projector.positions()) {
            // A fetch answered after it fell asleep (a tip's patience can run out before a
            // slow broker's answer comes) says records are waiting.
            projector.wake(&gears, WakeCause::Behind)?;
        }
        projector.idle(&gears)?;
    }
    projector.commit_with_retry().await;
    info!("projector stopped");
    Ok(())
}

impl Projector {
    /// Stops fetching once caught up, with everything folded committed and published, and
    /// nothing read for the idle policy's time; looks again when that policy says so.
    fn idle(&mut self, gears: &Gears) -> KafkaResult<()> {
        if self.doze.should_look() {
            return self.wake(gears, WakeCause::Look);
        }
        if self.doze.should_sleep()
            && self.projection.is_caught_up()
            && self.uncommitted == 0
            && self.unpublished.is_empty()
            // Not while the broker's last high watermark says records are waiting: sleeping
            // would drop the fetch bringing them.
            && gears.caught_up(&self.positions())
        {
            return self.doze.sleep(gears.reader());
        }
        Ok(())
    }

    /// Each owned partition read (not waiting for a check) with the offset it reads next.
    fn positions(&self) -> Vec<(PartitionKey, i64)> {
        let topic = &self.config.events_topic;
        self.owned
            .iter()
            .filter(|(_, owned)| owned.checked)
            .map(|(partition, owned)| ((topic.clone(), *partition), owned.next.next_offset))
            .collect()
    }

    /// Every owned partition waits for an incarnation check.
    fn uncheck_all(&mut self) {
        for owned in self.owned.values_mut() {
            owned.checked = false;
        }
    }

    /// Checks the incarnation of every owned partition waiting for it: the same one is read
    /// on from its read point, a new one from offset zero (its fold keeps everything applied,
    /// so records read again are duplicates); undecided ones wait for the next heartbeat.
    async fn check_incarnations(&mut self, gears: &Gears) -> Result<(), ProjectorError> {
        let topic = self.config.events_topic.clone();
        let waiting: Vec<i32> = self
            .owned
            .iter()
            .filter(|(_, owned)| !owned.checked)
            .map(|(partition, _)| *partition)
            .collect();
        let keys: Vec<PartitionKey> = waiting.iter().map(|p| (topic.clone(), *p)).collect();
        stop_reading(gears.reader(), &keys)?;
        let stamps: Vec<(i32, RecordStamp)> = waiting
            .iter()
            .filter_map(|p| Some((*p, self.owned.get(p)?.last_record()?)))
            .collect();
        let verdicts = incarnation::check(
            &self.config.kafka,
            &topic,
            &stamps,
            INCARNATION_CHECK_TIMEOUT,
        )
        .await;
        let mut starts = Vec::new();
        let mut undecided = 0;
        for partition in waiting {
            let Some(owned) = self.owned.get_mut(&partition) else {
                continue;
            };
            let verdict = match verdicts.get(&partition) {
                Some(verdict) => *verdict,
                // Nothing to recognize: only an offset out of range tells it is gone.
                None if self.offsets_reset && owned.next.next_offset > 0 => Verdict::Replaced,
                None => Verdict::Same,
            };
            match verdict {
                Verdict::Same => {}
                Verdict::Replaced => {
                    warn!(
                        topic,
                        partition,
                        abandoned_offset = owned.next.next_offset,
                        "projector: the partition is a new incarnation of its topic (deleted and \
                         created again): reading it again from offset 0"
                    );
                    metrics::counter!("topic_incarnations_total", "reader" => "projector")
                        .increment(1);
                    owned.fold.start_new_incarnation();
                    owned.next = owned.next.next_incarnation();
                    owned.dirty = true;
                    self.oldest_uncommitted.get_or_insert_with(Instant::now);
                }
                Verdict::Unknown => {
                    undecided += 1;
                    continue;
                }
            }
            owned.checked = true;
            starts.push(((topic.clone(), partition), owned.next.next_offset));
        }
        if undecided == 0 {
            self.offsets_reset = false;
        } else {
            warn!(
                topic,
                partitions = undecided,
                "projector: the broker did not answer an incarnation check; those partitions wait"
            );
            self.next_check = Instant::now() + self.config.heartbeat;
        }
        if starts.is_empty() {
            return Ok(());
        }
        if self.doze.is_asleep() {
            Ok(self.wake(gears, WakeCause::Assignment)?)
        } else {
            start_reading(gears.reader(), &starts)?;
            self.doze.stir();
            Ok(())
        }
    }

    /// Reads every owned partition again, from the offset after the last one folded.
    fn wake(&mut self, gears: &Gears, cause: WakeCause) -> KafkaResult<()> {
        let starts = self.positions();
        self.doze.wake(gears.reader(), &starts, cause)
    }

    async fn fold(&mut self, message: &BorrowedMessage<'_>) -> Result<(), ProjectorError> {
        let partition = message.partition();
        // A record of a partition handed over a moment ago: its new owner folds it.
        let Some(owned) = self.owned.get_mut(&partition) else {
            return Ok(());
        };
        if !owned.checked {
            // Read again from its read point once checked.
            return Ok(());
        }
        if message.offset() < owned.next.next_offset {
            metrics::counter!("projector_redelivered_total").increment(1);
            if !owned.is_last_record(message) {
                // Below the read point and not the record last consumed: the topic may have
                // been created again.
                owned.checked = false;
            }
            return Ok(());
        }
        // Decoded here so an undecodable record follows the configured policy: the fold
        // never sees it unless it was dead-lettered (then only its offset is consumed).
        let decoded = match message.payload() {
            Some(payload) => EventEnvelope::decode(payload).map_err(|e| e.to_string()),
            None => Err("the record has no payload".to_owned()),
        };
        let outcome = match decoded {
            Ok(envelope) => owned.fold.apply(message.offset(), &envelope),
            Err(reason) => {
                self.undecodable.handle(message, &reason).await?;
                let reason = SkipReason::Malformed(format!("dead-lettered: {reason}"));
                owned.fold.skip(message.offset(), reason)
            }
        };
        metrics::counter!("projector_events_folded_total", "outcome" => outcome_label(&outcome))
            .increment(1);
        owned
            .next
            .consumed(message.offset(), message.timestamp().to_millis());
        owned.dirty = true;
        self.unpublished.insert(partition);
        self.uncommitted += 1;
        self.oldest_uncommitted.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Publishes and merges the state of every partition folded since its last publication.
    async fn publish_unpublished(&mut self) {
        self.last_publish = Instant::now();
        if self.unpublished.is_empty() {
            return;
        }
        let states: Vec<ActorState> = std::mem::take(&mut self.unpublished)
            .into_iter()
            .filter_map(|partition| self.owned.get(&partition))
            .map(|owned| owned.fold.state())
            .collect();
        for state in &states {
            self.publisher.publish(state);
        }
        self.projection.observe(states).await;
    }

    /// The partition's committed fold, or a fresh one; its state is published right away so
    /// the other regions learn about a new owner's actor without waiting for traffic.
    async fn load(&self, partition: i32) -> Result<Owned, ProjectorError> {
        let (fold, next) = match self.load_checkpoint(partition).await? {
            Some((fold, next)) => (fold, next),
            None => {
                let mut fold =
                    PartitionFold::new(ActorId::new(self.config.region.clone(), partition));
                fold.track_changes(false);
                (fold, ReadPoint::default())
            }
        };
        info!(
            partition,
            next_offset = next.next_offset,
            incarnation = next.incarnation,
            "projector: partition loaded"
        );
        let state = fold.state();
        self.publisher.publish(&state);
        self.projection.observe([state]).await;
        Ok(Owned {
            fold,
            // A record to recognize: the topic may have been created again meanwhile.
            checked: next.last_record_ms.is_none(),
            next,
            dirty: false,
        })
    }

    /// A database outage delays folding instead of ending it; a corrupt checkpoint is fatal.
    async fn load_checkpoint(
        &self,
        partition: i32,
    ) -> Result<Option<(PartitionFold, ReadPoint)>, ProjectorError> {
        let mut delay = Duration::from_millis(100);
        loop {
            let (region, topic) = (&self.config.region, &self.config.events_topic);
            match checkpoint::load(&self.pool, region, topic, partition).await {
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
                .commit_policy()
                .1
                .saturating_sub(since.elapsed())
                .min(heartbeat),
            None => heartbeat,
        }
    }

    /// How many records, or how long, a checkpoint may wait. While the node catches up (a
    /// fresh node, or one that was down), commits are fewer and larger: a crash then folds
    /// at most a second's records again, and the catch-up does not spend its time committing.
    fn commit_policy(&self) -> (usize, Duration) {
        let (every, interval) = (self.config.commit_every, self.config.commit_interval);
        if self.projection.is_caught_up() {
            (every, interval)
        } else {
            (
                every.saturating_mul(CATCH_UP_COMMIT_FACTOR),
                interval.max(CATCH_UP_COMMIT_INTERVAL),
            )
        }
    }

    /// Commits, takes or hands over partitions as the claims say, and republishes every
    /// owned partition's (committed) state.
    async fn heartbeat(&mut self, gears: &Gears) -> Result<(), ProjectorError> {
        self.last_heartbeat = Instant::now();
        self.commit_with_retry().await;
        self.rebalance(gears).await?;
        if !self.projection.is_caught_up()
            && self.claims.joined()
            && !self.partitions.known().is_empty()
        {
            let positions = self.positions();
            if gears.caught_up(&positions) {
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
        let (every, interval) = self.commit_policy();
        self.uncommitted >= every
            || self
                .oldest_uncommitted
                .is_some_and(|since| since.elapsed() >= interval)
    }

    /// Looks the partitions up now and then, stops folding those this process no longer holds
    /// (committing first those it hands over), and starts folding those it took, each from its
    /// checkpoint.
    async fn rebalance(&mut self, gears: &Gears) -> Result<(), ProjectorError> {
        let consumer = gears.reader();
        self.partitions.refresh(consumer).await;
        let review = self.claims.review(self.partitions.known()).await;
        if !review.surplus.is_empty() {
            self.commit_with_retry().await;
        }
        let stopped: Vec<PartitionKey> =
            review.lost.iter().chain(&review.surplus).cloned().collect();
        stop_reading(consumer, &stopped)?;
        for (_, partition) in &stopped {
            self.owned.remove(partition);
            self.unpublished.remove(partition);
            info!(partition, "projector: partition handed over");
        }
        self.claims.release(&review.surplus).await;
        let mut starts = Vec::new();
        for key in self.claims.claim(self.partitions.known()).await {
            let owned = self.load(key.1).await?;
            if owned.checked {
                starts.push((key.clone(), owned.next.next_offset));
            }
            self.owned.insert(key.1, owned);
        }
        if starts.is_empty() {
            return Ok(());
        }
        if self.doze.is_asleep() {
            // Every owned partition, the new ones included.
            Ok(self.wake(gears, WakeCause::Assignment)?)
        } else {
            start_reading(consumer, &starts)?;
            self.doze.stir();
            Ok(())
        }
    }

    /// Commits until it works: the fold must not run ahead of what is durable for long.
    async fn commit_with_retry(&mut self) {
        let mut delay = Duration::from_millis(100);
        while let Err(error) = self.commit().await {
            warn!(%error, retry_in_ms = delay.as_millis(), "projector: checkpoint commit failed");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn commit(&mut self) -> Result<(), sqlx::Error> {
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
        let written = async {
            let mut tx = self.pool.begin().await?;
            let mut written = Vec::with_capacity(dirty.len());
            for partition in &dirty {
                let Some(owned) = self.owned.get(partition) else {
                    continue;
                };
                let parts = owned
                    .fold
                    .checkpoint_parts()
                    .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
                metrics::counter!("projector_checkpoint_rows_total")
                    .increment(parts.changed.len() as u64);
                let saved = checkpoint::save(
                    &mut tx,
                    &self.config.region,
                    &self.config.events_topic,
                    *partition,
                    owned.next,
                    &parts,
                )
                .await?;
                if saved {
                    written.push(*partition);
                } else {
                    warn!(partition, "projector: a newer checkpoint of this partition exists (another owner); changes kept for the next commit");
                }
            }
            tx.commit().await?;
            Ok::<Vec<i32>, sqlx::Error>(written)
        }
        .instrument(span)
        .await?;
        for partition in &written {
            if let Some(owned) = self.owned.get_mut(partition) {
                owned.fold.mark_checkpointed();
            }
        }
        metrics::histogram!("projector_commit_seconds").record(started.elapsed().as_secs_f64());

        for partition in &dirty {
            if let Some(owned) = self.owned.get_mut(partition) {
                owned.dirty = false;
            }
        }
        // Published when folded, unless the commit came first (then now).
        self.publish_unpublished().await;
        self.uncommitted = 0;
        self.oldest_uncommitted = None;
        Ok(())
    }
}

fn outcome_label(outcome: &FoldOutcome) -> &'static str {
    match outcome {
        FoldOutcome::Applied => "applied",
        FoldOutcome::Duplicate { .. } => "duplicate",
        FoldOutcome::Held { .. } => "held",
        FoldOutcome::Skipped(_) => "skipped",
    }
}
