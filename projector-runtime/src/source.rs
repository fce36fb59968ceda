//! Kafka consumers as the projector uses them: in a group (one owner per partition), offsets
//! never auto-committed (PostgreSQL holds the truth), tuned for low latency.
//!
//! Every assigned partition starts at an explicit offset taken from PostgreSQL, never at
//! "earliest": Nisshi answers `ListOffsets(earliest)` wrongly for some partitions (a consumer
//! starting there reads nothing), and an explicit position is what the design wants anyway.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kafka_client::KafkaClient;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tracing::warn;

/// Settings of a group consumer. `session.timeout.ms` is short because a group's first join
/// waits about half of it (Nisshi and Kafka alike), and `fetch.wait.max.ms` is low because on
/// Nisshi it bounds end-to-end latency (the node's `kafka.fetch_wait_ms` and
/// `kafka.catalogue_fetch_wait_ms` set it per role, see docs/BROKER.md "Polling and idle
/// CPU"); all of them (and the metadata refresh) may be overridden in `[kafka.client]`. The
/// prefetch queue is 8 MiB instead of librdkafka's 64 MiB: a node catching up held up to that
/// much per consumer (measured: 350-480 MiB resident after a catch-up of a million events,
/// 245-256 MiB with 4 MiB; catch-up times stayed within the machine's noise). Offsets are
/// never committed to Kafka: PostgreSQL holds them.
pub fn group_config(kafka: &KafkaClient, group: &str) -> ClientConfig {
    let mut config = kafka.config(&[
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
        ("fetch.wait.max.ms", "10"),
        ("topic.metadata.refresh.interval.ms", "2000"),
        ("statistics.interval.ms", "1000"),
        ("queued.max.messages.kbytes", "8192"),
    ]);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    config
}

type PartitionKey = (String, i32);

/// A consumer context that starts each assigned partition where PostgreSQL says, remembers
/// revocations for the owner's loop, and turns librdkafka statistics into a lag gauge.
#[derive(Debug)]
pub struct ExplicitOffsets {
    starts: Mutex<HashMap<PartitionKey, i64>>,
    revoked: Mutex<Vec<PartitionKey>>,
    lag_metric: &'static str,
    /// Each partition's high watermark, from the latest statistics.
    high_watermarks: Mutex<HashMap<PartitionKey, i64>>,
    /// The group has assigned this consumer its partitions (possibly none) at least once.
    assigned_once: AtomicBool,
    /// Since when the statistics have shown the group join state other than `steady`.
    unsettled_since: Mutex<Option<Instant>>,
}

/// How long a group consumer may go without a settled group before its owner gives up on it
/// and starts over with a new consumer: a rebalance takes a join and a sync (on Nisshi about
/// 8 s with a 6 s session), so this is several failed ones in a row. Nisshi 0.7 can keep a
/// group of two members rebalancing forever after a burst of restarts (docs/BROKER.md); giving
/// up makes that visible (`/readyz`, the task's failure) and sometimes ends it.
pub const UNSETTLED_LIMIT: Duration = Duration::from_secs(30);

/// Gives up on `consumer`'s group: drops it (it leaves the group) and stays out for a random
/// 0-15 s, so that members that gave up together do not come back in step. False if
/// `shutdown` came first.
pub async fn leave_group<C>(consumer: C, shutdown: Pin<&mut impl Future<Output = ()>>) -> bool {
    drop(consumer);
    let delay = Duration::from_millis(rand::random_range(0..15_000));
    tokio::select! {
        () = shutdown => false,
        () = tokio::time::sleep(delay) => true,
    }
}

impl ExplicitOffsets {
    pub fn new(starts: HashMap<PartitionKey, i64>, lag_metric: &'static str) -> Self {
        Self {
            starts: Mutex::new(starts),
            revoked: Mutex::new(Vec::new()),
            lag_metric,
            high_watermarks: Mutex::new(HashMap::new()),
            assigned_once: AtomicBool::new(false),
            unsettled_since: Mutex::new(None),
        }
    }

    /// Where a later assignment of the partition should start. A value that trails the
    /// partition's real checkpoint only costs a re-read: records below it are skipped.
    pub fn advance(&self, topic: &str, partition: i32, next_offset: i64) {
        if let Ok(mut starts) = self.starts.lock() {
            let start = starts.entry((topic.to_owned(), partition)).or_insert(0);
            *start = (*start).max(next_offset);
        }
    }

    pub fn take_revoked(&self) -> Vec<PartitionKey> {
        self.revoked
            .lock()
            .map(|mut revoked| revoked.drain(..).collect())
            .unwrap_or_default()
    }

    /// True once the group has assigned this consumer its partitions and each of them, by its
    /// next offset in `positions`, has reached the high watermark the broker last reported.
    pub fn caught_up(&self, positions: &[(PartitionKey, i64)]) -> bool {
        if !self.assigned_once.load(Ordering::SeqCst) {
            return false;
        }
        let Ok(high) = self.high_watermarks.lock() else {
            return false;
        };
        positions
            .iter()
            .all(|(key, next)| high.get(key).is_some_and(|high| next >= high))
    }

    /// How long the group has not been settled (joining, syncing, rebalancing), if more than
    /// [`UNSETTLED_LIMIT`]: the consumer should be replaced.
    pub fn stuck_unsettled(&self) -> Option<Duration> {
        let since = (*self.unsettled_since.lock().ok()?)?;
        Some(since.elapsed()).filter(|unsettled| *unsettled > UNSETTLED_LIMIT)
    }

    fn start(&self, topic: &str, partition: i32) -> i64 {
        self.starts
            .lock()
            .ok()
            .and_then(|starts| starts.get(&(topic.to_owned(), partition)).copied())
            .unwrap_or(0)
    }
}

impl ClientContext for ExplicitOffsets {
    fn stats(&self, statistics: rdkafka::Statistics) {
        if let (Some(group), Ok(mut since)) = (&statistics.cgrp, self.unsettled_since.lock()) {
            if group.join_state == "steady" {
                *since = None;
            } else {
                since.get_or_insert_with(Instant::now);
            }
        }
        let mut high = self.high_watermarks.lock().ok();
        for (name, topic) in &statistics.topics {
            for (partition, stats) in &topic.partitions {
                if let Some(high) = high
                    .as_mut()
                    .filter(|_| *partition >= 0 && stats.hi_offset >= 0)
                {
                    high.insert((name.clone(), *partition), stats.hi_offset);
                }
                if *partition >= 0 && stats.consumer_lag >= 0 {
                    metrics::gauge!(self.lag_metric, "topic" => name.clone(), "partition" => partition.to_string())
                        .set(stats.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for ExplicitOffsets {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        list: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let assigned: Vec<PartitionKey> = list
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                for (topic, partition) in &assigned {
                    let offset = Offset::Offset(self.start(topic, *partition));
                    if let Err(error) = list.set_partition_offset(topic, *partition, offset) {
                        warn!(%error, topic, partition, "cannot set a start offset");
                    }
                }
                if let Err(error) = consumer.assign(list) {
                    warn!(%error, "assignment failed");
                }
                self.assigned_once.store(true, Ordering::SeqCst);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if let Ok(mut revoked) = self.revoked.lock() {
                    revoked.extend(
                        list.elements()
                            .iter()
                            .map(|e| (e.topic().to_owned(), e.partition())),
                    );
                }
                if let Err(error) = consumer.unassign() {
                    warn!(%error, "unassignment failed");
                }
            }
            other => warn!(error = ?other, "rebalance error"),
        }
    }
}
