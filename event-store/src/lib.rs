//! A region node's PostgreSQL event store.
//!
//! Appends are atomic with their outbox rows, the catalogue read model of this node's own
//! events and the idempotency record of the command that produced them.

mod append;
pub mod catalogue;
mod error;
pub mod event_log;
pub mod history_index;
mod idempotency;
mod load;
mod store;
mod stream_heads;

pub use append::{CommandMeta, IdempotencyClaim, NewEvents, StoredResponse};
pub use error::{AppendError, StoreError};
pub use idempotency::RecordedAnswer;
pub use store::EventStore;
pub use stream_heads::StreamState;
