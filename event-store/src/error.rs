//! The store's errors: unavailable or unreadable database, and why an append was refused.

use domain::{DecodeError, StreamId};

/// The store could not answer: the database is unreachable or returned something unreadable.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored event {position} cannot be read: {source}")]
    Corrupt {
        position: i64,
        #[source]
        source: DecodeError,
    },
    #[error("stored data is invalid: {0}")]
    Invalid(String),
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to the stream since it was read (optimistic concurrency).
    #[error("stream {stream} moved past version {expected}")]
    Conflict { stream: StreamId, expected: u64 },
    /// Another request with the same idempotency key committed first.
    #[error("idempotency key already used")]
    IdempotencyKeyTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

const UNIQUE_VIOLATION: &str = "23505";

/// Names the unique constraint an error violated, if it is a unique violation.
pub(crate) fn violated_constraint(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(UNIQUE_VIOLATION) => {
            db.constraint()
        }
        _ => None,
    }
}
