//! One ordered pass over the event log, folding with the projector's fold and reading the
//! counts out at each requested instant.

use chrono::{DateTime, Utc};
use domain::{EventEnvelope, RegionId};
use futures::TryStreamExt;
use projector::{ActorId, CountSnapshot, Replay};
use sqlx::PgPool;
use tracing::warn;

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
/// the point, exactly what `?at=` at that instant answers.
pub(crate) async fn counts_at_points(
    pool: &PgPool,
    points: &[DateTime<Utc>],
) -> Result<Vec<PointCounts>, sqlx::Error> {
    let Some(last) = points.last().copied() else {
        return Ok(Vec::new());
    };
    let mut replay = Replay::new();
    let mut out = Vec::with_capacity(points.len());
    let mut pending = points.iter().copied().peekable();
    let mut rows = sqlx::query_as::<_, Row>(
        "SELECT region, partition, kafka_offset, occurred_at, envelope::text AS envelope
           FROM event_log WHERE occurred_at <= $1
          ORDER BY occurred_at, region, position",
    )
    .bind(last)
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
    occurred_at: DateTime<Utc>,
    envelope: String,
}

fn fold_row(replay: &mut Replay, row: &Row) {
    let decoded = EventEnvelope::decode(row.envelope.as_bytes());
    let region = RegionId::parse(&row.region);
    match (decoded, region) {
        (Ok(envelope), Ok(region)) => {
            let actor = ActorId::new(region, row.partition);
            replay.apply(&actor, row.kafka_offset, &envelope);
        }
        // The follower only logs events it decoded: this is a newer build's row or a bug.
        (Err(error), _) => warn!(%error, region = row.region, offset = row.kafka_offset,
                                 "event log row not decodable; left out of history"),
        (_, Err(error)) => warn!(%error, "event log row with an invalid region"),
    }
}

fn read_out(replay: &Replay, at: DateTime<Utc>) -> PointCounts {
    PointCounts {
        at,
        counts: replay.totals(),
        events_replayed: replay.events(),
    }
}
