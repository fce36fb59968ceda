//! The read side of a region node: counts from the merged CRDT view, liveness, readiness,
//! Prometheus metrics.

mod counts;
mod health;
pub mod history;

pub use health::{QueryState, router};
