//! Reads the end of one partition back with a plain assigned consumer (no group membership, no
//! commits): reconcile uses it to learn which outbox positions really are on the topic.
//!
//! It reads from an offset up to partition EOF rather than up to the high watermark: Nisshi
//! (0.7) answers ListOffsets with the last record *batch*'s base offset + 1, not the last
//! offset + 1, so `high - 1` is only a lower bound of the last offset there (on Kafka it is
//! exact). EOF, reported from the fetch path, is right on both.
//!
//! A record without a valid `aigo-position` header was not written by a relay (another
//! producer, a mirror without headers): it is ignored, logged and counted once per process.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use kafka_client::KafkaClient;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::error::RelayError;
use crate::producer::position_from_headers;

#[derive(Debug, Clone)]
pub(crate) struct PartitionReader {
    kafka: KafkaClient,
    timeout: Duration,
}

impl PartitionReader {
    pub(crate) fn new(kafka: &KafkaClient, timeout: Duration) -> Self {
        Self {
            kafka: kafka.clone(),
            timeout,
        }
    }

    /// `(offset, aigo-position)` of every message from offset `from` to the partition's end
    /// (foreign records, without the header, left out).
    pub(crate) async fn read_to_end(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
    ) -> Result<Vec<(i64, i64)>, RelayError> {
        let mut read = self.read_all_to_end(topic, &[(partition, from)]).await?;
        Ok(read.remove(&partition).unwrap_or_default())
    }

    /// Like [`Self::read_to_end`] for several partitions of `topic` at once (one consumer).
    pub(crate) async fn read_all_to_end(
        &self,
        topic: &str,
        starts: &[(i32, i64)],
    ) -> Result<HashMap<i32, Vec<(i64, i64)>>, RelayError> {
        let mut found: HashMap<i32, Vec<(i64, i64)>> = HashMap::new();
        if starts.is_empty() {
            return Ok(found);
        }
        // A consumer per read: no EOF or prefetched message of an earlier read can leak in.
        let consumer = self.consumer()?;
        let mut assignment = TopicPartitionList::new();
        for &(partition, from) in starts {
            assignment.add_partition_offset(topic, partition, Offset::Offset(from))?;
            found.insert(partition, Vec::new());
        }
        consumer.assign(&assignment)?;

        let deadline = Instant::now() + self.timeout;
        let mut open: HashSet<i32> = starts.iter().map(|&(p, _)| p).collect();
        while !open.is_empty() {
            let received = tokio::time::timeout_at(deadline, consumer.recv())
                .await
                .map_err(|_elapsed| RelayError::ReadTimeout {
                    topic: topic.to_owned(),
                    partitions: open.iter().copied().collect(),
                })?;
            let message = match received {
                Ok(message) => message,
                Err(KafkaError::PartitionEOF(p)) => {
                    open.remove(&p);
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let partition = message.partition();
            let Some(read) = found.get_mut(&partition) else {
                continue;
            };
            let offset = message.offset();
            match position_from_headers(message.headers()) {
                Some(position) => read.push((offset, position)),
                None => note_foreign(topic, partition, offset),
            }
        }
        Ok(found)
    }

    fn consumer(&self) -> Result<StreamConsumer<ReaderContext>, KafkaError> {
        self.kafka
            .config(&[
                ("client.id", "outbox-relay-reconcile"),
                // Low, or each fetch at the (idle) end waits the default 500 ms.
                ("fetch.wait.max.ms", "10"),
            ])
            // librdkafka refuses assign() without a group id; the group is never joined
            // (no subscribe) and nothing is committed.
            .set("group.id", "outbox-relay-reconcile")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .create_with_context(ReaderContext)
    }
}

/// Foreign records already reported: each is logged and counted once, though every reconcile
/// that reads that far reads it again. Bounded: forgotten (and reported again) past the limit.
static FOREIGN: Mutex<BTreeSet<(String, i32, i64)>> = Mutex::new(BTreeSet::new());
const FOREIGN_REMEMBERED: usize = 10_000;

fn note_foreign(topic: &str, partition: i32, offset: i64) {
    let mut seen = FOREIGN.lock().unwrap_or_else(PoisonError::into_inner);
    if seen.len() >= FOREIGN_REMEMBERED {
        seen.clear();
    }
    if seen.insert((topic.to_owned(), partition, offset)) {
        warn!(
            topic,
            partition,
            offset,
            "a record without a valid aigo-position header (not written by a relay) ignored"
        );
        metrics::counter!("outbox_foreign_records_total").increment(1);
    }
}

/// librdkafka reports partition EOF through the error callback too, which rdkafka logs at
/// ERROR by default; here EOF is how every read ends.
struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF);
        if eof {
            debug!(reason, "reconcile read reached partition end");
        } else {
            warn!(%error, reason, "reconcile consumer error");
        }
    }
}

impl ConsumerContext for ReaderContext {}
