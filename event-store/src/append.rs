//! Appending a command's events: one transaction for events, outbox, idempotency answer and catalogue row.

use chrono::{DateTime, SubsecRound, Utc};
use domain::{CURRENT_SCHEMA_VERSION, EventEnvelope, EventPayload, StreamId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::catalogue::apply_to_catalogue;
use crate::error::{AppendError, StoreError, violated_constraint};
use crate::store::EventStore;
use crate::stream_heads::{self, StreamState};

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

/// Serializes appends on one node so that positions are handed out in commit order, which is
/// what lets the outbox relay publish strictly by position without skipping a late commit.
const APPEND_LOCK: i64 = 0x6169_676f_0001;

impl EventStore {
    /// Appends `new` in one transaction with its outbox rows, the catalogue update and, when
    /// a claim is given, the idempotency record built by `answer` from the recorded envelopes
    /// (`answer` is not called without one).
    pub async fn append(
        &self,
        new: NewEvents,
        meta: &CommandMeta,
        claim: Option<IdempotencyClaim>,
        answer: impl FnOnce(&[EventEnvelope]) -> StoredResponse,
    ) -> Result<Vec<EventEnvelope>, AppendError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;

        let expected = new.expected_version();
        let head = new.prior.after(&new.events);
        let mut recorded = Vec::with_capacity(new.events.len());
        for (offset, event) in new.events.into_iter().enumerate() {
            let sequence = expected + offset as u64 + 1;
            let envelope = self
                .insert_event(&mut tx, &new.stream, sequence, event, meta)
                .await
                .map_err(|e| classify(e, &new.stream, expected))?;
            apply_to_catalogue(&mut tx, &envelope)
                .await
                .map_err(StoreError::from)?;
            recorded.push(envelope);
        }
        stream_heads::write(&mut tx, &new.stream, &head)
            .await
            .map_err(StoreError::from)?;

        if let Some(claim) = claim {
            let response = answer(&recorded);
            sqlx::query(
                "INSERT INTO idempotency_keys
                   (principal, key, request_fingerprint, response_status, response_body)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&claim.principal)
            .bind(&claim.key)
            .bind(&claim.fingerprint)
            .bind(i16::try_from(response.status).unwrap_or(i16::MAX))
            .bind(&response.body)
            .execute(&mut *tx)
            .await
            .map_err(|e| classify(e, &new.stream, expected))?;
        }
        sqlx::query("SELECT pg_notify('outbox', '')")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit()
            .await
            .map_err(|e| classify(e, &new.stream, expected))?;
        Ok(recorded)
    }

    async fn insert_event(
        &self,
        conn: &mut PgConnection,
        stream: &StreamId,
        sequence: u64,
        event: EventPayload,
        meta: &CommandMeta,
    ) -> Result<EventEnvelope, sqlx::Error> {
        // The event time never goes backwards along the region's positions: a writer whose
        // clock stepped back (or a second writer process with a slower clock) stamps the time
        // of the region's last event instead. The append lock makes "last" well defined, and
        // history cuts the log by this time. Truncated to the database's microseconds first,
        // so the envelope carries exactly the stored value.
        let (position, occurred_at): (i64, DateTime<Utc>) = sqlx::query_as(
            "SELECT nextval('events_position_seq'),
                    GREATEST($1::timestamptz,
                             (SELECT occurred_at FROM events ORDER BY position DESC LIMIT 1))",
        )
        .bind(Utc::now().trunc_subsecs(6))
        .fetch_one(&mut *conn)
        .await?;
        let envelope = EventEnvelope {
            event_id: Uuid::now_v7(),
            schema_version: CURRENT_SCHEMA_VERSION,
            stream: stream.clone(),
            sequence,
            position: position.unsigned_abs(),
            model_id: stream.model_id().clone(),
            origin_region: self.region.clone(),
            occurred_at,
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            idempotency_key: meta.idempotency_key.clone(),
            actor: meta.actor.clone(),
            event,
        };
        let encoded = envelope.encode();
        let sequence_db = i64::try_from(sequence).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO events (position, event_id, stream, sequence, model_id, event_type,
                                 schema_version, occurred_at, envelope)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb)",
        )
        .bind(position)
        .bind(envelope.event_id)
        .bind(stream.to_string())
        .bind(sequence_db)
        .bind(envelope.model_id.as_str())
        .bind(envelope.event.type_name())
        .bind(i16::try_from(envelope.schema_version).unwrap_or(i16::MAX))
        .bind(envelope.occurred_at)
        .bind(String::from_utf8_lossy(&encoded).as_ref())
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO outbox (position, topic, message_key, payload) VALUES ($1, $2, $3, $4)",
        )
        .bind(position)
        .bind(&self.topic)
        .bind(envelope.model_id.as_str())
        .bind(&encoded)
        .execute(&mut *conn)
        .await?;
        Ok(envelope)
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
