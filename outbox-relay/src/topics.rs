//! The topics a node needs: created at start-up unless an operator provisions them, and
//! checked either way: the partition count the key → partition mapping depends on, the
//! unlimited retention of event topics (replay, audits and new nodes read them from offset 0)
//! and the compaction of the state exchange.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_client::KafkaClient;
use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigResource, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::info;

use crate::error::TopicError;

/// What a topic's records are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// The source of truth: kept forever (`retention.ms=-1`, `retention.bytes=-1`).
    Events,
    /// Latest value per key kept (`cleanup.policy=compact`), e.g. the CRDT state exchange.
    Compacted,
    /// The broker's defaults.
    Plain,
}

/// A topic the application needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub kind: TopicKind,
    /// Replication factor when created; `None` lets the broker choose
    /// (`default.replication.factor`).
    pub replication: Option<i32>,
    /// `min.insync.replicas` when created; `None`: the broker's default.
    pub min_insync_replicas: Option<i32>,
}

impl TopicSpec {
    /// A plain topic with the broker's default replication.
    #[must_use]
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            kind: TopicKind::Plain,
            replication: None,
            min_insync_replicas: None,
        }
    }

    /// The same topic, holding events: retained forever.
    #[must_use]
    pub fn events(mut self) -> Self {
        self.kind = TopicKind::Events;
        self
    }

    /// The same topic, compacted.
    #[must_use]
    pub fn compacted(mut self) -> Self {
        self.kind = TopicKind::Compacted;
        self
    }

    /// The same topic, created with `replication` replicas (`-1`: the broker's default) and
    /// `min_insync` in-sync replicas (`0`: the broker's default).
    #[must_use]
    pub fn replicated(mut self, replication: i32, min_insync: i32) -> Self {
        self.replication = (replication > 0).then_some(replication);
        self.min_insync_replicas = (min_insync > 0).then_some(min_insync);
        self
    }

    /// The settings the topic is created with and must keep: `(name, value)`.
    fn required_settings(&self) -> &'static [(&'static str, &'static str)] {
        match self.kind {
            TopicKind::Events => &[("retention.ms", "-1"), ("retention.bytes", "-1")],
            TopicKind::Compacted => &[("cleanup.policy", "compact")],
            TopicKind::Plain => &[],
        }
    }
}

/// Whether topics that do not exist are created, or only looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioning {
    /// Create what is missing ("already exists" is success), then check.
    Create,
    /// An operator provisions the topics: only check them (`kafka.create_topics = false`).
    CheckOnly,
}

/// Creates every missing topic (unless `provisioning` says an operator does), waits until
/// each is visible in metadata so a producer can be pointed at it straight away, then checks
/// each one's partition count and required settings. A topic that is missing (when only
/// checking) or misconfigured is a [`TopicError`] whose [`TopicError::is_misconfiguration`]
/// is true: retrying does not help.
pub async fn ensure_topics(
    kafka: &KafkaClient,
    specs: &[TopicSpec],
    timeout: Duration,
    provisioning: Provisioning,
) -> Result<(), TopicError> {
    if specs.is_empty() {
        return Ok(());
    }
    // Looking a topic up must never create it with the broker's defaults (librdkafka's admin
    // client is a producer, which asks for automatic creation unless told not to).
    let admin: AdminClient<DefaultClientContext> = kafka
        .config(&[])
        .set("allow.auto.create.topics", "false")
        .create()?;
    if provisioning == Provisioning::Create {
        create_missing(&admin, specs, timeout).await?;
    }
    let admin = Arc::new(admin);
    for spec in specs {
        let admin_for_metadata = Arc::clone(&admin);
        let name = spec.name.clone();
        let found = tokio::task::spawn_blocking(move || {
            wait_for_topic(admin_for_metadata.inner(), &name, timeout)
        })
        .await??;
        let Some(actual) = found else {
            return Err(match provisioning {
                Provisioning::Create => TopicError::NotVisible {
                    topic: spec.name.clone(),
                },
                Provisioning::CheckOnly => TopicError::Missing {
                    topic: spec.name.clone(),
                },
            });
        };
        if actual != spec.partitions {
            return Err(TopicError::Misconfigured {
                topic: spec.name.clone(),
                setting: "partitions",
                expected: spec.partitions.to_string(),
                found: actual.to_string(),
            });
        }
        check_settings(&admin, spec, timeout).await?;
    }
    Ok(())
}

async fn create_missing(
    admin: &AdminClient<DefaultClientContext>,
    specs: &[TopicSpec],
    timeout: Duration,
) -> Result<(), TopicError> {
    let min_insync: Vec<Option<String>> = specs
        .iter()
        .map(|s| s.min_insync_replicas.map(|n| n.to_string()))
        .collect();
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .zip(&min_insync)
        .map(|(spec, min_insync)| {
            // -1 asks the broker for its default replication factor (KIP-464).
            let replication = TopicReplication::Fixed(spec.replication.unwrap_or(-1));
            let mut topic = NewTopic::new(&spec.name, spec.partitions, replication);
            for (name, value) in spec.required_settings() {
                topic = topic.set(name, value);
            }
            if let Some(min_insync) = min_insync {
                topic = topic.set("min.insync.replicas", min_insync);
            }
            topic
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
    Ok(())
}

/// Checks the settings `spec` requires against what the broker describes. A setting the
/// broker does not list is its default, which is never what is required here.
async fn check_settings(
    admin: &AdminClient<DefaultClientContext>,
    spec: &TopicSpec,
    timeout: Duration,
) -> Result<(), TopicError> {
    let required = spec.required_settings();
    if required.is_empty() {
        return Ok(());
    }
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(&spec.name)], &options)
        .await?;
    let config: ConfigResource = described
        .into_iter()
        .next()
        .ok_or_else(|| TopicError::NotVisible {
            topic: spec.name.clone(),
        })?
        .map_err(|code| TopicError::Describe {
            topic: spec.name.clone(),
            code,
        })?;
    for (setting, expected) in required {
        let found = config.get(setting).and_then(|entry| entry.value.as_deref());
        let matches = match (*setting, found) {
            // `compact,delete` compacts too.
            ("cleanup.policy", Some(value)) => value.split(',').any(|p| p.trim() == "compact"),
            (_, Some(value)) => value == *expected,
            (_, None) => false,
        };
        if !matches {
            return Err(TopicError::Misconfigured {
                topic: spec.name.clone(),
                setting,
                expected: (*expected).to_owned(),
                found: found.unwrap_or("the broker's default").to_owned(),
            });
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
