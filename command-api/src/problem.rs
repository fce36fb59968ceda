//! Problem documents (RFC 9457) for every way a write request can fail, and their HTTP statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::{DomainError, ValidationError};
use http_problem::{PathRejected, Problem};

use crate::command_error::CommandError;

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
    #[error("Content-Type must be {0}")]
    UnsupportedMediaType(&'static str),
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
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
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
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Invalid(_) => "invalid-field",
            ApiError::UnprocessableBody(_) => "unprocessable-body",
            ApiError::IdempotencyKeyReused => "idempotency-key-reused",
            ApiError::TooManyRequests { .. } => "too-many-requests",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal => "internal",
        }
    }

    /// The problem document, with this failure's extension members.
    pub fn problem(&self) -> Problem {
        let problem = Problem::new(self.status(), self.code(), self.to_string());
        match self {
            ApiError::Domain(DomainError::NotOwner { owner, .. }) => {
                problem.with("owner_region", owner.as_str())
            }
            ApiError::Invalid(error) => problem.with("field", error.field),
            ApiError::PreconditionFailed { actual, .. } => problem.with("current_version", *actual),
            ApiError::TooManyRequests { retry_after } => problem.retry_after(*retry_after),
            _ => problem,
        }
    }
}

impl From<PathRejected> for ApiError {
    fn from(rejected: PathRejected) -> Self {
        ApiError::Invalid(ValidationError::new("path", rejected.0))
    }
}

/// The one place the service's answers become HTTP.
impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Refused(refusal) => ApiError::Domain(refusal),
            CommandError::VersionMismatch { expected, actual } => {
                ApiError::PreconditionFailed { expected, actual }
            }
            CommandError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            CommandError::Unavailable => ApiError::Unavailable,
            CommandError::Corrupt => ApiError::Internal,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.problem().into_response()
    }
}
