//! The write side's router and the state its handlers share.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};

use axum::middleware;

use crate::auth::Authenticator;
use crate::bulk;
use crate::handlers;
use crate::rate_limit::{self, CommandRateLimit};
use crate::service::CommandService;

/// Commands are small; anything larger is refused with 413 before it is read.
pub const BODY_LIMIT_BYTES: usize = 16 * 1024;

/// What the command routes share.
#[derive(Debug, Clone)]
pub struct CommandState {
    pub service: CommandService,
    pub auth: Arc<Authenticator>,
    pub rate_limit: CommandRateLimit,
}

/// Every write route. Model ids contain `/`, so they are matched by a trailing wildcard
/// (`/v1/models/openai/gpt-5/activate`); `%2F`-encoded ids work as well.
pub fn router(state: CommandState) -> Router {
    // Bulk routes: larger bodies, and not under the per-command budget (an import is one
    // caller's deliberate batch; its commands still queue for the same group commits).
    let bulk = Router::new()
        .route("/v1/imports", post(bulk::import))
        .route("/v1/exports", get(bulk::export))
        .layer(DefaultBodyLimit::max(bulk::IMPORT_BODY_LIMIT_BYTES))
        .with_state(state.clone());
    Router::new()
        .route("/v1/models", post(handlers::register))
        .route(
            "/v1/models/{*rest}",
            post(handlers::lifecycle)
                .put(handlers::set_status)
                .patch(handlers::update_metadata),
        )
        .route(
            "/v1/regions/{region}/models/{*model}",
            put(handlers::availability).delete(handlers::availability),
        )
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit,
        ))
        .with_state(state)
        .merge(bulk)
}
