//! Composition root of a region node: configuration, database, HTTP routes, background tasks.

pub mod access_log;
pub mod app;
pub mod audit;
pub mod bulk;
pub mod config;
pub mod database;
pub mod http;
pub mod metric_catalog;
pub mod openapi;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod recount;
pub mod replay;
mod replay_workers;
pub mod republish;
pub mod reset_states;
pub mod serve;
pub mod streams;
pub mod supervisor;
pub mod telemetry;
#[cfg(test)]
mod test_events;
pub mod topic_reader;
pub mod withdrawals;

pub use app::Application;
pub use config::Settings;
