//! Keeps this node's catalogue (names, provider, lifecycle, status, where each model is served)
//! current with every region's events, its own included: apply is idempotent per stream
//! sequence, so events this node already applied when appending them change nothing.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use domain::{EventEnvelope, EventPayload};
use event_store::catalogue::{self, TopicOffsets, apply_batch_to_catalogue};
use event_store::event_log::{self, LoggedEvent};
use kafka_client::KafkaClient;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use sqlx::PgPool;
use tokio::sync::Notify;
use tracing::{Instrument, info_span, warn};

use crate::batch;
use crate::source::{ExplicitOffsets, group_config, leave_group};
use crate::undecodable::{Undecodable, UndecodableError, UndecodablePolicy};
use projector::{ChangeFeed, ChangeNotice};

/// How the follower connects and whom it tells about retirements.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    pub kafka: KafkaClient,
    /// Consumer group: one per node, so every node sees every event.
    pub group: String,
    /// Every region's events topic.
    pub topics: Vec<String>,
    /// Messages folded per database transaction, at most.
    pub batch_size: usize,
    /// What to do with a record that is not an event this build can read.
    pub undecodable: UndecodablePolicy,
    /// Where `dead-letter` copies such records.
    pub dead_letter_topic: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FollowerError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Undecodable(#[from] UndecodableError),
    #[error("the consumer group has not settled for {0:?}; starting over with a new consumer")]
    GroupUnsettled(Duration),
}

/// How often an idle follower looks at whether its group settled.
const UNSETTLED_CHECK: Duration = Duration::from_secs(1);

/// How long a batch waits for one more message.
const BATCH_LINGER: Duration = Duration::from_millis(2);

/// Follows the topics until `shutdown`; `retirements` is notified after a batch that retired a
/// model, so the withdrawal worker can act at once; `feed` hears of every event once it is
/// durable in the catalogue.
pub async fn follow_catalogue(
    config: FollowerConfig,
    pool: PgPool,
    retirements: Arc<Notify>,
    feed: ChangeFeed,
    shutdown: impl Future<Output = ()>,
) -> Result<(), FollowerError> {
    let mut next_offsets = catalogue::load_offsets(&pool).await?;
    let context = ExplicitOffsets::new(next_offsets.clone(), "catalogue_consumer_lag");
    let consumer: StreamConsumer<ExplicitOffsets> =
        group_config(&config.kafka, &config.group).create_with_context(context)?;
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    let undecodable = Undecodable::new(
        config.undecodable,
        &config.kafka,
        &config.dead_letter_topic,
        &config.group,
    )?;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        if let Some(unsettled) = consumer.context().stuck_unsettled() {
            if !leave_group(consumer, shutdown.as_mut()).await {
                return Ok(());
            }
            return Err(FollowerError::GroupUnsettled(unsettled));
        }
        let first = tokio::select! {
            () = shutdown.as_mut() => return Ok(()),
            received = consumer.recv() => received,
            // Nothing arrives while the group is unsettled: look at it again.
            () = tokio::time::sleep(UNSETTLED_CHECK) => continue,
        };
        let first = match first {
            Ok(message) => message,
            Err(error) => {
                warn!(%error, "catalogue follower: consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let batch = batch::fill(&consumer, first, config.batch_size, BATCH_LINGER).await;
        let span = info_span!("catalogue_batch", messages = batch.len());
        match apply_batch(&pool, &batch, &mut next_offsets, &undecodable)
            .instrument(span)
            .await
        {
            Ok(Applied { applied, stopped }) => {
                for ((topic, partition), next) in &next_offsets {
                    consumer.context().advance(topic, *partition, *next);
                }
                if applied
                    .iter()
                    .any(|e| matches!(e.event, EventPayload::ModelRetired))
                {
                    retirements.notify_one();
                }
                announce(&pool, &feed, &applied).await;
                // Only a hint for the next assignment; PostgreSQL holds the real position.
                let _ = consumer.commit_consumer_state(CommitMode::Async);
                if let Some(undecodable) = stopped {
                    return Err(undecodable.into());
                }
            }
            Err(error) => {
                warn!(%error, "catalogue follower: batch not applied; re-reading");
                next_offsets = catalogue::load_offsets(&pool).await.unwrap_or_default();
                rewind(&consumer, &batch);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
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
    undecodable: &Undecodable,
) -> Result<Applied, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut reached = TopicOffsets::new();
    let mut logged = Vec::with_capacity(batch.len());
    let mut stopped = None;
    for message in batch {
        let key = (message.topic().to_owned(), message.partition());
        if next_offsets
            .get(&key)
            .is_some_and(|next| message.offset() < *next)
        {
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
        reached.insert(key, message.offset() + 1);
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
fn rewind(consumer: &StreamConsumer<ExplicitOffsets>, batch: &[BorrowedMessage<'_>]) {
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
