//! Problem documents (RFC 9457) in the format the command API uses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `{"type": "/problems/<code>", "title", "status", "detail", "code"}`.
pub(crate) fn problem(status: StatusCode, code: &str, detail: impl Into<String>) -> Response {
    let body = json!({
        "type": format!("/problems/{code}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail.into(),
        "code": code,
    });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
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
