use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{DomainError, ValidationError};
use event_store::StoreError;
use serde_json::{Map, Value, json};

use crate::dto::problem_type;

/// Every way a command can fail, each with its status and problem document (RFC 9457).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    MalformedBody(String),
    #[error("{0}")]
    BadHeader(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("this token may not write as region {0}")]
    Forbidden(String),
    #[error("no route {0}")]
    NoRoute(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("If-Match was \"{expected}\" but the model is at \"{actual}\"")]
    PreconditionFailed { expected: u64, actual: u64 },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{0}")]
    UnprocessableBody(String),
    #[error("Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("too many commands from this caller; retry in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    #[error("the event store is unavailable; retry later")]
    Unavailable,
    #[error("an internal error occurred")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedBody(_) | ApiError::BadHeader(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NoRoute(_) | ApiError::Domain(DomainError::UnknownModel(_)) => {
                StatusCode::NOT_FOUND
            }
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Domain(DomainError::StreamMismatch { .. }) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Domain(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid(_)
            | ApiError::UnprocessableBody(_)
            | ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine-readable name for the failure, also the last segment of `type`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedBody(_) => "malformed-body",
            ApiError::BadHeader(_) => "bad-header",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NoRoute(_) => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Domain(error) => match error {
                DomainError::UnknownModel(_) => "unknown-model",
                DomainError::AlreadyRegistered(_) => "already-registered",
                DomainError::IllegalTransition { .. } => "illegal-transition",
                DomainError::StatusUnchanged(_) => "status-unchanged",
                DomainError::NothingChanged => "nothing-changed",
                DomainError::Retired(_) => "model-retired",
                DomainError::AlreadyServed { .. } => "already-served",
                DomainError::NotServed { .. } => "not-served",
                DomainError::NotOwner { .. } => "wrong-owner",
                DomainError::StreamMismatch { .. } => "stream-mismatch",
            },
            ApiError::PreconditionFailed { .. } => "version-mismatch",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType => "unsupported-media-type",
            ApiError::Invalid(_) => "invalid-field",
            ApiError::UnprocessableBody(_) => "unprocessable-body",
            ApiError::IdempotencyKeyReused => "idempotency-key-reused",
            ApiError::TooManyRequests { .. } => "too-many-requests",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal => "internal",
        }
    }

    fn extensions(&self) -> Map<String, Value> {
        let mut ext = Map::new();
        ext.insert("code".into(), json!(self.code()));
        match self {
            ApiError::Domain(DomainError::NotOwner { owner, .. }) => {
                ext.insert("owner_region".into(), json!(owner));
            }
            ApiError::Invalid(error) => {
                ext.insert("field".into(), json!(error.field));
            }
            ApiError::PreconditionFailed { actual, .. } => {
                ext.insert("current_version".into(), json!(actual));
            }
            _ => {}
        }
        ext
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(cause) => {
                tracing::warn!(error = %cause, "event store unavailable");
                ApiError::Unavailable
            }
            other => {
                tracing::error!(error = %other, "event store returned unreadable data");
                ApiError::Internal
            }
        }
    }
}

/// Builds the `application/problem+json` body shared by every error.
pub(crate) fn problem_body(status: StatusCode, code: &str, detail: &str) -> Value {
    json!({
        "type": problem_type(code),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = problem_body(status, self.code(), &self.to_string());
        if let Value::Object(fields) = &mut body {
            fields.extend(self.extensions());
        }
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::TooManyRequests { retry_after } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}
