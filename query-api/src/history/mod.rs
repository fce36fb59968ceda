//! History from the node's event log (`event_log`, every region's events): counts as of an
//! instant, counts over time, and every event of one model.
//!
//! Counts are computed by the projector's own fold ([`projector::Replay`]), one fold per CRDT
//! actor (region, partition), each in its log order, so they equal a full replay of the Kafka
//! topics cut at the same instant, whatever snapshots the live projection holds. The event time
//! only decides where an actor's events stop counting (see [`counts_at_points`]). The history
//! index ([`index`]) keeps that fold's results in blocks so an instant costs a block per actor;
//! the replay stays the reference, and answers whenever the index is behind.

pub mod at;
mod gate;
pub mod index;
mod log;
pub mod model;
mod params;
pub mod series;
mod source;

pub use at::counts_at;
pub use gate::{HistoryGate, IndexUse};
pub use log::{PointCounts, counts_at_points};
pub use model::model_history;
pub use series::counts_series;
pub use source::counts_at_instants;
