//! The node's HTTP edge: both sides' routes merged, with tracing, limits and fallbacks.

use axum::Router;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use command_api::{ApiError, CommandState};
use query_api::QueryState;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

/// The node's whole HTTP surface: command and query routes, the OpenAPI document, problem documents for unknown
/// routes, a span per request, and a panic turned into a 500 problem instead of a dropped
/// connection.
pub fn router(commands: CommandState, queries: QueryState) -> Router {
    command_api::router(commands)
        .merge(query_api::router(queries))
        .merge(crate::openapi::router())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal.into_response()
        }))
        .layer(TraceLayer::new_for_http())
}

async fn no_route(uri: Uri) -> Response {
    ApiError::NoRoute(uri.path().to_owned()).into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}
