//! Keeps this node's catalogue (names, provider, lifecycle, status, where each model is served)
//! current with every region's events, its own included: apply is idempotent per stream
//! sequence, so events this node already applied when appending them change nothing.
//!
//! The node's processes share the partitions out through advisory locks in the node's
//! database ([`claims`](crate::claims)); each partition is read from the offset the catalogue
//! recorded with the last batch it applied.
//!
//! A partition whose topic may have been created again (a record below the recorded offset
//! arrived, or the consumer's offset fell out of range) waits for an
//! [`incarnation`](crate::incarnation) check before it is read again, from offset zero if the
//! record last applied is gone: applying is idempotent, so only what the catalogue lacks
//! changes it.
//!
//! A follower that read nothing for a while stops fetching ([`doze`](crate::doze)); the actor
//! states the node merges wake it: a watermark beyond the offset it reached on that region's
//! partition means the partition has records it has not read. Far behind, it reads with a
//! long fetch wait ([`gears`](crate::gears)).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{EventEnvelope, EventPayload, RegionId};
use event_store::catalogue::{self, TopicOffsets, apply_batch_to_catalogue};
use event_store::event_log::{self, LoggedEvent};
use event_store::{GrowthAnalyzer, ReadPoint};
use kafka_client::KafkaClient;
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use sqlx::PgPool;
use tracing::{Instrument, info_span, warn};

use crate::batch;
use crate::claims::{PartitionClaims, PartitionKey};
use crate::doze::{Doze, IdlePolicy, WakeCause};
use crate::gears::{Gears, ReaderNames};
use crate::incarnation::{self, RecordStamp, Verdict};
use crate::retired::RetiredModels;
use crate::source::{Reader, TopicPartitions, start_reading, stop_reading};
use crate::undecodable::{Undecodable, UndecodableError, UndecodablePolicy};
use projector::{ActorId, ChangeFeed, ChangeNotice, Projection};
use tokio::sync::broadcast::error::RecvError;

/// How the follower connects and whom it tells about retirements.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    pub kafka: KafkaClient,
    /// The client of the consumer that reads while far behind ([`gears`](crate::gears)):
    /// `kafka` with a long fetch wait. None: one consumer always.
    pub catch_up_kafka: Option<KafkaClient>,
    /// Names the node's followers in their partition claims and on the broker: one name per
    /// node, so every node sees every event.
    pub group: String,
    /// Every region's events topic, after its region.
    pub region_topics: Vec<(RegionId, String)>,
    /// Messages folded per database transaction, at most.
    pub batch_size: usize,
    /// What to do with a record that is not an event this build can read.
    pub undecodable: UndecodablePolicy,
    /// Where `dead-letter` copies such records.
    pub dead_letter_topic: String,
    /// When a follower with nothing to read stops fetching.
    pub idle: IdlePolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum FollowerError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Undecodable(#[from] UndecodableError),
}

/// How often the follower reviews its partition claims (and an idle one wakes up to do so).
const CLAIMS_REVIEW: Duration = Duration::from_secs(1);

/// How long a batch waits for one more message.
const BATCH_LINGER: Duration = Duration::from_millis(2);

