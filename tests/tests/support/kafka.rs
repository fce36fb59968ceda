//! Kafka side of the tests: broker address, unique names, reading a whole topic back without a
//! consumer group (assign from the beginning: no ~1 s join, no offsets committed).

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::time::Instant;

/// Broker list: `KAFKA_BROKERS`, default the test broker of `scripts/services.sh`.
pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_owned())
}

/// A topic name no other test (or run) uses.
pub fn unique_topic(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// One message as read back from the topic.
#[derive(Debug, Clone)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, Vec<u8>>,
}

impl Received {
    /// The `aigo-position` header, parsed.
    pub fn position(&self) -> i64 {
        let raw = self.headers.get("aigo-position").unwrap_or_else(|| {
            panic!("message {}@{} has no position", self.partition, self.offset)
        });
        std::str::from_utf8(raw).unwrap().parse().unwrap()
    }
}

fn consumer() -> StreamConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap()
}

/// `(low, high)` watermarks of every partition of `topic`.
pub async fn watermarks(topic: &str, partitions: i32) -> Vec<(i64, i64)> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer = consumer();
        (0..partitions)
            .map(|p| {
                consumer
                    .fetch_watermarks(&topic, p, Duration::from_secs(10))
                    .unwrap()
            })
            .collect()
    })
    .await
    .unwrap()
}

/// Number of messages on the topic (no compaction, no transactions: high - low per partition).
pub async fn message_count(topic: &str, partitions: i32) -> i64 {
    watermarks(topic, partitions)
        .await
        .iter()
        .map(|(low, high)| high - low)
        .sum()
}

/// Every message of the topic up to the current high watermarks, in partition then offset order.
pub async fn read_all(topic: &str, partitions: i32) -> Vec<Received> {
    let marks = watermarks(topic, partitions).await;
    let consumer = consumer();
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0;
    for (p, (low, high)) in (0..partitions).zip(&marks) {
        if high > low {
            assignment
                .add_partition_offset(topic, p, Offset::Offset(*low))
                .unwrap();
            remaining += high - low;
        }
    }
    let mut received = Vec::new();
    if remaining == 0 {
        return received;
    }
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + super::DEADLINE;
    while remaining > 0 {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("{remaining} messages of {topic} never arrived"))
            .unwrap();
        let high = marks[usize::try_from(message.partition()).unwrap()].1;
        if message.offset() >= high {
            continue;
        }
        let headers = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        received.push(Received {
            partition: message.partition(),
            offset: message.offset(),
            key: message
                .key()
                .map(|k| String::from_utf8(k.to_vec()).unwrap()),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
        remaining -= 1;
    }
    received.sort_by_key(|m| (m.partition, m.offset));
    received
}

/// Partition count of `topic` from broker metadata (0 when it does not exist).
pub async fn partition_count(topic: &str) -> usize {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer()
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .unwrap();
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len())
    })
    .await
    .unwrap()
}
