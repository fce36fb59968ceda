//! The read side of a region node. For now: liveness, readiness and Prometheus metrics.

mod health;

pub use health::{QueryState, router};
