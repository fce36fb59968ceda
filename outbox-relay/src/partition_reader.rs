//! Reads the end of one partition back with a plain assigned consumer (no group membership, no
//! commits): reconcile uses it to learn which outbox positions really are on the topic.
//!
//! It reads from an offset up to partition EOF rather than up to the high watermark: Nisshi
//! (0.7) answers ListOffsets with the last record *batch*'s base offset + 1, not the last
//! offset + 1, so `high - 1` is only a lower bound of the last offset there (on Kafka it is
//! exact). EOF, reported from the fetch path, is right on both.

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::time::Instant;

use crate::error::RelayError;
use crate::producer::position_from_headers;

#[derive(Debug, Clone)]
pub(crate) struct PartitionReader {
    brokers: String,
    timeout: Duration,
}

impl PartitionReader {
    pub(crate) fn new(brokers: &str, timeout: Duration) -> Self {
        Self {
            brokers: brokers.to_owned(),
            timeout,
        }
    }

    /// `(offset, aigo-position)` of every message from offset `from` to the partition's end.
    pub(crate) async fn read_to_end(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
    ) -> Result<Vec<(i64, i64)>, RelayError> {
        // A consumer per read: no EOF or prefetched message of an earlier read can leak in.
        let consumer = self.consumer()?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, partition, Offset::Offset(from))?;
        consumer.assign(&assignment)?;

        let deadline = Instant::now() + self.timeout;
        let mut found = Vec::new();
        loop {
            let received = tokio::time::timeout_at(deadline, consumer.recv())
                .await
                .map_err(|_elapsed| RelayError::ReadTimeout {
                    topic: topic.to_owned(),
                    partition,
                    from,
                })?;
            let message = match received {
                Ok(message) => message,
                Err(KafkaError::PartitionEOF(p)) if p == partition => return Ok(found),
                Err(error) => return Err(error.into()),
            };
            if message.topic() != topic || message.partition() != partition {
                continue;
            }
            let offset = message.offset();
            let position = position_from_headers(message.headers()).ok_or_else(|| {
                RelayError::MissingPosition {
                    topic: topic.to_owned(),
                    partition,
                    offset,
                }
            })?;
            found.push((offset, position));
        }
    }

    fn consumer(&self) -> Result<StreamConsumer, KafkaError> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", "outbox-relay-reconcile")
            // librdkafka refuses assign() without a group id; the group is never joined
            // (no subscribe) and nothing is committed.
            .set("group.id", "outbox-relay-reconcile")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            // Low, or each fetch at the (idle) end waits the default 500 ms.
            .set("fetch.wait.max.ms", "10")
            .create()
    }
}
