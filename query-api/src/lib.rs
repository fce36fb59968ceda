//! The read side of a region node: counts from the merged CRDT view, read-your-writes, the
//! catalogue of models, live push over SSE, liveness, readiness, Prometheus metrics.

mod changes;
mod consistency;
mod counts;
mod cursor;
mod dashboard;
mod health;
pub mod history;
mod locale;
mod models;
mod openapi;
mod params;
mod problem;
mod readiness;
mod routes;
mod state;
pub mod stream;

pub use history::{HistoryGate, IndexUse};
pub use openapi::ApiDoc;
pub use readiness::TaskHealth;
pub use routes::router;
pub use state::QueryState;
pub use stream::hub::{StreamHub, run_hub};
