//! The Kafka side of publishing: an idempotent producer, explicit partitioning, message shape.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::join_all;
use kafka_client::{DeliveryFuture, KafkaClient, QuietProducer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::config::RelayConfig;
use crate::error::RelayError;
use crate::outbox::OutboxRow;
use crate::topics::partition_count;
use domain::partition_for;

/// Header carrying the outbox position (decimal); reconcile reads it back from the topic.
pub const POSITION_HEADER: &str = "aigo-position";
/// Header naming the payload's media type.
pub const CONTENT_TYPE_HEADER: &str = "content-type";
const CONTENT_TYPE: &str = "application/json";

/// Idempotent producer plus a cache of partition counts (the key -> partition map needs them).
/// A [`QuietProducer`]: rdkafka's `FutureProducer` spins ~1 % of a core while idle.
#[derive(Clone)]
pub struct Publisher {
    producer: QuietProducer,
    kafka: KafkaClient,
    request_timeout: Duration,
    partitions: Arc<Mutex<HashMap<String, i32>>>,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("brokers", &self.kafka.brokers())
            .finish_non_exhaustive()
    }
}

/// Result of sending one batch: which positions the broker acknowledged, which it did not.
#[derive(Debug, Default)]
pub struct SendReport {
    /// Acknowledged by the broker (`acks=all`) with every earlier row of their partition in
    /// this batch acknowledged too: on the topic, in order.
    pub delivered: Vec<i64>,
    /// Acknowledged, but after a row of the same partition that failed: they overtook it.
    /// Left unpublished on purpose, so they are sent again after the failed row and every
    /// consumer finds each stream's events in order after the gap (their first copies are
    /// held or dropped by stream sequence).
    pub overtook: Vec<i64>,
    /// Not acknowledged; such a message may or may not be on the topic (reconcile decides).
    pub failed: Vec<(i64, KafkaError)>,
    /// Not sent because an earlier row of the same partition failed to enqueue.
    pub skipped: Vec<i64>,
}

impl Publisher {
    /// Creates the producer. Fails only on invalid configuration: it connects lazily.
    pub fn new(config: &RelayConfig) -> Result<Self, KafkaError> {
        let linger = config.linger.as_millis().to_string();
        // Finite, so an outage fails the batch instead of hanging it.
        let message_timeout = config.message_timeout.as_millis().to_string();
        let mut producer = config.kafka.config(&[
            ("client.id", "outbox-relay"),
            ("linger.ms", &linger),
            ("message.timeout.ms", &message_timeout),
        ]);
        // Per-partition order with no duplicates from the producer's own retries.
        producer
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Only topics the node created or checked: never one with the broker's defaults.
            .set("allow.auto.create.topics", "false");
        let producer = QuietProducer::create(&producer)?;
        Ok(Self {
            producer,
            kafka: config.kafka.clone(),
            request_timeout: config.request_timeout,
            partitions: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The brokers and client properties this publisher was built with.
    #[must_use]
    pub fn kafka(&self) -> &KafkaClient {
        &self.kafka
    }

    /// Timeout used for metadata and watermark requests.
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Partition count of `topic`, from the cache or broker metadata.
    pub async fn partition_count(&self, topic: &str) -> Result<i32, RelayError> {
        if let Some(n) = self.cache().get(topic).copied() {
            return Ok(n);
        }
        let producer = self.producer.clone();
        let timeout = self.request_timeout;
        let name = topic.to_owned();
        let count =
            tokio::task::spawn_blocking(move || partition_count(producer.client(), &name, timeout))
                .await??;
        let n = count.ok_or_else(|| RelayError::UnknownTopic(topic.to_owned()))?;
        self.cache().insert(topic.to_owned(), n);
        Ok(n)
    }

    /// Drops cached partition counts (after a failure, metadata may have changed).
    pub fn forget_partition_counts(&self) {
        self.cache().clear();
    }

    /// Low and high watermark of a partition. On Kafka high is the next offset; on Nisshi 0.7
    /// it is the last record batch's base offset + 1, so only `high - 1 <= last offset` holds.
    pub async fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64), RelayError> {
        let producer = self.producer.clone();
        let timeout = self.request_timeout;
        let name = topic.to_owned();
        let marks = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_watermarks(&name, partition, timeout)
        })
        .await??;
        Ok(marks)
    }

