//! The crate's error types, one per concern.

use crate::actor::ActorId;
use crate::metric::MetricKey;

/// Text that is not an actor id or a metric key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{raw:?} is not an actor id: {reason}")]
    ActorId { raw: String, reason: String },
    #[error("{0:?} is not a metric key")]
    MetricKey(String),
}

/// A state that breaks the actor invariant: an actor's counters hold only its own dots.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidState {
    #[error(
        "counter {key} of actor {owner} holds another actor's dots or a dot beyond {}",
        crate::counters::MAX_DOT
    )]
    ForeignOrOversizedDots { owner: ActorId, key: MetricKey },
    #[error("cannot merge the state of actor {theirs} into actor {ours}")]
    ActorMismatch { ours: ActorId, theirs: ActorId },
}

/// Encoding or decoding a persisted or exchanged state failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("{len} bytes are too short for a {expected} header")]
    Truncated { expected: &'static str, len: usize },
    #[error("expected a {expected} (kind byte {expected_byte:#04x}), found kind byte {found:#04x}")]
    WrongKind {
        expected: &'static str,
        expected_byte: u8,
        found: u8,
    },
    #[error("{kind} format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        kind: &'static str,
        found: u16,
        supported: u16,
    },
    #[error("{extra} trailing bytes after the {kind}")]
    TrailingBytes { kind: &'static str, extra: usize },
    #[error("could not encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("could not decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error(transparent)]
    Invalid(#[from] InvalidState),
    #[error("inconsistent: {0}")]
    Inconsistent(&'static str),
    #[error("facts row of stream {stream:?}: {reason}")]
    FactsRow { stream: String, reason: String },
    #[error("the checkpoint head knows {expected} streams but {found} facts rows were stored")]
    FactsCount { expected: u64, found: u64 },
}

/// An event the fold must not skip and cannot apply: the caller has to stop and upgrade.
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    /// Written by a newer build; skipping it would silently under-count.
    #[error(
        "event schema version {0} is newer than this build understands ({current})",
        current = domain::CURRENT_SCHEMA_VERSION
    )]
    UnsupportedSchema(u16),
}
