//! Keeps this node's catalogue (names, provider, lifecycle, status, where each model is served)
//! current with every region's events, its own included: apply is idempotent per stream
//! sequence, so events this node already applied when appending them change nothing.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use domain::{EventEnvelope, EventPayload, LocalizedText};
use event_store::apply_to_catalogue;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use sqlx::PgPool;
use tokio::sync::Notify;
use tracing::{Instrument, info_span, warn};

use super::change_feed::{ChangeFeed, ChangeNotice};
use super::event_log::{self, LoggedEvent};
use super::source::{ExplicitOffsets, group_config};

/// How the follower connects and whom it tells about retirements.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    pub brokers: String,
    /// Consumer group: one per node, so every node sees every event.
    pub group: String,
    /// Every region's events topic.
    pub topics: Vec<String>,
    /// Messages folded per database transaction, at most.
    pub batch_size: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum FollowerError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

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
    let mut next_offsets = load_offsets(&pool).await?;
    let context = ExplicitOffsets::new(next_offsets.clone(), "catalogue_consumer_lag");
    let consumer: StreamConsumer<ExplicitOffsets> =
        group_config(&config.brokers, &config.group).create_with_context(context)?;
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let first = tokio::select! {
            () = shutdown.as_mut() => return Ok(()),
            received = consumer.recv() => received,
        };
        let first = match first {
            Ok(message) => message,
            Err(error) => {
                warn!(%error, "catalogue follower: consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < config.batch_size {
            match tokio::time::timeout(Duration::from_millis(2), consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message),
                _ => break,
            }
        }
        let span = info_span!("catalogue_batch", messages = batch.len());
        match apply_batch(&pool, &batch, &mut next_offsets)
            .instrument(span)
            .await
        {
            Ok(applied) => {
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
            }
            Err(error) => {
                warn!(%error, "catalogue follower: batch not applied; re-reading");
                next_offsets = load_offsets(&pool).await.unwrap_or_default();
                rewind(&consumer, &batch);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

type Offsets = HashMap<(String, i32), i64>;

async fn load_offsets(pool: &PgPool) -> Result<Offsets, sqlx::Error> {
    let rows: Vec<(String, i32, i64)> =
        sqlx::query_as("SELECT topic, partition, next_offset FROM catalogue_offsets")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
}

/// Applies the batch in one transaction with the offsets it reached; answers the events
/// applied.
async fn apply_batch(
    pool: &PgPool,
    batch: &[BorrowedMessage<'_>],
    next_offsets: &mut Offsets,
) -> Result<Vec<EventEnvelope>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut reached = Offsets::new();
    let mut logged = Vec::with_capacity(batch.len());
    for message in batch {
        let key = (message.topic().to_owned(), message.partition());
        if next_offsets
            .get(&key)
            .is_some_and(|next| message.offset() < *next)
        {
            continue;
        }
        match message.payload().map(EventEnvelope::decode) {
            Some(Ok(envelope)) => {
                apply_to_catalogue(&mut tx, &envelope).await?;
                logged.push(LoggedEvent {
                    partition: message.partition(),
                    offset: message.offset(),
                    envelope,
                });
            }
            Some(Err(error)) => {
                warn!(topic = key.0, partition = key.1, offset = message.offset(), %error,
                      "skipping an undecodable event");
                metrics::counter!("catalogue_undecodable_events_total").increment(1);
            }
            None => {}
        }
        reached.insert(key, message.offset() + 1);
    }
    event_log::insert(&mut tx, &logged).await?;
    for ((topic, partition), next) in &reached {
        sqlx::query(
            "INSERT INTO catalogue_offsets (topic, partition, next_offset) VALUES ($1, $2, $3)
             ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset
              WHERE catalogue_offsets.next_offset < excluded.next_offset",
        )
        .bind(topic)
        .bind(partition)
        .bind(next)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    metrics::counter!("catalogue_events_applied_total").increment(batch.len() as u64);
    next_offsets.extend(reached);
    Ok(logged.into_iter().map(|logged| logged.envelope).collect())
}

/// Tells the feed about a committed batch, with each model's provider and names as the
/// catalogue now has them. A failed look-up still announces the events, without names.
async fn announce(pool: &PgPool, feed: &ChangeFeed, applied: &[EventEnvelope]) {
    if applied.is_empty() {
        return;
    }
    let ids: Vec<&str> = applied.iter().map(|e| e.model_id.as_str()).collect();
    let rows: Vec<(String, String, sqlx::types::Json<LocalizedText>)> = sqlx::query_as(
        "SELECT model_id, provider, name FROM catalogue_models WHERE model_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await
    .unwrap_or_else(|error| {
        warn!(%error, "change feed: names not found");
        Vec::new()
    });
    let known: HashMap<String, (String, LocalizedText)> = rows
        .into_iter()
        .map(|(id, provider, name)| (id, (provider, name.0)))
        .collect();
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
