//! Kafka consumers as the projector and the catalogue follower use them: partitions assigned
//! by this process's [`claims`](crate::claims) (never by the broker's group coordinator),
//! offsets never committed to Kafka (PostgreSQL holds the truth), tuned for low latency.
//!
//! Every partition starts at an explicit offset taken from PostgreSQL, never at "earliest":
//! Nisshi answers `ListOffsets(earliest)` wrongly for some partitions (a consumer starting
//! there reads nothing), and an explicit position is what the design wants anyway. An offset
//! out of the partition's range is reported (`auto.offset.reset = error`), never silently
//! moved: it means the topic was created again, which the reader checks
//! ([`incarnation`](crate::incarnation)).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_client::KafkaClient;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use tracing::warn;

use crate::claims::PartitionKey;
use crate::stall_watch::{PartitionReport, StallWatch, is_assigned};

/// librdkafka's default `message.max.bytes`.
const LIBRDKAFKA_MESSAGE_MAX_BYTES: u32 = 1_000_000;

/// Settings of a reader's consumer. `fetch.wait.max.ms` is low because on
/// Nisshi it bounds end-to-end latency (the node's `kafka.fetch_wait_ms` and
/// `kafka.catalogue_fetch_wait_ms` set it per role, see docs/BROKER.md "Polling and idle
/// CPU"); all of them (and the metadata refresh) may be overridden in `[kafka.client]`. The
/// prefetch queue is 8 MiB instead of librdkafka's 64 MiB: a node catching up held up to that
/// much per consumer (measured: 350-480 MiB resident after a catch-up of a million events,
/// 245-256 MiB with 4 MiB). With a small queue, librdkafka's `fetch.queue.backoff.ms`
/// (default 1,000 ms: how long a partition's next fetch waits once its queue is full) must be
/// small too, or a catching-up reader gets one queue-full a second: a fresh node folded a
/// 1,000,000-event topic at a flat ~26,700 events/s (ready after 41 s) with the default.
/// A fetch brings at most 128 KiB per partition (`max.partition.fetch.bytes`, librdkafka's
/// default 1 MiB): Nisshi's sqlite engine reads one record per query once a fetch's wait has
/// passed, so a fetch of nine partitions catching up took more than librdkafka's 60 s request
/// timeout under the soak's load, and the same fetch was sent again and timed out again
/// (docs/BROKER.md, "The sqlite engine"). On Kafka a larger value catches up in fewer round
/// trips: `[kafka.client] max.partition.fetch.bytes = 1048576`.
/// A tail consumer with a catching-up one beside it also bounds whole answers
/// (`fetch.max.bytes`, `answer_bytes`): Nisshi gives the first partition with records the whole
/// answer's budget (librdkafka's is 8 MiB here: its 50 MiB default clamped to the prefetch
/// queue), so after its short wait a tail consumer read a partition hundreds of records behind
/// one record per query to its end, each query scanning the partition from the fetch offset, and
/// a restarted node's first fetch went unanswered for 60 s in the soak (docs/BROKER.md).
/// `message.max.bytes` only bounds the requests a consumer sends; librdkafka wants it no larger
/// than `fetch.max.bytes`.
/// `group.id` only names the reader in the broker's logs: nothing joins a group or commits
/// to it. librdkafka's own metadata refresh keeps its default (5 minutes): the reader looks its
/// partitions up itself ([`TopicPartitions`], every 30 s) and librdkafka refreshes at once on
/// a fetch error; a 2 s refresh on each of a node's four readers was about 7 % of the idle
/// demo's CPU (docs/PERFORMANCE.md, "Idle CPU of the demo: metadata refreshes").
pub fn reader_config(kafka: &KafkaClient, reader: &str, answer_bytes: Option<u32>) -> ClientConfig {
    let answer_bound = answer_bytes.map(|bytes| {
        (
            bytes.to_string(),
            bytes.min(LIBRDKAFKA_MESSAGE_MAX_BYTES).to_string(),
        )
    });
    let mut tunings = vec![
        ("fetch.wait.max.ms", "10"),
        ("statistics.interval.ms", "1000"),
        ("queued.max.messages.kbytes", "8192"),
        ("fetch.queue.backoff.ms", "10"),
        ("max.partition.fetch.bytes", "131072"),
    ];
    if let Some((answer, request)) = &answer_bound {
        tunings.push(("fetch.max.bytes", answer.as_str()));
        tunings.push(("message.max.bytes", request.as_str()));
    }
    let mut config = kafka.config(&tunings);
    config
        .set("group.id", reader)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error");
    config
}

