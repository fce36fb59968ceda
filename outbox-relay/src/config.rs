//! Relay settings. The composition root fills them (file, environment); defaults suit a dev box.

use std::time::Duration;

use kafka_client::KafkaClient;

use crate::topics::{Provisioning, TopicSpec};

/// How the relay talks to Kafka and paces itself.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The brokers and the operator's client properties.
    pub kafka: KafkaClient,
    /// Topics created (if absent, unless provisioned by an operator) and checked before the
    /// first publish.
    pub topics: Vec<TopicSpec>,
    pub provisioning: Provisioning,
    /// Rows read and sent per batch.
    pub batch_size: u32,
    /// Wake-up interval when no notification arrives: covers missed `NOTIFY`s and outages.
    pub poll_interval: Duration,
    /// Upper bound of the exponential back-off after a failed step.
    pub max_backoff: Duration,
    /// `message.timeout.ms`: finite, so a broker outage surfaces as a delivery error.
    pub message_timeout: Duration,
    /// `linger.ms`: small, the relay already sends in batches.
    pub linger: Duration,
    /// Timeout of metadata, watermark and admin requests, and of reading back the topic tail.
    pub request_timeout: Duration,
    /// A topic found empty from offset 0 although rows were published to it (lost and created
    /// again) gets every row sent again.
    pub republish_lost_topics: bool,
}

impl RelayConfig {
    /// Defaults for everything but the brokers.
    #[must_use]
    pub fn new(kafka: impl Into<KafkaClient>) -> Self {
        Self {
            kafka: kafka.into(),
            topics: Vec::new(),
            provisioning: Provisioning::Create,
            batch_size: 500,
            poll_interval: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            message_timeout: Duration::from_secs(10),
            linger: Duration::from_millis(5),
            request_timeout: Duration::from_secs(5),
            republish_lost_topics: true,
        }
    }

    /// Adds a topic to create at start-up.
    #[must_use]
    pub fn with_topic(mut self, spec: TopicSpec) -> Self {
        self.topics.push(spec);
        self
    }
}
