//! Topic creation at start-up, shared by the relay and the projector (compacted state topic).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::{info, warn};

use crate::error::TopicError;

/// A topic the application needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// `cleanup.policy=compact` (latest value per key kept), e.g. for CRDT state exchange.
    pub compacted: bool,
    /// Replication factor; `None` lets the broker choose (`default.replication.factor`).
    pub replication: Option<i32>,
}

impl TopicSpec {
    /// A delete-policy topic with the broker's default replication.
    #[must_use]
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            compacted: false,
            replication: None,
        }
    }

    /// The same topic, compacted.
    #[must_use]
    pub fn compacted(mut self) -> Self {
        self.compacted = true;
        self
    }
}

/// Creates every topic that does not exist yet ("already exists" is success), then waits until
/// each is visible in metadata so a producer can be pointed at it straight away.
///
/// An existing topic is left as it is; a partition count different from the spec is logged,
/// because key -> partition mapping follows the real count.
pub async fn ensure_topics(
    brokers: &str,
    specs: &[TopicSpec],
    timeout: Duration,
) -> Result<(), TopicError> {
    if specs.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;

    let configs: Vec<(String, i32, i32, bool)> = specs
        .iter()
        // -1 asks the broker for its default replication factor (KIP-464).
        .map(|s| {
            (
                s.name.clone(),
                s.partitions,
                s.replication.unwrap_or(-1),
                s.compacted,
            )
        })
        .collect();
    let new_topics: Vec<NewTopic<'_>> = configs
        .iter()
        .map(|(name, partitions, replication, compacted)| {
            let topic = NewTopic::new(name, *partitions, TopicReplication::Fixed(*replication));
            if *compacted {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let results = admin.create_topics(new_topics.iter(), &options).await?;
    for result in results {
        match result {
            Ok(name) => info!(topic = %name, "created topic"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                info!(topic = %name, "topic already exists");
            }
            Err((topic, code)) => return Err(TopicError::Create { topic, code }),
        }
    }

    let admin = Arc::new(admin);
    for spec in specs {
        let admin = Arc::clone(&admin);
        let name = spec.name.clone();
        let found =
            tokio::task::spawn_blocking(move || wait_for_topic(admin.inner(), &name, timeout))
                .await??;
        match found {
            Some(n) if n != spec.partitions => warn!(
                topic = %spec.name, expected = spec.partitions, actual = n,
                "existing topic has a different partition count"
            ),
            Some(_) => {}
            None => {
                return Err(TopicError::NotVisible {
                    topic: spec.name.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Polls metadata until the topic has partitions, or the deadline passes (blocking).
fn wait_for_topic<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<i32>, KafkaError> {
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if let Some(n) = partition_count(client, topic, remaining.max(Duration::from_millis(100)))?
        {
            return Ok(Some(n));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Partition count from broker metadata; `None` when the topic does not exist (blocking).
pub(crate) fn partition_count<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<i32>, KafkaError> {
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    let count = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .filter(|&n| n > 0);
    Ok(count.and_then(|n| i32::try_from(n).ok()))
}
