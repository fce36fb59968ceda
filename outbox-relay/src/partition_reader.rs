//! Reads back a range of one partition with a plain assigned consumer (no group, no commits):
//! reconcile uses it to learn which outbox positions really are on the topic.

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::time::Instant;

use crate::error::RelayError;
use crate::producer::position_from_headers;

pub(crate) struct PartitionReader {
    consumer: StreamConsumer,
    timeout: Duration,
}

impl PartitionReader {
    pub(crate) fn new(brokers: &str, timeout: Duration) -> Result<Self, KafkaError> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("client.id", "outbox-relay-reconcile")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest")
            // Low, or each fetch of the (idle) tail waits the default 500 ms.
            .set("fetch.wait.max.ms", "10")
            .create()?;
        Ok(Self { consumer, timeout })
    }

    /// `(offset, aigo-position)` of every message at offsets `from..to` of the partition.
    pub(crate) async fn positions(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, i64)>, RelayError> {
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, partition, Offset::Offset(from))?;
        self.consumer.assign(&assignment)?;
        let result = self.collect(topic, partition, from, to).await;
        self.consumer.unassign()?;
        result
    }

    async fn collect(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, i64)>, RelayError> {
        let deadline = Instant::now() + self.timeout;
        let timed_out = || RelayError::ReadTimeout {
            topic: topic.to_owned(),
            partition,
            from,
            to,
        };
        let mut found = Vec::new();
        let mut next = from;
        while next < to {
            let message = tokio::time::timeout_at(deadline, self.consumer.recv())
                .await
                .map_err(|_elapsed| timed_out())??;
            // A previous assignment may still deliver a prefetched message: skip it.
            if message.topic() != topic || message.partition() != partition {
                continue;
            }
            let offset = message.offset();
            if offset < from {
                continue;
            }
            if offset >= to {
                break;
            }
            let position = position_from_headers(message.headers()).ok_or_else(|| {
                RelayError::MissingPosition {
                    topic: topic.to_owned(),
                    partition,
                    offset,
                }
            })?;
            found.push((offset, position));
            next = offset + 1;
        }
        Ok(found)
    }
}