/// How long an incarnation check waits for the broker; undecided partitions are checked again
/// at the next claims review.
const INCARNATION_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Follows the topics until `shutdown`; `retirements` hears of the models a batch retired, so
/// the withdrawal worker can act at once; `feed` hears of every event once it is
/// durable in the catalogue; `projection`'s merged states wake it when it idles.
pub async fn follow_catalogue(
    config: FollowerConfig,
    pool: PgPool,
    projection: Projection,
    retirements: Arc<RetiredModels>,
    feed: ChangeFeed,
    shutdown: impl Future<Output = ()>,
) -> Result<(), FollowerError> {
    let mut next_offsets = TopicOffsets::new();
    let mut unchecked = Unchecked::default();
    let mut gears = Gears::new(
        &config.kafka,
        config.catch_up_kafka.as_ref(),
        &config.group,
        ReaderNames {
            tail: "catalogue",
            bulk: "catalogue_catch_up",
            lag_metric: "catalogue_consumer_lag",
        },
    )?;
    let topics = config
        .region_topics
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    let mut claims = Claimed {
        claims: PartitionClaims::new(pool.clone(), config.group.clone()),
        partitions: TopicPartitions::new(topics),
        last_review: None,
    };
    let mut doze = Doze::new("catalogue", config.idle);
    let mut heard = projection.subscribe();
    let undecodable = Undecodable::new(
        config.undecodable,
        &config.kafka,
        &config.dead_letter_topic,
        &config.group,
    )?;
    let mut analyzer = GrowthAnalyzer::catalogue_and_event_log();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        if claims.review_due() {
            claims
                .review(
                    gears.reader(),
                    &pool,
                    &mut next_offsets,
                    &mut unchecked,
                    &mut doze,
                )
                .await?;
            unchecked.due = true;
        }
        if unchecked.due && !unchecked.points.is_empty() {
            unchecked
                .check(&config.kafka, gears.reader(), &mut next_offsets, &mut doze)
                .await?;
        }
        gears.shift_if_due(|| read_from(&next_offsets), doze.is_asleep())?;
        let consumer = gears.reader();
        if doze.is_asleep() && !gears.caught_up(&read_from(&next_offsets)) {
            // A fetch answered after it fell asleep says records are waiting.
            doze.wake(consumer, &read_from(&next_offsets), WakeCause::Behind)?;
        } else if doze.should_look() {
            doze.wake(consumer, &read_from(&next_offsets), WakeCause::Look)?;
        } else if doze.should_sleep()
            && (!gears.caught_up(&read_from(&next_offsets))
                || behind(&projection, &config.region_topics, &next_offsets).await)
        {
            // Records it has not read are known to be there (the broker's last high watermark,
            // or a merged state's): sleeping would drop the fetch bringing them (a slow
            // broker's answer can take longer than the idle time).
            doze.stir();
        } else if doze.should_sleep() {
            doze.sleep(consumer)?;
            // Changes from now on come on a fresh receiver; those announced while it read are
            // in the watermarks now, including one whose records it had not fetched yet.
            heard = heard.resubscribe();
            if behind(&projection, &config.region_topics, &next_offsets).await {
                doze.wake(consumer, &read_from(&next_offsets), WakeCause::Told)?;
            }
        }
        let asleep = doze.is_asleep();
        let first = tokio::select! {
            () = shutdown.as_mut() => return Ok(()),
            received = consumer.recv() => received,
            changed = heard.recv(), if asleep => {
                let lagged = matches!(changed, Err(RecvError::Lagged(_)));
                if lagged || behind(&projection, &config.region_topics, &next_offsets).await {
                    doze.wake(consumer, &read_from(&next_offsets), WakeCause::Told)?;
                }
                continue;
            }
            () = tokio::time::sleep(CLAIMS_REVIEW.min(doze.next_decision())) => continue,
        };
        doze.stir();
        let first = match first {
            Ok(message) => message,
            Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset)) => {
                // librdkafka does not say which partition: check them all.
                warn!(
                    "catalogue follower: a partition's offset is out of its range; checking the topics' incarnations"
                );
                unchecked.offsets_reset = true;
                unchecked.hold(gears.reader(), &mut next_offsets, None)?;
                continue;
            }
            Err(error) => {
                warn!(%error, "catalogue follower: consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let batch = batch::fill(consumer.as_ref(), first, config.batch_size, BATCH_LINGER).await;
        let span = info_span!("catalogue_batch", messages = batch.len());
        let mut suspects = HashSet::new();
        let applied = apply_batch(
            &pool,
            &batch,
            &mut next_offsets,
            &mut suspects,
            &undecodable,
        )
        .instrument(span)
        .await;
        if !suspects.is_empty() {
            unchecked.hold(gears.reader(), &mut next_offsets, Some(&suspects))?;
        }
        match applied {
            Ok(Applied { applied, stopped }) => {
                retirements.add(
                    applied
                        .iter()
                        .filter(|e| matches!(e.event, EventPayload::ModelRetired))
                        .map(|e| e.model_id.as_str()),
                );
                analyzer.wrote(&pool, applied.len() as u64).await;
                announce(&pool, &feed, &applied).await;
                if let Some(undecodable) = stopped {
                    return Err(undecodable.into());
                }
            }
            Err(error) => {
                warn!(%error, "catalogue follower: batch not applied; re-reading");
                if let Ok(recorded) = catalogue::load_offsets(&pool).await {
                    for (key, next) in next_offsets.iter_mut() {
                        *next = recorded.get(key).copied().unwrap_or_default();
                    }
                }
                rewind(consumer, &batch);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The follower's partition claims and when it last reviewed them.
struct Claimed {
    claims: PartitionClaims,
    partitions: TopicPartitions,
    last_review: Option<Instant>,
}

impl Claimed {
    fn review_due(&self) -> bool {
        self.last_review
            .is_none_or(|at| at.elapsed() >= CLAIMS_REVIEW)
    }

    /// Stops reading the partitions this process no longer holds and starts reading those it
    /// took, each from the offset the catalogue recorded for it.
    async fn review(
        &mut self,
        consumer: &Arc<Reader>,
        pool: &PgPool,
        next_offsets: &mut TopicOffsets,
        unchecked: &mut Unchecked,
        doze: &mut Doze,
    ) -> Result<(), FollowerError> {
        self.last_review = Some(Instant::now());
        self.partitions.refresh(consumer).await;
        let review = self.claims.review(self.partitions.known()).await;
        let stopped: Vec<PartitionKey> = review
            .lost
            .into_iter()
            .chain(review.surplus.clone())
            .collect();
        stop_reading(consumer, &stopped)?;
        for key in &stopped {
            next_offsets.remove(key);
            unchecked.points.remove(key);
        }
        self.claims.release(&review.surplus).await;
        let gained = self.claims.claim(self.partitions.known()).await;
        if gained.is_empty() {
            return Ok(());
        }
        // Another process may have applied these partitions further since this one last did.
        let recorded = catalogue::load_offsets(pool).await?;
        let mut starts: Vec<(PartitionKey, i64)> = Vec::new();
        for key in gained {
            let next = recorded.get(&key).copied().unwrap_or_default();
            if next.last_record_ms.is_some() {
                // A record to recognize: the topic may have been created again meanwhile.
                unchecked.points.insert(key, next);
            } else {
                next_offsets.insert(key.clone(), next);
                starts.push((key, next.next_offset));
            }
        }
        if starts.is_empty() {
            return Ok(());
        }
        if doze.is_asleep() {
            // Every partition it holds, the new ones included.
            doze.wake(consumer, &read_from(next_offsets), WakeCause::Assignment)?;
        } else {
            start_reading(consumer, &starts)?;
            doze.stir();
        }
        Ok(())
    }
}

/// Where each partition the follower reads is read from.
fn read_from(next_offsets: &TopicOffsets) -> Vec<(PartitionKey, i64)> {
    next_offsets
        .iter()
        .map(|(key, next)| (key.clone(), next.next_offset))
        .collect()
}

/// Partitions the follower holds but does not read until their topic's incarnation is checked.
#[derive(Debug, Default)]
struct Unchecked {
    points: TopicOffsets,
    /// The consumer's offset fell out of a partition's range since the last check: a
    /// partition with no record to recognize is then a new incarnation too.
    offsets_reset: bool,
    /// Check at the next turn (set by every claims review and by every new suspect).
    due: bool,
}

impl Unchecked {
    /// Stops reading `keys` (None: every partition read) until they are checked.
    fn hold(
        &mut self,
        consumer: &Reader,
        next_offsets: &mut TopicOffsets,
        keys: Option<&HashSet<PartitionKey>>,
    ) -> Result<(), KafkaError> {
        let held: Vec<PartitionKey> = next_offsets
            .keys()
            .filter(|key| keys.is_none_or(|keys| keys.contains(*key)))
            .cloned()
            .collect();
        stop_reading(consumer, &held)?;
        for key in held {
            if let Some(point) = next_offsets.remove(&key) {
                self.points.insert(key, point);
            }
        }
        self.due = true;
        Ok(())
    }

    /// Checks every held partition: the same incarnation is read on from its offset, a new
    /// one from offset zero; undecided ones wait for the next claims review.
    async fn check(
        &mut self,
        kafka: &KafkaClient,
        consumer: &Arc<Reader>,
        next_offsets: &mut TopicOffsets,
        doze: &mut Doze,
    ) -> Result<(), KafkaError> {
        self.due = false;
        let mut by_topic: HashMap<String, Vec<(i32, RecordStamp)>> = HashMap::new();
        for ((topic, partition), point) in &self.points {
            if let Some(stamp) = last_record(point) {
                by_topic
                    .entry(topic.clone())
                    .or_default()
                    .push((*partition, stamp));
            }
        }
        let mut verdicts: HashMap<PartitionKey, Verdict> = HashMap::new();
        for (topic, stamps) in by_topic {
            let found = incarnation::check(kafka, &topic, &stamps, INCARNATION_CHECK_TIMEOUT).await;
            verdicts.extend(found.into_iter().map(|(p, v)| ((topic.clone(), p), v)));
        }
        let mut starts = Vec::new();
        let keys: Vec<PartitionKey> = self.points.keys().cloned().collect();
        for key in keys {
            let Some(point) = self.points.get(&key).copied() else {
                continue;
            };
            let verdict = match verdicts.get(&key) {
                Some(verdict) => *verdict,
                None if self.offsets_reset && point.next_offset > 0 => Verdict::Replaced,
                None => Verdict::Same,
            };
            let next = match verdict {
                Verdict::Same => point,
                Verdict::Replaced => {
                    warn!(
                        topic = key.0,
                        partition = key.1,
                        abandoned_offset = point.next_offset,
                        "catalogue follower: the partition is a new incarnation of its topic \
                         (deleted and created again): reading it again from offset 0"
                    );
                    metrics::counter!("topic_incarnations_total", "reader" => "catalogue")
                        .increment(1);
                    point.next_incarnation()
                }
                Verdict::Unknown => continue,
            };
            self.points.remove(&key);
            next_offsets.insert(key.clone(), next);
            starts.push((key, next.next_offset));
        }
        if self.points.is_empty() {
            self.offsets_reset = false;
        }
        if starts.is_empty() {
            return Ok(());
        }
        if doze.is_asleep() {
            doze.wake(consumer, &read_from(next_offsets), WakeCause::Assignment)?;
        } else {
            start_reading(consumer, &starts)?;
            doze.stir();
        }
        Ok(())
    }
}

/// The record last applied on a partition, by which its incarnation is recognized.
fn last_record(point: &ReadPoint) -> Option<RecordStamp> {
    Some(RecordStamp {
        offset: point.next_offset.checked_sub(1)?,
        timestamp_ms: point.last_record_ms?,
    })
}

/// True if a merged actor state has folded one of the follower's partitions beyond the offset
/// the follower reached there: the partition holds records it has not read.
async fn behind(
    projection: &Projection,
    region_topics: &[(RegionId, String)],
    next_offsets: &TopicOffsets,
) -> bool {
    for ((topic, partition), next) in next_offsets {
        let Some((region, _)) = region_topics.iter().find(|(_, t)| t == topic) else {
            continue;
        };
        let actor = ActorId::new(region.clone(), *partition);
        let folded = projection.watermark(&actor).await.and_then(|w| w.offset);
        if folded.is_some_and(|offset| offset >= next.next_offset) {
            return true;
        }
    }
    false
}

/// What a batch did.
struct Applied {
    /// The events applied, in batch order.
    applied: Vec<EventEnvelope>,
    /// The batch stopped before this undecodable record (policy `fail`, or its dead-letter
    /// copy failed): what came before it is committed, it and what follows are not.
    stopped: Option<UndecodableError>,
}

/// Applies the batch in one transaction with the offsets it reached.
async fn apply_batch(
    pool: &PgPool,
    batch: &[BorrowedMessage<'_>],
    next_offsets: &mut TopicOffsets,
    suspects: &mut HashSet<PartitionKey>,
    undecodable: &Undecodable,
) -> Result<Applied, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut reached = TopicOffsets::new();
    let mut logged = Vec::with_capacity(batch.len());
    let mut stopped = None;
    for message in batch {
        let key = (message.topic().to_owned(), message.partition());
        // Of a partition handed over a moment ago, or held for a check.
        let Some(point) = reached
            .get(&key)
            .or_else(|| next_offsets.get(&key))
            .copied()
        else {
            continue;
        };
        if suspects.contains(&key) {
            continue;
        }
        if message.offset() < point.next_offset {
            // Below what the catalogue has: a re-delivery, unless it is not the record last
            // applied there (then the topic may have been created again).
            let again = last_record(&point).is_some_and(|last| {
                incarnation::judge(last, message.offset(), message.timestamp().to_millis())
                    == Verdict::Same
            });
            if !again {
                suspects.insert(key);
            }
            continue;
        }
        let decoded = match message.payload() {
            Some(payload) => EventEnvelope::decode(payload).map_err(|e| e.to_string()),
            None => Err("the record has no payload".to_owned()),
        };
        match decoded {
            Ok(envelope) => {
                logged.push(LoggedEvent {
                    partition: message.partition(),
                    offset: message.offset(),
                    envelope,
                });
            }
            Err(reason) => {
                if let Err(error) = undecodable.handle(message, &reason).await {
                    stopped = Some(error);
                    break;
                }
            }
        }
        let mut next = point;
        next.consumed(message.offset(), message.timestamp().to_millis());
        reached.insert(key, next);
    }
    // The whole batch in a few multi-row statements: the same rows as event by event.
    let envelopes: Vec<&EventEnvelope> = logged.iter().map(|l| &l.envelope).collect();
    apply_batch_to_catalogue(&mut tx, &envelopes).await?;
    event_log::insert(&mut tx, &logged).await?;
    catalogue::save_offsets(&mut tx, &reached).await?;
    tx.commit().await?;
    metrics::counter!("catalogue_events_applied_total").increment(logged.len() as u64);
    next_offsets.extend(reached);
    Ok(Applied {
        applied: logged.into_iter().map(|logged| logged.envelope).collect(),
        stopped,
    })
}

/// Tells the feed about a committed batch, with each model's provider and names as the
/// catalogue now has them. A failed look-up still announces the events, without names.
async fn announce(pool: &PgPool, feed: &ChangeFeed, applied: &[EventEnvelope]) {
    if applied.is_empty() {
        return;
    }
    let ids: Vec<&str> = applied.iter().map(|e| e.model_id.as_str()).collect();
    let known = catalogue::names(pool, &ids).await.unwrap_or_else(|error| {
        warn!(%error, "change feed: names not found");
        HashMap::new()
    });
    feed.announce(applied.iter().map(|envelope| {
        let mut notice = ChangeNotice::new(envelope);
        if let Some((provider, name)) = known.get(envelope.model_id.as_str()) {
            notice.provider = Some(provider.clone());
            notice.name = Some(name.clone());
        }
        notice
    }));
}

/// After a failed batch, read it again from its first message per partition.
fn rewind(consumer: &Reader, batch: &[BorrowedMessage<'_>]) {
    let mut first: HashMap<(String, i32), i64> = HashMap::new();
    for message in batch {
        first
            .entry((message.topic().to_owned(), message.partition()))
            .or_insert(message.offset());
    }
    for ((topic, partition), offset) in first {
        if let Err(error) = consumer.seek(
            &topic,
            partition,
            rdkafka::Offset::Offset(offset),
            Duration::from_secs(1),
        ) {
            warn!(%error, topic, partition, "could not rewind after a failed batch");
        }
    }
}
