//! The event log read in every actor's log order, for history's replay.

use chrono::{DateTime, Utc};
use domain::RegionId;
use futures::stream::BoxStream;
use sqlx::PgExecutor;
use uuid::Uuid;

/// Only what the fold reads: the event's JSON and the envelope's indexed columns. Rows after
/// the last instant only end their actor's prefix, so their JSON is not read. `(position,
/// region)` is every actor's log order and follows the insertion order (an index scan, no
/// sort).
const ALL_REGIONS: &str = "SELECT region, partition, kafka_offset, position, occurred_at, event_id,
        stream, sequence, model_id,
        CASE WHEN occurred_at <= $1 THEN (envelope->'event')::text END AS event
   FROM event_log
  ORDER BY position, region";
const ONE_REGION: &str = "SELECT region, partition, kafka_offset, position, occurred_at, event_id,
        stream, sequence, model_id,
        CASE WHEN occurred_at <= $1 THEN (envelope->'event')::text END AS event
   FROM event_log WHERE region = $2
  ORDER BY position";

/// Only what the fold reads of a logged event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReplayRow {
    pub region: String,
    pub partition: i32,
    pub kafka_offset: i64,
    pub position: i64,
    pub occurred_at: DateTime<Utc>,
    pub event_id: Uuid,
    pub stream: String,
    pub sequence: i64,
    pub model_id: String,
    /// `None` after the last instant (not read).
    pub event: Option<String>,
}

/// Every logged event (or only `only`'s), in log order; events after `last` come without
/// their JSON (they only end their actor's prefix).
pub fn replay_rows<'e>(
    db: impl PgExecutor<'e> + 'e,
    last: DateTime<Utc>,
    only: Option<&'e RegionId>,
) -> BoxStream<'e, Result<ReplayRow, sqlx::Error>> {
    // Two statements rather than `$2 IS NULL OR region = $2`, which a generic prepared plan
    // cannot simplify: each keeps its index scan in log order.
    match only {
        None => sqlx::query_as::<_, ReplayRow>(ALL_REGIONS)
            .bind(last)
            .fetch(db),
        Some(region) => sqlx::query_as::<_, ReplayRow>(ONE_REGION)
            .bind(last)
            .bind(region.as_str())
            .fetch(db),
    }
}