/// A consumer context that turns librdkafka statistics into a lag gauge and remembers each
/// partition's high watermark, so a reader can tell when it has caught up.
#[derive(Debug)]
pub struct ReaderStats {
    /// The reader's name in metrics and warnings (projector, catalogue).
    reader: &'static str,
    lag_metric: &'static str,
    /// Each partition's high watermark, from the latest statistics.
    high_watermarks: Mutex<HashMap<PartitionKey, i64>>,
    stalls: Mutex<StallWatch>,
    /// Statistics received so far.
    reports: AtomicU64,
}

/// A consumer whose partitions its owner assigns.
pub type Reader = StreamConsumer<ReaderStats>;

/// How long a metadata request may take before the reader tries again at its next review.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

impl ReaderStats {
    pub fn new(reader: &'static str, lag_metric: &'static str) -> Self {
        Self {
            reader,
            lag_metric,
            high_watermarks: Mutex::new(HashMap::new()),
            stalls: Mutex::new(StallWatch::default()),
            reports: AtomicU64::new(0),
        }
    }

    /// The partition's high watermark in the latest statistics that listed it.
    pub fn high_watermark(&self, key: &PartitionKey) -> Option<i64> {
        self.high_watermarks.lock().ok()?.get(key).copied()
    }

    /// How many statistics reports the consumer has made.
    pub fn reports(&self) -> u64 {
        self.reports.load(Ordering::Relaxed)
    }
}

impl ClientContext for ReaderStats {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut high = self.high_watermarks.lock().ok();
        for (name, topic) in &statistics.topics {
            for (partition, stats) in &topic.partitions {
                if let Some(high) = high
                    .as_mut()
                    .filter(|_| *partition >= 0 && stats.hi_offset >= 0)
                {
                    high.insert((name.clone(), *partition), stats.hi_offset);
                }
                // Only the consumer a partition is assigned to knows its lag (a reader's other
                // gear reports it as stopped, with its last figure).
                if *partition >= 0 && stats.consumer_lag >= 0 && is_assigned(&stats.fetch_state) {
                    metrics::gauge!(self.lag_metric, "topic" => name.clone(), "partition" => partition.to_string())
                        .set(stats.consumer_lag as f64);
                }
            }
        }
        let report = statistics.topics.iter().flat_map(|(name, topic)| {
            topic
                .partitions
                .iter()
                .filter(|(partition, _)| **partition >= 0)
                .map(|(partition, stats)| {
                    let report = PartitionReport {
                        fetch_state: stats.fetch_state.clone(),
                        next_offset: stats.next_offset,
                        app_offset: stats.app_offset,
                        hi_offset: stats.hi_offset,
                        fetchq_cnt: stats.fetchq_cnt,
                    };
                    ((name.clone(), *partition), report)
                })
        });
        if let Ok(mut stalls) = self.stalls.lock() {
            let stalled = stalls.observe(self.reader, Instant::now(), report);
            #[expect(clippy::cast_precision_loss, reason = "a gauge")]
            metrics::gauge!("reader_partitions_stalled", "reader" => self.reader)
                .set(stalled as f64);
        }
        self.reports.fetch_add(1, Ordering::Relaxed);
    }
}

impl ConsumerContext for ReaderStats {}

/// How often known topics' partitions are looked up again (a topic may grow); a topic not
/// found yet is looked for at every refresh.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);

/// The partitions of a reader's topics, as the broker's metadata last listed them.
#[derive(Debug)]
pub struct TopicPartitions {
    topics: Vec<String>,
    known: BTreeSet<PartitionKey>,
    looked_up: Option<Instant>,
}

impl TopicPartitions {
    pub fn new(topics: Vec<String>) -> Self {
        Self {
            topics,
            known: BTreeSet::new(),
            looked_up: None,
        }
    }

