//! Whether a partition still holds the records a reader consumed, or is a new incarnation of
//! its topic: one deleted and created again (a broker that keeps topics in memory restarted,
//! an operator recreating the topic, then `region-node republish` filling it from the region's
//! event store). A new incarnation numbers its records from zero again, so an offset stored
//! before means nothing there: resuming at it would skip records (the node silently stops
//! counting them), and records below it were dropped as re-deliveries.
//!
//! A reader remembers the Kafka timestamp of the last record it consumed (the producer's
//! `CreateTime`: a record sent again after the loss gets a new one). A partition is the same
//! incarnation if the record at that offset is still there with that timestamp; otherwise the
//! reader starts the partition over from its first record, and its idempotent apply (per
//! stream sequence) drops what it already has.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_client::KafkaClient;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;

/// The last record a reader consumed on a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordStamp {
    pub offset: i64,
    /// Its Kafka timestamp in milliseconds.
    pub timestamp_ms: i64,
}

impl RecordStamp {
    /// The stamp of `message`, if the broker gave it a timestamp.
    pub fn of(message: &impl Message) -> Option<Self> {
        message.timestamp().to_millis().map(|timestamp_ms| Self {
            offset: message.offset(),
            timestamp_ms,
        })
    }
}

/// What a check found for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The record is still there: the reader's offsets hold.
    Same,
    /// The record is gone or is another one: a new incarnation, read it from its start.
    Replaced,
    /// No answer in time (the broker is down or slow): ask again later.
    Unknown,
}

/// The verdict on a record found at `offset` with `timestamp_ms`, for the reader's `stamp`.
pub fn judge(stamp: RecordStamp, offset: i64, timestamp_ms: Option<i64>) -> Verdict {
    if offset != stamp.offset {
        // The fetch was sent elsewhere: the offset is out of the partition's range.
        return Verdict::Replaced;
    }
    match timestamp_ms {
        Some(found) if found != stamp.timestamp_ms => Verdict::Replaced,
        // Without a timestamp the records cannot be told apart: trust the offset, as before.
        _ => Verdict::Same,
    }
}

/// Checks each `(partition, stamp)` of `topic` by reading the record at the stamp's offset.
/// Partitions not decided within `timeout` are [`Verdict::Unknown`].
///
/// A fetch beyond a partition's end is not always refused (Nisshi answers it with nothing, so
/// it would wait forever): a stamp at or beyond the partition's high watermark is read from
/// the last record below it instead, up to the end, where the record either turns up or the
/// partition ends without it. Nisshi's high watermark can be short of the end (the base of
/// its last record batch + 1), which this way only costs reading that batch.
pub async fn check(
    kafka: &KafkaClient,
    topic: &str,
    stamps: &[(i32, RecordStamp)],
    timeout: Duration,
) -> HashMap<i32, Verdict> {
    let mut verdicts: HashMap<i32, Verdict> =
        stamps.iter().map(|(p, _)| (*p, Verdict::Unknown)).collect();
    if stamps.is_empty() {
        return verdicts;
    }
    let Ok(consumer) = checker(kafka) else {
        return verdicts;
    };
    let consumer = Arc::new(consumer);
    let deadline = Instant::now() + timeout;
    let Some(highs) = high_watermarks(&consumer, topic, stamps, timeout).await else {
        return verdicts;
    };
    let mut wanted: HashMap<i32, RecordStamp> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for ((partition, stamp), high) in stamps.iter().zip(highs) {
        let from = if stamp.offset < high {
            stamp.offset
        } else if high > 0 {
            high - 1
        } else {
            // An empty partition: nothing of what the reader consumed is there.
            verdicts.insert(*partition, Verdict::Replaced);
            continue;
        };
        if assignment
            .add_partition_offset(topic, *partition, Offset::Offset(from))
            .is_err()
        {
            return verdicts;
        }
        wanted.insert(*partition, *stamp);
    }
    if wanted.is_empty() || consumer.assign(&assignment).is_err() {
        return verdicts;
    }
    let mut open: HashSet<i32> = wanted.keys().copied().collect();
    while !open.is_empty() {
        let Ok(received) = tokio::time::timeout_at(deadline, consumer.recv()).await else {
            break;
        };
        let (partition, verdict) = match received {
            Ok(message) => {
                let Some(stamp) = wanted.get(&message.partition()) else {
                    continue;
                };
                if message.offset() < stamp.offset {
                    // On the way to the stamp's offset.
                    continue;
                }
                let timestamp = message.timestamp().to_millis();
                (
                    message.partition(),
                    judge(*stamp, message.offset(), timestamp),
                )
            }
            // The partition ends before the record: it is gone.
            Err(KafkaError::PartitionEOF(partition)) => (partition, Verdict::Replaced),
            Err(_) => continue,
        };
        if open.remove(&partition) {
            verdicts.insert(partition, verdict);
        }
    }
    tracing::debug!(topic, ?stamps, ?verdicts, "incarnation check");
    verdicts
}

/// Each stamp's partition's high watermark, in `stamps`' order; None if the broker did not
/// answer.
async fn high_watermarks(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
    stamps: &[(i32, RecordStamp)],
    timeout: Duration,
) -> Option<Vec<i64>> {
    let consumer = Arc::clone(consumer);
    let topic = topic.to_owned();
    let partitions: Vec<i32> = stamps.iter().map(|(p, _)| *p).collect();
    tokio::task::spawn_blocking(move || {
        // One deadline for all: a broker that does not answer costs `timeout` once.
        let deadline = std::time::Instant::now() + timeout;
        partitions
            .iter()
            .map(|partition| {
                let left = deadline.checked_duration_since(std::time::Instant::now())?;
                let (_low, high) = consumer.fetch_watermarks(&topic, *partition, left).ok()?;
                Some(high)
            })
            .collect()
    })
    .await
    .ok()
    .flatten()
}

/// A plain assigned consumer (no group joined, nothing committed) that reports a partition's
/// end. An offset out of range is reset to the end, so it too ends in an EOF or a record at
/// another offset: either says the record is gone.
fn checker(kafka: &KafkaClient) -> Result<StreamConsumer, KafkaError> {
    kafka
        .config(&[("fetch.wait.max.ms", "10")])
        // librdkafka refuses assign() without a group id; the group is never joined.
        .set("group.id", "aigo-incarnation-check")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "latest")
        .create()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: RecordStamp = RecordStamp {
        offset: 41,
        timestamp_ms: 1_700_000_000_123,
    };

    #[test]
    fn the_same_record_is_the_same_incarnation() {
        assert_eq!(judge(STAMP, 41, Some(1_700_000_000_123)), Verdict::Same);
    }

    #[test]
    fn another_record_at_the_offset_is_a_new_incarnation() {
        assert_eq!(judge(STAMP, 41, Some(1_700_000_000_124)), Verdict::Replaced);
    }

    #[test]
    fn a_record_at_another_offset_says_the_offset_is_gone() {
        assert_eq!(judge(STAMP, 3, Some(1_700_000_000_123)), Verdict::Replaced);
    }

    #[test]
    fn without_a_timestamp_the_offset_is_trusted() {
        assert_eq!(judge(STAMP, 41, None), Verdict::Same);
    }
}
