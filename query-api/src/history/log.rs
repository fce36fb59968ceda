//! One ordered pass over the event log, folding with the projector's fold and reading the
//! counts out at each requested instant.

use chrono::{DateTime, Utc};
use domain::{CURRENT_SCHEMA_VERSION, EventEnvelope, ModelId, RegionId, StreamId};
use futures::TryStreamExt;
use projector::{ActorId, CountSnapshot, Replay};
use sqlx::PgPool;
use tracing::warn;
use uuid::Uuid;

/// Only what the fold reads: the event's JSON and the envelope's indexed columns.
const ALL_REGIONS: &str = "SELECT region, partition, kafka_offset, position, occurred_at, event_id,
        stream, sequence, model_id, (envelope->'event')::text AS event
   FROM event_log WHERE occurred_at <= $1
  ORDER BY occurred_at, region, position";
const ONE_REGION: &str = "SELECT region, partition, kafka_offset, position, occurred_at, event_id,
        stream, sequence, model_id, (envelope->'event')::text AS event
   FROM event_log WHERE occurred_at <= $1 AND region = $2
  ORDER BY occurred_at, region, position";

/// Counts as of one instant and how many events led to them.
#[derive(Debug)]
pub(crate) struct PointCounts {
    pub at: DateTime<Utc>,
    pub counts: CountSnapshot,
    pub events_replayed: u64,
}

/// Counts at each of `points` (ascending). Events are replayed in `(occurred_at, region,
/// position)` order: within a region that is its log order (event times are taken under the
/// append lock), so each partition is folded in offset order, and the events up to an instant
/// are a prefix of the pass. A point's counts are those of every event with `occurred_at <=`
/// the point, exactly what `?at=` at that instant answers. With `only`, just that region's
/// events (its actors): the region's own view, as `GET /v1/regions/{region}/counts` shows it.
pub(crate) async fn counts_at_points(
    pool: &PgPool,
    points: &[DateTime<Utc>],
    only: Option<&RegionId>,
) -> Result<Vec<PointCounts>, sqlx::Error> {
    let Some(last) = points.last().copied() else {
        return Ok(Vec::new());
    };
    let mut replay = Replay::new();
    let mut out = Vec::with_capacity(points.len());
    let mut pending = points.iter().copied().peekable();
    // Two statements rather than `$2 IS NULL OR region = $2`, which a generic prepared plan
    // cannot simplify: each keeps its index scan in replay order.
    let mut rows = match only {
        None => sqlx::query_as::<_, Row>(ALL_REGIONS).bind(last),
        Some(region) => sqlx::query_as::<_, Row>(ONE_REGION)
            .bind(last)
            .bind(region.as_str()),
    }
    .fetch(pool);
    while let Some(row) = rows.try_next().await? {
        while let Some(point) = pending.next_if(|point| row.occurred_at > *point) {
            out.push(read_out(&replay, point));
        }
        fold_row(&mut replay, &row);
    }
    out.extend(pending.map(|point| read_out(&replay, point)));
    Ok(out)
}

#[derive(sqlx::FromRow)]
struct Row {
    region: String,
    partition: i32,
    kafka_offset: i64,
    position: i64,
    occurred_at: DateTime<Utc>,
    event_id: Uuid,
    stream: String,
    sequence: i64,
    model_id: String,
    event: String,
}

/// The envelope as far as the fold reads it; who/which command is not part of a count.
fn envelope(row: &Row) -> Result<EventEnvelope, String> {
    Ok(EventEnvelope {
        event_id: row.event_id,
        schema_version: CURRENT_SCHEMA_VERSION,
        stream: StreamId::parse(&row.stream).map_err(|e| e.to_string())?,
        sequence: u64::try_from(row.sequence).map_err(|e| e.to_string())?,
        position: u64::try_from(row.position).map_err(|e| e.to_string())?,
        model_id: ModelId::parse(&row.model_id).map_err(|e| e.to_string())?,
        origin_region: RegionId::parse(&row.region).map_err(|e| e.to_string())?,
        occurred_at: row.occurred_at,
        correlation_id: Uuid::nil(),
        causation_id: None,
        idempotency_key: None,
        actor: None,
        // Logged events are stored in today's shape (decoded, upcast, re-encoded).
        event: serde_json::from_str(&row.event).map_err(|e| e.to_string())?,
    })
}

fn fold_row(replay: &mut Replay, row: &Row) {
    match envelope(row) {
        Ok(envelope) => {
            let actor = ActorId::new(envelope.origin_region.clone(), row.partition);
            replay.apply(&actor, row.kafka_offset, &envelope);
        }
        // The follower only logs events it decoded: this is a newer build's row or a bug.
        Err(error) => warn!(%error, region = row.region, position = row.position,
                            "event log row not decodable; left out of history"),
    }
}

fn read_out(replay: &Replay, at: DateTime<Utc>) -> PointCounts {
    PointCounts {
        at,
        counts: replay.totals(),
        events_replayed: replay.events(),
    }
}
