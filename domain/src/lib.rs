//! The model-lifecycle domain: pure and synchronous, no I/O.
//!
//! Commands are decided against the current state of one stream (`decide`), producing events;
//! events are folded back into state (`evolve`). Everything a decision needs from outside its
//! stream (the acting region, catalogue facts) is looked up by the caller and put in the command.

mod availability;
mod command;
mod envelope;
mod error;
mod ids;
mod lifecycle;
mod model;
mod ownership;
mod partitioner;
mod payload_de;
mod schema;
mod stream;
mod text;
mod token;
mod upcast;

pub use availability::{
    AvailabilityState, CatalogueFacts, decide_availability, evolve_availability,
};
pub use command::{AvailabilityCommand, ModelCommand, RegisterModel, UpdateMetadata};
pub use envelope::{
    CURRENT_SCHEMA_VERSION, DecodeError, EventEnvelope, EventPayload, WithdrawReason,
};
pub use error::{DomainError, ValidationError};
pub use ids::{ModelId, ProviderId, RegionId};
pub use lifecycle::{Lifecycle, OperationalStatus};
pub use model::{ModelRecord, ModelState, decide_model, evolve_model};
pub use ownership::Ownership;
pub use partitioner::{murmur2, partition_for};
pub use schema::LocalizedName;
pub use stream::StreamId;
pub use text::{LocalizedText, TextLimit, is_locale_tag};
pub use token::ConsistencyToken;
