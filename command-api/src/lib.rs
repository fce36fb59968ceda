//! The write side of a region node: every command route of the HTTP contract.
//!
//! Requests are authenticated and validated at the edge, decided by the pure domain and
//! appended to the event store; domain refusals become 4xx problem documents, store failures
//! 503. `router` builds the routes; serving them is the caller's business.

mod auth;
mod body;
mod bulk;
mod command_error;
mod dto;
mod handlers;
mod headers;
mod openapi;
mod operations;
mod problem;
mod rate_limit;
mod routes;
mod service;
mod targets;

pub use auth::{Authenticator, Principal, Scope, TokenConfig};
pub use bulk::{ImportLine, ImportOutcome};
pub use command_error::CommandError;
pub use dto::CommandAccepted;
pub use openapi::ApiDoc;
pub use problem::ApiError;
pub use rate_limit::CommandRateLimit;
pub use routes::{CommandState, router};
pub use service::{Accepted, CommandRequest, CommandService, Target};
