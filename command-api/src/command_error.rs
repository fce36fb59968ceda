//! Why the command service did not carry out a command, in its own terms; the HTTP edge maps
//! each case to a status and problem document once (`problem.rs`).

use domain::DomainError;
use event_store::StoreError;

/// A refusal (the command is wrong for the model's state or the caller's preconditions) or a
/// failure (the store could not answer).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The domain refused the command.
    #[error(transparent)]
    Refused(#[from] DomainError),
    /// `If-Match` named another version than the stream's.
    #[error("If-Match was \"{expected}\" but the model is at \"{actual}\"")]
    VersionMismatch { expected: u64, actual: u64 },
    /// The idempotency key was first used with a different request.
    #[error("Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    /// The store is unreachable, or concurrent writers kept winning the stream.
    #[error("the event store is unavailable; retry later")]
    Unavailable,
    /// The store returned something this build cannot read.
    #[error("the event store returned unreadable data")]
    Corrupt,
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(cause) => {
                tracing::warn!(error = %cause, "event store unavailable");
                CommandError::Unavailable
            }
            other => {
                tracing::error!(error = %other, "event store returned unreadable data");
                CommandError::Corrupt
            }
        }
    }
}
