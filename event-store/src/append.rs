//! Appending a command's events: one transaction for events, outbox, idempotency answer and
//! catalogue row (see `append_batch` for the transaction itself).

use std::sync::Arc;

use domain::{EventEnvelope, EventPayload, StreamId};
use uuid::Uuid;

use crate::error::{AppendError, StoreError, violated_constraint};
use crate::store::EventStore;
use crate::stream_heads::StreamState;

/// Who asked and why: copied into every event's envelope.
#[derive(Debug, Clone, Default)]
pub struct CommandMeta {
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub actor: Option<String>,
}

/// Events decided on `prior`, the state of `stream` they were decided against.
#[derive(Debug, Clone)]
pub struct NewEvents {
    pub stream: StreamId,
    pub prior: StreamState,
    pub events: Vec<EventPayload>,
}

impl NewEvents {
    /// The stream's version the events were decided against (optimistic concurrency).
    pub fn expected_version(&self) -> u64 {
        self.prior.version()
    }
}

/// Records the command's answer under its idempotency key, in the append's transaction.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub principal: String,
    pub key: String,
    pub fingerprint: String,
}

/// An answer as recorded for idempotent retries: HTTP-shaped but store-agnostic.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

/// Builds a command's idempotent answer from the envelopes its append recorded.
pub type AnswerFn = Arc<dyn Fn(&[EventEnvelope]) -> StoredResponse + Send + Sync>;

/// One command's append: its events, who asked, and the idempotency record to keep.
#[derive(Clone)]
pub struct AppendRequest {
    pub new: NewEvents,
    pub meta: CommandMeta,
    pub claim: Option<IdempotencyClaim>,
    /// Called only with a claim, inside the transaction, with the recorded envelopes.
    pub answer: AnswerFn,
}

impl std::fmt::Debug for AppendRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendRequest")
            .field("new", &self.new)
            .field("meta", &self.meta)
            .field("claim", &self.claim)
            .finish_non_exhaustive()
    }
}

impl EventStore {
    /// Appends `new` in one transaction with its outbox rows, the catalogue update and, when
    /// a claim is given, the idempotency record built by `answer` from the recorded envelopes
    /// (`answer` is not called without one).
    pub async fn append(
        &self,
        new: NewEvents,
        meta: &CommandMeta,
        claim: Option<IdempotencyClaim>,
        answer: impl Fn(&[EventEnvelope]) -> StoredResponse + Send + Sync + 'static,
    ) -> Result<Vec<EventEnvelope>, AppendError> {
        self.append_one(AppendRequest {
            new,
            meta: meta.clone(),
            claim,
            answer: Arc::new(answer),
        })
        .await
    }

    /// [`EventStore::append`] of a built request: a batch of one.
    pub async fn append_one(
        &self,
        request: AppendRequest,
    ) -> Result<Vec<EventEnvelope>, AppendError> {
        let stream = request.new.stream.clone();
        let expected = request.new.expected_version();
        match self.append_batch(vec![request]).await {
            Ok(mut outcomes) => {
                outcomes
                    .pop()
                    .unwrap_or(Err(AppendError::Store(StoreError::Invalid(
                        "a batch of one gave no outcome".into(),
                    ))))
            }
            // Under the append lock neither can happen; kept as the last line of defence.
            Err(error) => Err(classify(error, &stream, expected)),
        }
    }
}

/// Maps the unique violations that carry meaning; everything else is a store failure.
fn classify(error: sqlx::Error, stream: &StreamId, expected: u64) -> AppendError {
    match violated_constraint(&error) {
        Some("events_stream_sequence_key") => AppendError::Conflict {
            stream: stream.clone(),
            expected,
        },
        Some("idempotency_keys_pkey") => AppendError::IdempotencyKeyTaken,
        _ => AppendError::Store(StoreError::Database(error)),
    }
}
