//! Outbox relay: moves committed `outbox` rows to Kafka, each row exactly once on its topic.
//!
//! The event store writes events and outbox rows in one transaction, in position order. This crate
//! publishes them with an idempotent producer and explicit Kafka-compatible partitioning, marks
//! them published only after delivery is confirmed, and reconciles with the topic after a crash or
//! failure so that nothing is lost and nothing is published twice.

mod config;
mod error;
mod leadership;
mod listener;
mod outbox;
mod partition_reader;
mod producer;
mod publish;
mod reconcile;
mod run;
mod topics;

pub use config::RelayConfig;
pub use error::{RelayError, TopicError};
pub use listener::{OUTBOX_CHANNEL, RELAYED_CHANNEL, Wakeups};
pub use outbox::{OutboxRow, fetch_unpublished, mark_published, mark_unpublished, pending_rows};
pub use producer::{
    CONTENT_TYPE_HEADER, POSITION_HEADER, Publisher, SendReport, position_from_headers,
};
pub use publish::{RelayOutcome, relay_once};
pub use reconcile::{reconcile, reconcile_with};
pub use run::run;
pub use topics::{Provisioning, TopicKind, TopicSpec, ensure_topics};
