//! Every way a read can fail, as an `application/problem+json` document (RFC 9457) in the same
//! shape as the command side's: `type` `/problems/<code>`, `title`, `status`, `detail`, `code`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http_problem::{PathRejected, Problem};

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
    #[error("this client holds {0} live streams, the most one address may hold; close one first")]
    TooManyStreamsFromHost(usize),
    #[error("the read model is unavailable; retry later")]
    Unavailable,
    #[error("{0}")]
    InvalidInstant(String),
    #[error("{0}")]
    InvalidSeries(String),
    #[error("the event log is unavailable; retry later")]
    LogUnavailable,
    #[error("{0} history reads are running, the most this node runs at once; retry later")]
    Busy(usize),
    #[error("this node starts at most {0} history reads a second; retry later")]
    OverBudget(u32),
    #[error("the read took longer than this node allows; narrow it or retry later")]
    ReadTimeout,
    #[error(
        "the history index holds {indexed} of the {logged} events logged and is catching up \
         (after a restart or a burst); a replay of the whole log is not run for one read; \
         retry shortly"
    )]
    IndexCatchingUp { indexed: i64, logged: i64 },
    #[error("{0}")]
    Internal(&'static str),
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
            Self::TooManyStreamsFromHost(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::TooManyStreams(_)
            | Self::Unavailable
            | Self::LogUnavailable
            | Self::Busy(_)
            | Self::OverBudget(_)
            | Self::ReadTimeout
            | Self::IndexCatchingUp { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::InvalidInstant(_) | Self::InvalidSeries(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
            Self::TooManyStreamsFromHost(_) => "too-many-streams-from-host",
            Self::Unavailable | Self::LogUnavailable => "unavailable",
            Self::Busy(_) | Self::OverBudget(_) => "busy",
            Self::ReadTimeout => "read-timeout",
            Self::IndexCatchingUp { .. } => "index-catching-up",
            Self::InvalidInstant(_) => "invalid-instant",
            Self::InvalidSeries(_) => "invalid-series",
            Self::Internal(_) => "internal",
        }
    }
}

impl QueryError {
    /// The event log (history's source) could not be read.
    pub fn log_unavailable(error: &sqlx::Error) -> Self {
        if is_statement_timeout(error) {
            return Self::from_timeout(error);
        }
        tracing::warn!(%error, "event log unavailable");
        Self::LogUnavailable
    }

    fn from_timeout(error: &sqlx::Error) -> Self {
        tracing::warn!(%error, "a read hit the read pool's statement timeout");
        metrics::counter!("reads_timed_out_total").increment(1);
        Self::ReadTimeout
    }
}

/// PostgreSQL's `query_canceled` (SQLSTATE 57014): the read pool's `statement_timeout` fired.
fn is_statement_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "57014")
}

impl From<sqlx::Error> for QueryError {
    fn from(error: sqlx::Error) -> Self {
        if is_statement_timeout(&error) {
            return Self::from_timeout(&error);
        }
        tracing::warn!(%error, "read model unavailable");
        Self::Unavailable
    }
}

impl From<PathRejected> for QueryError {
    fn from(rejected: PathRejected) -> Self {
        Self::invalid("path", rejected.0)
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let mut problem = Problem::new(self.status(), self.code(), self.to_string());
        if let Self::InvalidParameter { field, .. } = &self {
            problem = problem.with("field", *field);
        }
        if problem.status() == StatusCode::TOO_MANY_REQUESTS {
            // Only this client's own streams free its slots.
            problem = problem.retry_after(5);
        } else if problem.status() == StatusCode::SERVICE_UNAVAILABLE {
            // Every cause passes quickly: a stream slot frees up, the database comes back.
            problem = problem.retry_after(2);
        }
        problem.into_response()
    }
}
