//! The read side of a region node: counts from the merged CRDT view, liveness, readiness,
//! Prometheus metrics.

mod counts;
mod dashboard;
mod health;

pub use health::{QueryState, router};
