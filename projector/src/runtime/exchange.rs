//! Counter-state exchange between regions: every actor's latest state on one compacted topic,
//! keyed by actor. Each node publishes its own actors' states after every checkpoint commit and
//! merges every state it reads (its own included), so all nodes converge on the same totals.

use std::future::Future;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::projection::Projection;
use crate::{ActorState, GlobalView};

/// The exchange topic has one partition: a handful of actors, read whole by every node.
pub const EXCHANGE_PARTITIONS: i32 = 1;

/// Publishes actor states; delivery failures are logged, the next commit publishes again.
///
/// Not an idempotent producer, on purpose: states are CRDTs, so a duplicate or reordered state
/// changes nothing when merged, and Nisshi's sqlite engine fails idempotent produce requests
/// under load (`producer_select_for_update` misuse) and after restarts.
#[derive(Clone)]
pub struct StatePublisher {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for StatePublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatePublisher")
            .field("topic", &self.topic)
            .finish()
    }
}

impl StatePublisher {
    pub fn new(
        brokers: &str,
        topic: impl Into<String>,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "false")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("message.timeout.ms", "10000")
            .create()?;
        Ok(Self {
            producer,
            topic: topic.into(),
        })
    }

    pub fn publish(&self, state: &ActorState) {
        let bytes = match state.encode() {
            Ok(bytes) => bytes,
            Err(error) => {
                warn!(%error, actor = %state.actor(), "cannot encode actor state");
                return;
            }
        };
        let key = state.actor().to_string();
        let record = FutureRecord::to(&self.topic).key(&key).payload(&bytes);
        match self.producer.send_result(record) {
            Ok(delivery) => {
                tokio::spawn(async move {
                    if let Ok(Err((error, _))) = delivery.await {
                        warn!(%error, actor = key, "actor state not delivered; the next commit resends");
                    }
                });
            }
            Err((error, _)) => warn!(%error, actor = key, "actor state not queued"),
        }
    }
}

/// Reads the exchange topic from its end, forever, merging every state into `projection`.
pub async fn run_exchange(
    brokers: &str,
    topic: &str,
    consumer_group: &str,
    projection: Projection,
    shutdown: impl Future<Output = ()>,
) -> Result<(), rdkafka::error::KafkaError> {
    // A group id is required by librdkafka even for assign(); nothing is ever committed.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", consumer_group)
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..EXCHANGE_PARTITIONS {
        // From the end: every live actor republishes its state each heartbeat, so a node hears
        // every running region within one heartbeat; states of regions that are down come from
        // the node's own memory (`known_states`). (On Kafka, reading the compacted topic from
        // offset 0 would recover them too; Nisshi 0.7 does not serve old offsets of this topic
        // reliably, see docs/BROKER.md.)
        assignment.add_partition_offset(topic, partition, Offset::End)?;
    }
    consumer.assign(&assignment)?;
    info!(topic, "state exchange started");
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let received = tokio::select! {
            () = shutdown.as_mut() => return Ok(()),
            received = consumer.recv() => received,
        };
        let first = match received {
            Ok(message) => message,
            Err(error) => {
                warn!(%error, "state exchange: consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < 256 {
            match tokio::time::timeout(Duration::from_millis(1), consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message),
                _ => break,
            }
        }
        let mut states = Vec::with_capacity(batch.len());
        for message in &batch {
            match message.payload().map(ActorState::decode) {
                Some(Ok(state)) => {
                    metrics::gauge!("exchange_last_state_received_seconds", "actor" => state.actor().to_string())
                        .set(chrono::Utc::now().timestamp() as f64);
                    states.push(state);
                }
                Some(Err(error)) => {
                    warn!(%error, offset = message.offset(), "undecodable actor state")
                }
                None => {}
            }
        }
        projection.observe(states).await;
    }
}

/// Merges states without a running node (tests, audits).
pub fn merge_all(states: impl IntoIterator<Item = ActorState>) -> GlobalView {
    let mut view = GlobalView::new();
    for state in states {
        view.observe(state);
    }
    view
}
