//! Every way a read can fail, as an `application/problem+json` document (RFC 9457) in the same
//! shape as the command side's: `type` `/problems/<code>`, `title`, `status`, `detail`, `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("region {0:?} is not part of this deployment")]
    UnknownRegion(String),
    #[error("no model {0:?}")]
    UnknownModel(String),
    #[error("{field}: {reason}")]
    InvalidParameter { field: &'static str, reason: String },
    #[error("consistency token {0:?} is not a token this API issued")]
    InvalidConsistencyToken(String),
    #[error("the projection did not include {token} within {waited_ms} ms; retry later")]
    ConsistencyTimeout { token: String, waited_ms: u128 },
    #[error("{0} live streams are open, the most this node serves; retry later")]
    TooManyStreams(usize),
    #[error("the read model is unavailable; retry later")]
    Unavailable,
}

impl QueryError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            field,
            reason: reason.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownRegion(_) | Self::UnknownModel(_) => StatusCode::NOT_FOUND,
            Self::InvalidParameter { .. } | Self::InvalidConsistencyToken(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::ConsistencyTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::TooManyStreams(_) | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Stable machine-readable name, also the last segment of `type`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownRegion(_) => "unknown-region",
            Self::UnknownModel(_) => "unknown-model",
            Self::InvalidParameter { .. } => "invalid-parameter",
            Self::InvalidConsistencyToken(_) => "invalid-consistency-token",
            Self::ConsistencyTimeout { .. } => "consistency-timeout",
            Self::TooManyStreams(_) => "too-many-streams",
            Self::Unavailable => "unavailable",
        }
    }
}

impl From<sqlx::Error> for QueryError {
    fn from(error: sqlx::Error) -> Self {
        tracing::warn!(%error, "read model unavailable");
        Self::Unavailable
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let field = match &self {
            Self::InvalidParameter { field, .. } => Some(*field),
            _ => None,
        };
        document(self.status(), self.code(), &self.to_string(), field)
    }
}

/// A problem document: `type` `/problems/<code>`, `title`, `status`, `detail`, `code`, and the
/// offending parameter as `field` when there is one.
pub(crate) fn document(
    status: StatusCode,
    code: &str,
    detail: &str,
    field: Option<&str>,
) -> Response {
    let mut body = json!({
        "type": format!("/problems/{code}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    if let (Some(field), Some(fields)) = (field, body.as_object_mut()) {
        fields.insert("field".into(), json!(field));
    }
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // Both causes pass quickly: a stream slot frees up, the database comes back.
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    response
}
