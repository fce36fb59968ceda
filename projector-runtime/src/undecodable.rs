//! What a consumer of the events topics does with a record it cannot decode (malformed, no
//! payload, or a schema version newer than this build): stop there without consuming it
//! (`fail`), or copy it to the dead-letter topic, count it and go on (`dead-letter`).

use std::time::Duration;

use kafka_client::{KafkaClient, QuietProducer};
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use serde::Deserialize;
use tracing::{error, warn};

/// Headers a dead-letter copy carries besides the original's own.
pub const SOURCE_TOPIC_HEADER: &str = "aigo-dead-letter-topic";
pub const SOURCE_PARTITION_HEADER: &str = "aigo-dead-letter-partition";
pub const SOURCE_OFFSET_HEADER: &str = "aigo-dead-letter-offset";
pub const ERROR_HEADER: &str = "aigo-dead-letter-error";
/// The consumer group that skipped it: each consumer that skips a record copies it once.
pub const CONSUMER_HEADER: &str = "aigo-dead-letter-consumer";

/// How long a dead-letter copy may take before the consumer gives up (and fails, unconsumed).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The configured policy (`projector.undecodable`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UndecodablePolicy {
    /// Stop at the record: the consumer fails, the node is unready naming the record.
    #[default]
    Fail,
    /// Copy the record to the dead-letter topic, then skip it.
    DeadLetter,
}

impl UndecodablePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::DeadLetter => "dead-letter",
        }
    }
}

/// A record the consumer did not consume.
#[derive(Debug, thiserror::Error)]
pub enum UndecodableError {
    #[error(
        "undecodable record at {topic} partition {partition} offset {offset}: {reason} \
         (projector.undecodable = \"fail\": this fails again at every retry until an operator \
         acts: upgrade this node, remove the record, or set \"dead-letter\" to skip it)"
    )]
    Refused {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error(
        "undecodable record at {topic} partition {partition} offset {offset} ({reason}) was not \
         copied to the dead-letter topic {dead_letter_topic}: {error}"
    )]
    NotCopied {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
        dead_letter_topic: String,
        error: rdkafka::error::KafkaError,
    },
}

/// Applies the policy for one consumer (`consumer` names it in metrics and headers).
#[derive(Clone)]
pub struct Undecodable {
    policy: UndecodablePolicy,
    consumer: String,
    topic: String,
    /// Only with `dead-letter`.
    /// Only with `dead-letter`; a [`QuietProducer`], which costs nothing while idle.
    producer: Option<QuietProducer>,
}

impl std::fmt::Debug for Undecodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Undecodable")
            .field("policy", &self.policy)
            .field("consumer", &self.consumer)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Undecodable {
    /// `dead_letter_topic` is only written with [`UndecodablePolicy::DeadLetter`].
    pub fn new(
        policy: UndecodablePolicy,
        kafka: &KafkaClient,
        dead_letter_topic: &str,
        consumer: &str,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let producer = match policy {
            UndecodablePolicy::Fail => None,
            UndecodablePolicy::DeadLetter => {
                let mut config = kafka.config(&[(
                    "message.timeout.ms",
                    &DELIVERY_TIMEOUT.as_millis().to_string(),
                )]);
                config.set("acks", "all");
                Some(QuietProducer::create(&config)?)
            }
        };
        Ok(Self {
            policy,
            consumer: consumer.to_owned(),
            topic: dead_letter_topic.to_owned(),
            producer,
        })
    }

    /// Handles `message`, which could not be decoded because of `reason`: `Ok` means it was
    /// dead-lettered and its offset may be consumed; `Err` means the consumer must stop before
    /// it.
    pub async fn handle(
        &self,
        message: &BorrowedMessage<'_>,
        reason: &str,
    ) -> Result<(), UndecodableError> {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        metrics::counter!("undecodable_records_total", "consumer" => self.consumer.clone(),
            "policy" => self.policy.as_str())
        .increment(1);
        let Some(producer) = &self.producer else {
            error!(topic, partition, offset, reason, consumer = %self.consumer,
                   "undecodable record: stopping before it (policy fail)");
            return Err(UndecodableError::Refused {
                topic: topic.to_owned(),
                partition,
                offset,
                reason: reason.to_owned(),
            });
        };
        let (partition_text, offset_text) = (partition.to_string(), offset.to_string());
        let mut headers = OwnedHeaders::new();
        for header in message.headers().into_iter().flat_map(|h| h.iter()) {
            headers = headers.insert(header);
        }
        for (key, value) in [
            (SOURCE_TOPIC_HEADER, topic),
            (SOURCE_PARTITION_HEADER, partition_text.as_str()),
            (SOURCE_OFFSET_HEADER, offset_text.as_str()),
            (ERROR_HEADER, reason),
            (CONSUMER_HEADER, self.consumer.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        // message.timeout.ms bounds the delivery; a dropped producer cancels it.
        let delivered = match producer.send_result(record) {
            Ok(delivery) => match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(error),
                Err(_canceled) => Err(rdkafka::error::KafkaError::Canceled),
            },
            Err((error, _)) => Err(error),
        };
        match delivered {
            Ok(()) => {
                warn!(topic, partition, offset, reason, consumer = %self.consumer,
                      dead_letter_topic = %self.topic, "undecodable record dead-lettered and skipped");
                metrics::counter!("dead_lettered_records_total", "consumer" => self.consumer.clone())
                    .increment(1);
                Ok(())
            }
            Err(error) => Err(UndecodableError::NotCopied {
                topic: topic.to_owned(),
                partition,
                offset,
                reason: reason.to_owned(),
                dead_letter_topic: self.topic.clone(),
                error,
            }),
        }
    }
}
