//! Reads the end of one partition back with a plain assigned consumer (no group membership, no
//! commits): reconcile uses it to learn which outbox positions really are on the topic.
//!
//! It reads from an offset up to partition EOF rather than up to the high watermark: Nisshi
//! (0.7) answers ListOffsets with the last record *batch*'s base offset + 1, not the last
//! offset + 1, so `high - 1` is only a lower bound of the last offset there (on Kafka it is
//! exact). EOF, reported from the fetch path, is right on both.
//!
//! A record without a valid `aigo-position` header was not written by a relay (another
//! producer, a mirror without headers): it is ignored and counted once per process, and each
//! read logs one line per partition for the ones it found new (a topic filled by another
//! producer can hold millions: a line each would bury the log and the node's CPU).

use std::collections::{HashMap, HashSet};
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
        let mut foreign: HashMap<i32, ForeignRun> = HashMap::new();
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
                None => foreign
                    .entry(partition)
                    .or_default()
                    .add(topic, partition, offset),
            }
        }
        for (partition, run) in foreign {
            report_foreign(topic, partition, run);
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

/// The foreign records one read found on one partition.
#[derive(Debug, Clone, Copy, Default)]
struct ForeignRun {
    /// Offsets reported by earlier reads (see [`REPORTED`]), looked up at the first record.
    reported: Option<(i64, i64)>,
    looked_up: bool,
    /// Foreign records of this read outside `reported`.
    new: u64,
    first: i64,
    last: i64,
}

impl ForeignRun {
    fn add(&mut self, topic: &str, partition: i32, offset: i64) {
        if !self.looked_up {
            self.looked_up = true;
            self.first = offset;
            self.reported = reported_range(topic, partition);
        }
        self.last = offset;
        if !self
            .reported
            .is_some_and(|(low, high)| (low..=high).contains(&offset))
        {
            self.new += 1;
        }
    }

    /// The range of offsets reported once this read's are: one range, since every read runs
    /// to the partition's end; a read that does not touch the old range starts a new one.
    fn reported_after(&self) -> (i64, i64) {
        match self.reported {
            Some((low, high)) if self.first <= high.saturating_add(1) && self.last >= low => {
                (low.min(self.first), high.max(self.last))
            }
            _ => (self.first, self.last),
        }
    }
}

/// Per `(topic, partition)`, the offsets whose foreign records were already reported: every
/// reconcile that reads that far reads the same records again, and they are reported once.
/// One entry per partition, so bounded by the topics' partitions.
static REPORTED: Mutex<Option<ReportedRanges>> = Mutex::new(None);

/// `(topic, partition)` → the lowest and highest offset reported.
type ReportedRanges = HashMap<(String, i32), (i64, i64)>;

fn reported_range(topic: &str, partition: i32) -> Option<(i64, i64)> {
    let reported = REPORTED.lock().unwrap_or_else(PoisonError::into_inner);
    reported
        .as_ref()
        .and_then(|r| r.get(&(topic.to_owned(), partition)).copied())
}

fn report_foreign(topic: &str, partition: i32, run: ForeignRun) {
    if !run.looked_up {
        return;
    }
    {
        let mut reported = REPORTED.lock().unwrap_or_else(PoisonError::into_inner);
        reported
            .get_or_insert_with(HashMap::new)
            .insert((topic.to_owned(), partition), run.reported_after());
    }
    if run.new > 0 {
        warn!(
            topic,
            partition,
            records = run.new,
            first_offset = run.first,
            last_offset = run.last,
            "records without a valid aigo-position header (not written by a relay) ignored"
        );
        metrics::counter!("outbox_foreign_records_total").increment(run.new);
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

#[cfg(test)]
mod tests {
    use super::{ForeignRun, report_foreign};

    /// Reads `first..=last` of a partition as foreign records; how many were new.
    fn read(topic: &str, first: i64, last: i64) -> u64 {
        let mut run = ForeignRun::default();
        for offset in first..=last {
            run.add(topic, 0, offset);
        }
        report_foreign(topic, 0, run);
        run.new
    }

    #[test]
    fn foreign_records_count_once_however_often_they_are_read() {
        let topic = "partition-reader-unit-test";
        assert_eq!(read(topic, 10, 19), 10, "first read: all new");
        assert_eq!(read(topic, 10, 19), 0, "read again: none");
        assert_eq!(read(topic, 0, 19), 10, "read further back: the ten before");
        assert_eq!(read(topic, 15, 24), 5, "read on: the five past 19");
        assert_eq!(read(topic, 0, 24), 0, "all of it again: none");
        assert_eq!(
            read("another-topic", 0, 24),
            25,
            "other topics are their own"
        );
    }
}
