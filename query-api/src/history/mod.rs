//! History answered by replaying the node's event log (`event_log`, every region's events):
//! counts as of an instant, counts over time, and every event of one model.
//!
//! Counts are computed by the projector's own fold ([`projector::Replay`]), one fold per CRDT
//! actor (region, partition), so they equal a full replay of the Kafka topics cut at the same
//! instant, whatever snapshots the live projection holds.

pub mod at;
mod log;
pub mod model;
mod params;
mod problem;
pub mod series;

pub use at::counts_at;
pub use model::model_history;
pub use series::counts_series;
