//! The `stream_heads` table: each stream's state after its last event, written in the
//! append's transaction, so deciding a command costs the same however long the stream is.

use domain::{
    AvailabilityState, EventPayload, ModelState, StreamId, evolve_availability, evolve_model,
};
use std::collections::HashMap;

use serde::de::DeserializeOwned;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use tracing::warn;

/// The shape of the stored states. A head of another format is ignored: the stream is folded
/// from its events, and its next append writes the head in this format.
const FORMAT: i16 = 1;

/// A stream's folded state, of either kind of stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamState {
    Model(ModelState),
    Availability(AvailabilityState),
}

impl StreamState {
    /// The state after `events` are applied in order.
    pub fn after(self, events: &[EventPayload]) -> Self {
        match self {
            Self::Model(state) => Self::Model(events.iter().fold(state, evolve_model)),
            Self::Availability(state) => {
                Self::Availability(events.iter().fold(state, evolve_availability))
            }
        }
    }

    pub fn version(&self) -> u64 {
        match self {
            Self::Model(state) => state.version,
            Self::Availability(state) => state.version,
        }
    }
}

/// What the table says of a stream, in one round trip.
pub(crate) enum Lookup<S> {
    /// The stream has no event.
    Empty,
    /// The head matches the stream's last event.
    Head(S),
    /// The stream has events but no usable head: fold it.
    Fold,
}

/// Looks up `stream`'s head and its last sequence together; a head that is missing, stale
/// (its version is not the last sequence), of another format or undecodable means [`Lookup::Fold`].
pub(crate) async fn lookup<S: DeserializeOwned>(
    pool: &PgPool,
    stream: &StreamId,
) -> Result<Lookup<S>, sqlx::Error> {
    let name = stream.to_string();
    let (last, version, format, state): (
        Option<i64>,
        Option<i64>,
        Option<i16>,
        Option<Json<serde_json::Value>>,
    ) = sqlx::query_as(
        "SELECT (SELECT max(sequence) FROM events WHERE stream = $1), h.version, h.format, h.state
           FROM (SELECT 1) AS one LEFT JOIN stream_heads h ON h.stream = $1",
    )
    .bind(&name)
    .fetch_one(pool)
    .await?;
    let Some(last) = last else {
        return Ok(Lookup::Empty);
    };
    let (Some(version), Some(FORMAT), Some(Json(state))) = (version, format, state) else {
        return Ok(Lookup::Fold);
    };
    if version != last {
        warn!(stream = %name, head = version, last, "stream head is stale: folding the stream");
        return Ok(Lookup::Fold);
    }
    match serde_json::from_value(state) {
        Ok(state) => Ok(Lookup::Head(state)),
        Err(error) => {
            warn!(stream = %name, %error, "stream head undecodable: folding the stream");
            Ok(Lookup::Fold)
        }
    }
}

/// Records each stream's head, in the transaction that appended their events.
pub(crate) async fn write_all(
    conn: &mut PgConnection,
    heads: &HashMap<String, StreamState>,
) -> Result<(), sqlx::Error> {
    if heads.is_empty() {
        return Ok(());
    }
    let mut streams = Vec::with_capacity(heads.len());
    let mut versions = Vec::with_capacity(heads.len());
    let mut states = Vec::with_capacity(heads.len());
    for (stream, state) in heads {
        let json = match state {
            StreamState::Model(state) => serde_json::to_string(state),
            StreamState::Availability(state) => serde_json::to_string(state),
        }
        .map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
        streams.push(stream.as_str());
        versions.push(i64::try_from(state.version()).unwrap_or(i64::MAX));
        states.push(json);
    }
    sqlx::query(
        "INSERT INTO stream_heads (stream, version, format, state)
         SELECT s, v, $3, j::jsonb FROM UNNEST($1::text[], $2::int8[], $4::text[]) AS u(s, v, j)
         ON CONFLICT (stream) DO UPDATE
            SET version = EXCLUDED.version, format = EXCLUDED.format, state = EXCLUDED.state",
    )
    .bind(&streams)
    .bind(&versions)
    .bind(FORMAT)
    .bind(&states)
    .execute(conn)
    .await?;
    Ok(())
}
