//! Errors, one enum per layer: topic administration, and relaying (database + broker).

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Creating or checking topics failed.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("kafka admin client: {0}")]
    Kafka(#[from] KafkaError),
    #[error("creating topic {topic}: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("topic {topic} did not appear in broker metadata in time")]
    NotVisible { topic: String },
    #[error(
        "topic {topic} does not exist, and kafka.create_topics is false: create it as docs/DEPLOYMENT.md says"
    )]
    Missing { topic: String },
    #[error("topic {topic}: {setting} is {found}, but the node needs {expected}")]
    Misconfigured {
        topic: String,
        setting: &'static str,
        expected: String,
        found: String,
    },
    #[error("describing topic {topic}: {code}")]
    Describe {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl TopicError {
    /// The topics are there but not as the node needs them: waiting does not help.
    pub fn is_misconfiguration(&self) -> bool {
        matches!(self, Self::Missing { .. } | Self::Misconfigured { .. })
    }
}

/// A relay step (publish, reconcile) failed. Every variant is retried by [`crate::run`].
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {0} is unknown to the broker")]
    UnknownTopic(String),
    #[error("{failed} of {attempted} messages were not delivered; first error: {first}")]
    Undelivered {
        attempted: usize,
        failed: usize,
        first: KafkaError,
    },
    #[error(
        "topic {topic} holds position {on_topic}, but this event store has only written up to \
         {in_store}: the region database is not the one that wrote the topic (recreated or \
         restored from an old backup); publishing would reuse positions that consumers already \
         hold. Restore the database that wrote the topic, or give the region new topics"
    )]
    TopicAheadOfStore {
        topic: String,
        on_topic: i64,
        in_store: i64,
    },
    #[error("reading {topic} partitions {partitions:?} to their end timed out")]
    ReadTimeout { topic: String, partitions: Vec<i32> },
    #[error("ensuring topics: {0}")]
    Topic(#[from] TopicError),
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}
