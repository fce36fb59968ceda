//! Composition root of a region node: configuration, database, HTTP routes, background tasks.

pub mod app;
pub mod audit;
pub mod config;
pub mod database;
pub mod http;
pub mod latency;
pub mod load;
pub mod openapi;
pub mod replay;
pub mod streams;
pub mod telemetry;
pub mod topic_reader;
pub mod withdrawals;

pub use app::Application;
pub use config::Settings;