    /// The producer's fatal error, if it has one: it must then be replaced.
    #[must_use]
    pub fn fatal_error(&self) -> Option<String> {
        self.producer
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("{code}: {reason}"))
    }

    /// Sends `rows` (in position order) and waits for every delivery report.
    ///
    /// Once a row cannot even be enqueued, later rows of its partition are not sent: sending
    /// them would leave a gap that a later retry could only fill out of order.
    pub async fn send_all(&self, rows: &[OutboxRow]) -> Result<SendReport, RelayError> {
        // Route every row first, so a metadata failure sends nothing.
        let mut counts: HashMap<&str, i32> = HashMap::new();
        let mut routed = Vec::with_capacity(rows.len());
        for row in rows {
            let count = match counts.get(row.topic.as_str()) {
                Some(&count) => count,
                None => {
                    let count = self.partition_count(&row.topic).await?;
                    counts.insert(&row.topic, count);
                    count
                }
            };
            routed.push((row, partition_for(row.message_key.as_bytes(), count)));
        }

        let mut report = SendReport::default();
        // The first failed position of each partition: nothing after it counts as delivered.
        let mut first_failure: HashMap<(&str, i32), i64> = HashMap::new();
        let mut pending: Vec<((&str, i32), i64, DeliveryFuture)> = Vec::with_capacity(rows.len());
        for (row, partition) in routed {
            let lane = (row.topic.as_str(), partition);
            if first_failure.contains_key(&lane) {
                report.skipped.push(row.position);
                continue;
            }
            match self.producer.send_result(record(row, partition)) {
                Ok(delivery) => pending.push((lane, row.position, delivery)),
                Err((error, _)) => {
                    first_failure.insert(lane, row.position);
                    report.failed.push((row.position, error));
                }
            }
        }

        let lanes: Vec<((&str, i32), i64)> = pending.iter().map(|(l, p, _)| (*l, *p)).collect();
        let results = join_all(pending.into_iter().map(|(_, _, f)| f)).await;
        let mut acknowledged = Vec::with_capacity(lanes.len());
        for ((lane, position), result) in lanes.into_iter().zip(results) {
            let error = match result {
                Ok(Ok(_)) => {
                    acknowledged.push((lane, position));
                    continue;
                }
                Ok(Err((error, _))) => error,
                Err(_canceled) => KafkaError::Canceled,
            };
            let first = first_failure.entry(lane).or_insert(position);
            *first = (*first).min(position);
            report.failed.push((position, error));
        }
        for (lane, position) in acknowledged {
            match first_failure.get(&lane) {
                Some(&failed) if failed < position => report.overtook.push(position),
                _ => report.delivered.push(position),
            }
        }
        report.failed.sort_by_key(|(p, _)| *p);
        Ok(report)
    }

    /// Waits for queued messages (graceful shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, i32>> {
        // The map stays consistent even if a holder panicked: take it back.
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn record(row: &OutboxRow, partition: i32) -> FutureRecord<'_, str, [u8]> {
    let position = row.position.to_string();
    let headers = OwnedHeaders::new_with_capacity(2)
        .insert(Header {
            key: POSITION_HEADER,
            value: Some(position.as_str()),
        })
        .insert(Header {
            key: CONTENT_TYPE_HEADER,
            value: Some(CONTENT_TYPE),
        });
    FutureRecord::to(&row.topic)
        .partition(partition)
        .key(row.message_key.as_str())
        .payload(row.payload.as_slice())
        .headers(headers)
}

/// Reads the `aigo-position` header of a consumed message.
#[must_use]
pub fn position_from_headers<H: Headers>(headers: Option<&H>) -> Option<i64> {
    headers?
        .iter()
        .filter(|h| h.key == POSITION_HEADER)
        .find_map(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
}
