//! Group commit: many commands' appends in one transaction and a fixed number of statements,
//! each command admitted or refused exactly as it would be had it been appended alone.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use domain::{CURRENT_SCHEMA_VERSION, EventEnvelope};
use sqlx::{PgConnection, Postgres, Transaction};
use tracing::{Instrument, info_span};
use uuid::Uuid;

use crate::append::{AppendRequest, StoredResponse};
use crate::catalogue::apply_batch_to_catalogue;
use crate::error::AppendError;
use crate::store::EventStore;
use crate::stream_heads::{self, StreamState};

/// Serializes appends on one node so that positions are handed out in commit order, which is
/// what lets the outbox relay publish strictly by position without skipping a late commit.
const APPEND_LOCK: i64 = 0x6169_676f_0001;

/// Each request's outcome, in request order.
pub type BatchOutcome = Vec<Result<Vec<EventEnvelope>, AppendError>>;

impl EventStore {
    /// Appends every admissible request of `requests` in one transaction, in order: positions
    /// follow request order, and a request is refused with [`AppendError::Conflict`] or
    /// [`AppendError::IdempotencyKeyTaken`] exactly when appending the requests one after
    /// another would refuse it. `Err` means the transaction failed and nothing was appended.
    pub async fn append_batch(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<BatchOutcome, sqlx::Error> {
        let span = info_span!(
            "append_batch",
            commands = requests.len(),
            events = tracing::field::Empty
        );
        async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(APPEND_LOCK)
                .execute(&mut *tx)
                .await?;
            let outcome = self.append_locked(&mut tx, requests).await?;
            sqlx::query("SELECT pg_notify('outbox', '')")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    async fn append_locked(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        requests: Vec<AppendRequest>,
    ) -> Result<BatchOutcome, sqlx::Error> {
        let mut versions = stream_versions(tx, &requests).await?;
        let mut taken = taken_keys(tx, &requests).await?;

        // Admission in request order, against the stream versions and keys as the requests
        // before it leave them: what appending them one by one would find.
        let mut admitted = Vec::new();
        let mut outcome: Vec<Option<Result<Vec<EventEnvelope>, AppendError>>> =
            Vec::with_capacity(requests.len());
        for (index, request) in requests.into_iter().enumerate() {
            let stream = request.new.stream.to_string();
            let expected = request.new.expected_version();
            let writes_events = !request.new.events.is_empty();
            if writes_events && versions.get(&stream).copied().unwrap_or(0) != expected {
                outcome.push(Some(Err(AppendError::Conflict {
                    stream: request.new.stream.clone(),
                    expected,
                })));
                continue;
            }
            if let Some(claim) = &request.claim
                && !taken.insert((claim.principal.clone(), claim.key.clone()))
            {
                outcome.push(Some(Err(AppendError::IdempotencyKeyTaken)));
                continue;
            }
            if writes_events {
                versions.insert(stream, expected + request.new.events.len() as u64);
            }
            outcome.push(None);
            admitted.push((index, request));
        }

        let event_count: usize = admitted.iter().map(|(_, r)| r.new.events.len()).sum();
        tracing::Span::current().record("events", event_count);
        let (positions, occurred_at) = positions_and_time(tx, event_count).await?;
        let mut positions = positions.into_iter();

        let mut rows = Rows::new(&self.topic);
        for (index, request) in admitted {
            let AppendRequest {
                new,
                meta,
                claim,
                answer,
            } = request;
            let head = new.prior.clone().after(&new.events);
            let expected = new.expected_version();
            let mut recorded = Vec::with_capacity(new.events.len());
            for (offset, event) in new.events.into_iter().enumerate() {
                let position = positions.next().unwrap_or_default();
                let envelope = EventEnvelope {
                    event_id: Uuid::now_v7(),
                    schema_version: CURRENT_SCHEMA_VERSION,
                    stream: new.stream.clone(),
                    sequence: expected + offset as u64 + 1,
                    position: position.unsigned_abs(),
                    model_id: new.stream.model_id().clone(),
                    origin_region: self.region.clone(),
                    occurred_at,
                    correlation_id: meta.correlation_id,
                    causation_id: meta.causation_id,
                    idempotency_key: meta.idempotency_key.clone(),
                    actor: meta.actor.clone(),
                    event,
                };
                rows.event(&envelope);
                recorded.push(envelope);
            }
            if !recorded.is_empty() {
                rows.heads.insert(new.stream.to_string(), head);
            }
            if let Some(claim) = claim {
                let response = answer(&recorded);
                rows.answer(claim.principal, claim.key, claim.fingerprint, response);
            }
            if let Some(slot) = outcome.get_mut(index) {
                *slot = Some(Ok(recorded));
            }
        }
        rows.insert(tx).await?;
        Ok(outcome
            .into_iter()
            .map(|o| o.unwrap_or(Ok(Vec::new())))
            .collect())
    }
}

/// The current version (last sequence) of every stream the requests write to.
async fn stream_versions(
    conn: &mut PgConnection,
    requests: &[AppendRequest],
) -> Result<HashMap<String, u64>, sqlx::Error> {
    let streams: Vec<String> = requests
        .iter()
        .filter(|r| !r.new.events.is_empty())
        .map(|r| r.new.stream.to_string())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if streams.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT stream, max(sequence) FROM events WHERE stream = ANY($1) GROUP BY stream",
    )
    .bind(&streams)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(stream, last)| (stream, last.unsigned_abs()))
        .collect())
}