    pub fn known(&self) -> &BTreeSet<PartitionKey> {
        &self.known
    }

    /// Looks the partitions up again when it is time, or while a topic has none; a failed
    /// look-up keeps what was known.
    pub async fn refresh(&mut self, consumer: &Arc<Reader>) {
        let missing = self
            .topics
            .iter()
            .any(|topic| !self.known.iter().any(|(t, _)| t == topic));
        let due = self
            .looked_up
            .is_none_or(|at| at.elapsed() >= DISCOVERY_INTERVAL);
        if !missing && !due {
            return;
        }
        match topic_partitions(consumer, &self.topics).await {
            Ok(found) => {
                self.known = found;
                self.looked_up = Some(Instant::now());
            }
            Err(error) => warn!(%error, topics = ?self.topics, "partitions not looked up"),
        }
    }
}

/// Every partition of `topics` the broker's metadata lists; a topic that does not exist (yet)
/// has none.
async fn topic_partitions(
    consumer: &Arc<Reader>,
    topics: &[String],
) -> KafkaResult<BTreeSet<PartitionKey>> {
    let consumer = Arc::clone(consumer);
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut partitions = BTreeSet::new();
        for topic in &topics {
            let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
            let listed = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic && t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| (topic.clone(), p.id())));
            partitions.extend(listed);
        }
        Ok(partitions)
    })
    .await
    .map_err(|_| KafkaError::Canceled)?
}

/// Starts reading `starts`' partitions, each at its offset, beside those already read.
pub fn start_reading(consumer: &Reader, starts: &[(PartitionKey, i64)]) -> KafkaResult<()> {
    if starts.is_empty() {
        return Ok(());
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in starts {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    consumer.incremental_assign(&list)
}

/// Stops reading `keys`; records of them still queued are dropped. Keys not read (a reader
/// that [dozes](crate::doze) has unassigned everything) are left out.
pub fn stop_reading(consumer: &Reader, keys: &[PartitionKey]) -> KafkaResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let assigned = consumer.assignment()?;
    let mut list = TopicPartitionList::new();
    for (topic, partition) in keys {
        if assigned.find_partition(topic, *partition).is_some() {
            list.add_partition(topic, *partition);
        }
    }
    if list.count() == 0 {
        return Ok(());
    }
    consumer.incremental_unassign(&list)
}

#[cfg(test)]
mod tests {
    use rdkafka::consumer::BaseConsumer;

    use super::*;
    use crate::gears::TAIL_ANSWER_BYTES;

    fn accepted_by_librdkafka(config: &ClientConfig) {
        let created: KafkaResult<BaseConsumer> = config.create();
        assert!(created.is_ok(), "librdkafka refused: {:?}", created.err());
    }

    #[test]
    fn a_tail_reader_asks_for_small_answers_that_librdkafka_accepts() {
        let config = reader_config(
            &KafkaClient::new("127.0.0.1:1"),
            "r",
            Some(TAIL_ANSWER_BYTES),
        );
        assert_eq!(config.get("fetch.max.bytes"), Some("65536"));
        assert_eq!(config.get("message.max.bytes"), Some("65536"));
        assert_eq!(config.get("max.partition.fetch.bytes"), Some("131072"));
        accepted_by_librdkafka(&config);
    }

    #[test]
    fn a_catching_up_reader_keeps_librdkafkas_answer_size() {
        let config = reader_config(&KafkaClient::new("127.0.0.1:1"), "r", None);
        assert_eq!(config.get("fetch.max.bytes"), None);
        assert_eq!(config.get("message.max.bytes"), None);
        accepted_by_librdkafka(&config);
    }

    #[test]
    fn the_operator_overrides_the_answer_bound() {
        let client = KafkaClient::new("127.0.0.1:1").with_properties(
            kafka_client::ClientProperties::parse([("fetch.max.bytes", "52428800")]).unwrap(),
        );
        let config = reader_config(&client, "r", Some(TAIL_ANSWER_BYTES));
        assert_eq!(config.get("fetch.max.bytes"), Some("52428800"));
        accepted_by_librdkafka(&config);
    }
}
