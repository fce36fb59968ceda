//! A region node's PostgreSQL event store.
//!
//! Appends are atomic with their outbox rows, the catalogue read model of this node's own
//! events and the idempotency record of the command that produced them.

mod append;
mod catalogue;
mod error;
mod idempotency;
mod load;
mod store;

pub use append::{CommandMeta, IdempotencyClaim, NewEvents, StoredResponse};
pub use catalogue::{CatalogueModel, apply_to_catalogue};
pub use error::{AppendError, StoreError};
pub use idempotency::RecordedAnswer;
pub use store::EventStore;
