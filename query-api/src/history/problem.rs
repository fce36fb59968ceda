//! Problem documents (RFC 9457) in the format the command API uses.

use axum::http::StatusCode;
use axum::response::Response;

/// `{"type": "/problems/<code>", "title", "status", "detail", "code"}`.
pub(crate) fn problem(status: StatusCode, code: &str, detail: impl Into<String>) -> Response {
    crate::problem::document(status, code, &detail.into(), None)
}

/// The event log could not be read: retry later.
pub(crate) fn unavailable(error: &sqlx::Error) -> Response {
    tracing::warn!(%error, "event log unavailable");
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the event log is unavailable; retry later",
    )
}
