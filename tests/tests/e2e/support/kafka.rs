//! Kafka side of the tests: broker address, unique names, reading a whole topic back without
//! joining a consumer group (assign from the beginning: no join delay, no offsets committed).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::time::Instant;

/// A reader's fetch wait for the short topics most tests write: little added at each
/// partition's end.
pub const SHORT_FETCH_WAIT: Duration = Duration::from_millis(10);
/// For topics of hundreds of thousands of records: Nisshi's sqlite engine stops filling an
/// answer once the fetch's wait has passed, so 10 ms waits read it at a few thousand records a
/// second (docs/BROKER.md, "The sqlite engine"); a long wait costs only at each partition's end.
pub const LONG_FETCH_WAIT: Duration = Duration::from_millis(500);

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

fn consumer(brokers: &str, fetch_wait: Duration) -> StreamConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        // assign() needs a group id; the group is never joined and nothing is committed.
        .set("group.id", unique_topic("relay-test-reader"))
        .set("enable.auto.commit", "false")
        // End of data is partition EOF: Nisshi's high watermark is the last batch's base
        // offset + 1, not the last offset + 1, so it cannot bound the read.
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", fetch_wait.as_millis().to_string())
        .create()
        .unwrap()
}

/// Every message of the topic on the test broker, see [`read_all_from`].
pub async fn read_all(topic: &str, partitions: i32) -> Vec<Received> {
    read_all_from(&brokers(), topic, partitions).await
}

/// Every message of the topic, read from the beginning of each partition to its end, in
/// partition then offset order.
pub async fn read_all_from(brokers: &str, topic: &str, partitions: i32) -> Vec<Received> {
    read_all_within(
        brokers,
        topic,
        partitions,
        super::DEADLINE,
        SHORT_FETCH_WAIT,
    )
    .await
}

/// As [`read_all_from`], failing if the ends are not reached `within` (long topics), fetching
/// with `fetch_wait` ([`SHORT_FETCH_WAIT`] or [`LONG_FETCH_WAIT`]).
pub async fn read_all_within(
    brokers: &str,
    topic: &str,
    partitions: i32,
    within: Duration,
    fetch_wait: Duration,
) -> Vec<Received> {
    let consumer = consumer(brokers, fetch_wait);
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Offset(0))
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + within;
    let mut at_end = HashSet::new();
    let mut received = Vec::new();
    while at_end.len() < usize::try_from(partitions).unwrap() {
        let next = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("{topic}: partitions {at_end:?} reached their end only"));
        let message = match next {
            Ok(message) => message,
            Err(KafkaError::PartitionEOF(p)) => {
                at_end.insert(p);
                continue;
            }
            Err(error) => panic!("reading {topic}: {error}"),
        };
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
    }
    received.sort_by_key(|m| (m.partition, m.offset));
    received
}

/// Partition count of `topic` from broker metadata (0 when it does not exist).
pub async fn partition_count(topic: &str) -> usize {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer(&brokers(), SHORT_FETCH_WAIT)
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

/// The topic's `cleanup.policy`, as the broker describes it.
pub async fn cleanup_policy(topic: &str) -> Option<String> {
    topic_setting(topic, "cleanup.policy").await
}

/// One setting of the topic, as the broker describes it (`None`: not listed).
pub async fn topic_setting(topic: &str, setting: &str) -> Option<String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    resource.get(setting).and_then(|entry| entry.value.clone())
}

/// Creates `topic` on the test broker as an operator might have, with `settings`.
pub async fn create_topic(topic: &str, partitions: i32, settings: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    for (name, value) in settings {
        new = new.set(name, value);
    }
    let results = admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .unwrap();
    for result in results {
        result.unwrap_or_else(|(topic, code)| panic!("creating {topic}: {code}"));
    }
}