/// The requests' idempotency keys that a committed command already holds.
async fn taken_keys(
    conn: &mut PgConnection,
    requests: &[AppendRequest],
) -> Result<HashSet<(String, String)>, sqlx::Error> {
    let (principals, keys): (Vec<&str>, Vec<&str>) = requests
        .iter()
        .filter_map(|r| r.claim.as_ref())
        .map(|c| (c.principal.as_str(), c.key.as_str()))
        .unzip();
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT principal, key FROM idempotency_keys
          WHERE (principal, key) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
    )
    .bind(&principals)
    .bind(&keys)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// `count` fresh positions in increasing order, and the batch's event time. The time never goes
/// backwards along the region's positions: a writer whose clock stepped back (or a second
/// writer process with a slower clock) stamps the time of the region's last event instead.
/// The append lock makes "last" well defined, and history cuts the log by this time. Truncated
/// to the database's microseconds, so the envelope carries exactly the stored value.
async fn positions_and_time(
    conn: &mut PgConnection,
    count: usize,
) -> Result<(Vec<i64>, DateTime<Utc>), sqlx::Error> {
    if count == 0 {
        return Ok((Vec::new(), Utc::now().trunc_subsecs(6)));
    }
    let (mut positions, occurred_at): (Vec<i64>, DateTime<Utc>) = sqlx::query_as(
        "SELECT ARRAY(SELECT nextval('events_position_seq') FROM generate_series(1, $2)),
                GREATEST($1::timestamptz,
                         (SELECT occurred_at FROM events ORDER BY position DESC LIMIT 1))",
    )
    .bind(Utc::now().trunc_subsecs(6))
    .bind(i64::try_from(count).unwrap_or(i64::MAX))
    .fetch_one(conn)
    .await?;
    positions.sort_unstable();
    Ok((positions, occurred_at))
}

/// Everything a batch writes, column by column, for multi-row inserts.
#[derive(Default)]
struct Rows {
    envelopes: Vec<EventEnvelope>,
    encoded: Vec<Vec<u8>>,
    topic: String,
    heads: HashMap<String, StreamState>,
    principals: Vec<String>,
    keys: Vec<String>,
    fingerprints: Vec<String>,
    statuses: Vec<i16>,
    bodies: Vec<String>,
}

impl Rows {
    fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            ..Self::default()
        }
    }

    fn event(&mut self, envelope: &EventEnvelope) {
        self.encoded.push(envelope.encode());
        self.envelopes.push(envelope.clone());
    }

    fn answer(
        &mut self,
        principal: String,
        key: String,
        fingerprint: String,
        response: StoredResponse,
    ) {
        self.principals.push(principal);
        self.keys.push(key);
        self.fingerprints.push(fingerprint);
        self.statuses
            .push(i16::try_from(response.status).unwrap_or(i16::MAX));
        self.bodies.push(response.body.to_string());
    }

    async fn insert(self, tx: &mut Transaction<'static, Postgres>) -> Result<(), sqlx::Error> {
        if !self.envelopes.is_empty() {
            self.insert_events(tx).await?;
            let envelopes: Vec<&EventEnvelope> = self.envelopes.iter().collect();
            apply_batch_to_catalogue(tx, &envelopes).await?;
            stream_heads::write_all(tx, &self.heads).await?;
        }
        if !self.keys.is_empty() {
            sqlx::query(
                "INSERT INTO idempotency_keys
                   (principal, key, request_fingerprint, response_status, response_body)
                 SELECT p, k, f, s, b::jsonb
                   FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int2[], $5::text[])
                        AS u(p, k, f, s, b)",
            )
            .bind(&self.principals)
            .bind(&self.keys)
            .bind(&self.fingerprints)
            .bind(&self.statuses)
            .bind(&self.bodies)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    async fn insert_events(
        &self,
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<(), sqlx::Error> {
        let positions: Vec<i64> = self
            .envelopes
            .iter()
            .map(|e| i64::try_from(e.position).unwrap_or(i64::MAX))
            .collect();
        let ids: Vec<Uuid> = self.envelopes.iter().map(|e| e.event_id).collect();
        let streams: Vec<String> = self
            .envelopes
            .iter()
            .map(|e| e.stream.to_string())
            .collect();
        let sequences: Vec<i64> = self
            .envelopes
            .iter()
            .map(|e| i64::try_from(e.sequence).unwrap_or(i64::MAX))
            .collect();
        let models: Vec<&str> = self.envelopes.iter().map(|e| e.model_id.as_str()).collect();
        let types: Vec<&str> = self.envelopes.iter().map(|e| e.event.type_name()).collect();
        let versions: Vec<i16> = self
            .envelopes
            .iter()
            .map(|e| i16::try_from(e.schema_version).unwrap_or(i16::MAX))
            .collect();
        let times: Vec<DateTime<Utc>> = self.envelopes.iter().map(|e| e.occurred_at).collect();
        let texts: Vec<String> = self
            .encoded
            .iter()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .collect();
        sqlx::query(
            "INSERT INTO events (position, event_id, stream, sequence, model_id, event_type,
                                 schema_version, occurred_at, envelope)
             SELECT p, i, s, q, m, t, v, o, e::jsonb
               FROM UNNEST($1::int8[], $2::uuid[], $3::text[], $4::int8[], $5::text[],
                           $6::text[], $7::int2[], $8::timestamptz[], $9::text[])
                    AS u(p, i, s, q, m, t, v, o, e)",
        )
        .bind(&positions)
        .bind(&ids)
        .bind(&streams)
        .bind(&sequences)
        .bind(&models)
        .bind(&types)
        .bind(&versions)
        .bind(&times)
        .bind(&texts)
        .execute(&mut **tx)
        .await?;
        let topics = vec![self.topic.as_str(); self.envelopes.len()];
        sqlx::query(
            "INSERT INTO outbox (position, topic, message_key, payload)
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::bytea[])",
        )
        .bind(&positions)
        .bind(&topics)
        .bind(&models)
        .bind(&self.encoded)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
