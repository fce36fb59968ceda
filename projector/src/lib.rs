//! The regional projector's pure core: folding a region's events into CRDT counters, the
//! versioned state actors exchange, and the merge into global totals. No I/O here: the Kafka
//! consumer and the checkpoint store build on it (crate `projector-runtime`).
//!
//! - A CRDT actor is one partition of one region's events topic ([`ActorId`]).
//! - [`PartitionFold`] folds that partition's events into per-stream facts and the actor's
//!   [`Counters`] (PN-counters per [`MetricKey`], holding this actor's dots only), skipping
//!   re-deliveries by stream sequence; [`PartitionFold::checkpoint_parts`] is its checkpoint (a head and the
//!   facts of the streams that changed), [`PartitionFold::snapshot`] the whole fold in one blob.
//! - [`ActorState`] is what an actor publishes; its encoding is versioned and deterministic.
//! - [`GlobalView`] merges any actor states received into [`CountSnapshot`]s.

mod actor;
mod checkpoint_parts;
mod counters;
mod counts;
mod epoch;
mod error;
mod facts;
mod fold;
mod global;
mod held;
pub mod history;
pub mod live;
mod metric;
mod outcome;
mod replay;
mod rules;
mod snapshot;
mod state;
pub mod state_codec;
pub mod trust;
mod watermark;

pub use actor::ActorId;
pub use checkpoint_parts::{
    CheckpointParts, FactsRow, FoldHead, checkpointed_state, is_whole_snapshot,
};
pub use counters::{Counters, MAX_DOT};
pub use counts::{CountSnapshot, ProviderCounts, RegionCounts, Totals};
pub use epoch::{EPOCH_MARK_KEY, EpochMark};
pub use error::{CodecError, FoldError, InvalidState, ParseError};
pub use facts::{AvailabilityFacts, ModelFacts, PartitionFacts};
pub use fold::PartitionFold;
pub use global::{GlobalView, Observed};
pub use held::HeldEvents;
pub use live::change_feed::{ChangeFeed, ChangeNotice};
pub use live::projection::{CountsChanged, Projection};
pub use metric::MetricKey;
pub use outcome::{FoldOutcome, FoldStats, SkipReason};
pub use replay::Replay;
pub use state::ActorState;
pub use watermark::{EventMark, Watermark};
