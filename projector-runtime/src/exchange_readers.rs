//! The state exchange's two consumers. Nisshi 0.7 has no long poll (docs/BROKER.md, "Polling
//! and idle CPU"): a consumer with a short fetch wait costs the broker many reads a second even
//! when nothing moves. So a watchful consumer with a long wait (`idle_fetch_wait_ms`) always
//! reads the topic, and a lively one with the short wait (`fetch_wait_ms`) reads it only while
//! the node's merged view changes: the first change after a quiet spell crosses regions
//! within about half the long wait, the changes that follow as fast as before. Both read from
//! the end; a state read twice merges to the same view (states are CRDTs).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};

use crate::exchange::{EXCHANGE_PARTITIONS, ExchangeConfig};

/// Which consumer a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Lively,
    Watchful,
}

/// The exchange's consumers and whether the lively one reads.
pub struct ExchangeReaders {
    lively: StreamConsumer,
    /// None when idling is off: the lively consumer then always reads.
    watchful: Option<StreamConsumer>,
    assignment: TopicPartitionList,
    after: Duration,
    /// While it reads: until when (pushed on by every change).
    lively_until: Mutex<Option<Instant>>,
}

impl ExchangeReaders {
    /// Creates both consumers (one when `idle` is off), each reading the topic from its end.
    pub fn new(config: &ExchangeConfig) -> Result<Self, KafkaError> {
        let idle = config.idle;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..EXCHANGE_PARTITIONS {
            // From the end: every live actor republishes its state each heartbeat, so a node
            // hears every running region within one heartbeat; states of regions that are
            // down come from the node's own memory (`known_states`). (On Kafka, reading the
            // compacted topic from offset 0 would recover them too; Nisshi 0.7 does not serve
            // old offsets of this topic reliably, see docs/BROKER.md.)
            assignment.add_partition_offset(&config.topic, partition, Offset::End)?;
        }
        let lively = consumer(config, "lively", None)?;
        lively.assign(&assignment)?;
        let watchful = if idle.after.is_zero() {
            None
        } else {
            let watchful = consumer(config, "watchful", Some(config.idle_fetch_wait))?;
            watchful.assign(&assignment)?;
            Some(watchful)
        };
        metrics::gauge!("reader_asleep", "reader" => "exchange").set(0.0);
        Ok(Self {
            lively,
            watchful,
            assignment,
            after: idle.after,
            lively_until: Mutex::new(Some(Instant::now() + idle.after)),
        })
    }

    /// The next message of either consumer (the lively one's only while it reads).
    pub async fn recv(&self) -> (KafkaResult<BorrowedMessage<'_>>, Which) {
        let watchful = async {
            match &self.watchful {
                Some(consumer) => consumer.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = self.lively.recv() => (received, Which::Lively),
            received = watchful => (received, Which::Watchful),
        }
    }

    pub fn consumer(&self, which: Which) -> &StreamConsumer {
        match (which, &self.watchful) {
            (Which::Watchful, Some(watchful)) => watchful,
            _ => &self.lively,
        }
    }

    /// The view changed: the lively consumer reads for the idle policy's `after` from now.
    pub fn stir(&self) {
        if self.watchful.is_none() {
            return;
        }
        let Ok(mut until) = self.lively_until.lock() else {
            return;
        };
        if until.is_none() {
            if let Err(error) = self.lively.assign(&self.assignment) {
                tracing::warn!(%error, "state exchange: the lively consumer did not start");
                return;
            }
            metrics::gauge!("reader_asleep", "reader" => "exchange").set(0.0);
            metrics::counter!("reader_wakeups_total", "reader" => "exchange", "cause" => "told")
                .increment(1);
        }
        *until = Some(Instant::now() + self.after);
    }

    /// Stops the lively consumer once the view has not changed for the policy's `after`.
    pub fn idle(&self) {
        let Ok(mut until) = self.lively_until.lock() else {
            return;
        };
        if self.watchful.is_none() || until.is_none_or(|at| Instant::now() < at) {
            return;
        }
        if let Err(error) = self.lively.unassign() {
            tracing::warn!(%error, "state exchange: the lively consumer did not stop");
            return;
        }
        *until = None;
        metrics::gauge!("reader_asleep", "reader" => "exchange").set(1.0);
    }
}

/// A consumer of the exchange topic; `wait` overrides the configured fetch wait.
fn consumer(
    config: &ExchangeConfig,
    role: &str,
    wait: Option<Duration>,
) -> Result<StreamConsumer, KafkaError> {
    let kafka = match wait {
        Some(wait) => config
            .kafka
            .clone()
            .with_tuning("fetch.wait.max.ms", wait.as_millis()),
        None => config.kafka.clone(),
    };
    // A group id is required by librdkafka even for assign(); nothing is ever committed.
    kafka
        .config(&[("fetch.wait.max.ms", "10")])
        .set("group.id", format!("{}.{role}", config.group))
        .set("enable.auto.commit", "false")
        .create()
}
