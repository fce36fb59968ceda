//! A region node's PostgreSQL event store.
//!
//! Appends are atomic with their outbox rows, the catalogue read model of this node's own
//! events and the idempotency record of the command that produced them.

mod append;
mod append_batch;
mod append_queue;
pub mod catalogue;
mod error;
pub mod event_log;
pub mod history_index;
mod idempotency;
mod load;
mod read_point;
mod store;
mod stream_heads;
mod table_stats;

pub use append::{
    AnswerFn, AppendRequest, CommandMeta, IdempotencyClaim, NewEvents, StoredResponse,
};
pub use append_batch::BatchOutcome;
pub use append_queue::AppendQueue;
pub use error::{AppendError, StoreError};
pub use idempotency::RecordedAnswer;
pub use read_point::ReadPoint;
pub use store::EventStore;
pub use stream_heads::StreamState;
pub use table_stats::GrowthAnalyzer;
