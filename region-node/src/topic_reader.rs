//! Reads whole partitions of a topic from offset zero, by assignment (no group join, nothing
//! committed), for replay and audit.
//!
//! Always explicit offsets and partition EOF: Nisshi answers `ListOffsets(earliest)` wrongly
//! for some partitions and its high watermark is the last *batch's* base offset + 1, so neither
//! "beginning" nor the watermark can bound the read (docs/BROKER.md).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kafka_client::KafkaClient;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

/// Longest the broker may stay silent before the read is given up.
const STALL: Duration = Duration::from_secs(30);
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// A topic opened for reading: its partitions and their (approximate) sizes.
pub struct TopicReader {
    consumer: BaseConsumer<EofIsNotAnError>,
    topic: String,
    /// High watermark per partition: only an estimate of the size, for progress.
    pub estimated: BTreeMap<i32, i64>,
}

impl std::fmt::Debug for TopicReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicReader")
            .field("topic", &self.topic)
            .field("estimated", &self.estimated)
            .finish_non_exhaustive()
    }
}

/// Partition EOF is how a replay knows it is done: not worth librdkafka's error log line.
#[derive(Debug)]
pub struct EofIsNotAnError;

impl ClientContext for EofIsNotAnError {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            tracing::error!(%error, reason, "librdkafka");
        }
    }
}

impl ConsumerContext for EofIsNotAnError {}

/// One record: where it is and its payload.
#[derive(Debug)]
pub struct Record<'a> {
    pub partition: i32,
    pub offset: i64,
    pub payload: &'a [u8],
}

impl TopicReader {
    /// Opens `topic`; a topic that does not exist has no partitions.
    pub fn open(kafka: &KafkaClient, topic: &str) -> anyhow::Result<Self> {
        let consumer: BaseConsumer<EofIsNotAnError> = kafka
            .config(&[
                // Large fetches: a replay reads everything, throughput beats latency.
                ("fetch.wait.max.ms", "100"),
                ("fetch.min.bytes", "1048576"),
                ("fetch.message.max.bytes", "8388608"),
                ("fetch.queue.backoff.ms", "10"),
            ])
            // assign() needs a group id; the group is never joined and nothing is committed.
            .set(
                "group.id",
                format!("aigo-replay-{}", uuid::Uuid::new_v4().simple()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("allow.auto.create.topics", "false")
            .create_with_context(EofIsNotAnError)
            .context("creating the Kafka consumer")?;
        let metadata = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .with_context(|| format!("reading the metadata of {topic}"))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut estimated = BTreeMap::new();
        for partition in partitions {
            let high = consumer
                .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
                .map(|(_, high)| high)
                .unwrap_or(0);
            estimated.insert(partition, high.max(0));
        }
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            estimated,
        })
    }

    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.estimated.keys().copied()
    }

    /// Reads each partition in `ends` from offset 0 up to its end offset (exclusive; `None`:
    /// to the end of the partition), calling `on_record` in offset order per partition.
    /// Returns, per partition, the next offset after the last record read.
    pub fn read(
        &self,
        ends: &BTreeMap<i32, Option<i64>>,
        mut on_record: impl FnMut(Record<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<BTreeMap<i32, i64>> {
        let mut reached: BTreeMap<i32, i64> = ends.keys().map(|p| (*p, 0)).collect();
        let mut open: BTreeMap<i32, Option<i64>> = ends
            .iter()
            .filter(|(_, end)| end.is_none_or(|end| end > 0))
            .map(|(p, end)| (*p, *end))
            .collect();
        if open.is_empty() {
            return Ok(reached);
        }
        let mut assignment = TopicPartitionList::new();
        for partition in open.keys() {
            assignment
                .add_partition_offset(&self.topic, *partition, Offset::Offset(0))
                .context("building the assignment")?;
        }
        self.consumer
            .assign(&assignment)
            .context("assigning the partitions")?;
        let mut last_progress = Instant::now();
        while !open.is_empty() {
            let Some(polled) = self.consumer.poll(Duration::from_millis(500)) else {
                if last_progress.elapsed() > STALL {
                    bail!(
                        "{}: no data for {STALL:?} with partitions {:?} unfinished",
                        self.topic,
                        open.keys().collect::<Vec<_>>()
                    );
                }
                continue;
            };
            last_progress = Instant::now();
            let message = match polled {
                Ok(message) => message,
                Err(KafkaError::PartitionEOF(partition)) => {
                    open.remove(&partition);
                    continue;
                }
                Err(error) => return Err(error).context(format!("reading {}", self.topic)),
            };
            let (partition, offset) = (message.partition(), message.offset());
            let Some(end) = open.get(&partition).copied() else {
                continue;
            };
            if end.is_some_and(|end| offset >= end) {
                open.remove(&partition);
                continue;
            }
            on_record(Record {
                partition,
                offset,
                payload: message.payload().unwrap_or_default(),
            })?;
            reached.insert(partition, offset + 1);
            if end.is_some_and(|end| offset + 1 >= end) {
                open.remove(&partition);
            }
        }
        self.consumer.unassign().context("unassigning")?;
        Ok(reached)
    }
}
