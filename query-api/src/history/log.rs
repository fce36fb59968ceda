//! One pass over the event log in log order, folding with the projector's fold and reading the
//! counts out at each requested instant.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::{CURRENT_SCHEMA_VERSION, EventEnvelope, ModelId, RegionId, StreamId};
use event_store::event_log::{ReplayRow as Row, replay_rows};
use futures::TryStreamExt;
use projector::{ActorId, CountSnapshot, ProviderCounts, RegionCounts, Replay};
use sqlx::PgExecutor;
use tracing::warn;
use uuid::Uuid;

/// Counts as of one instant and how many events led to them.
#[derive(Debug)]
pub struct PointCounts {
    pub at: DateTime<Utc>,
    pub counts: CountSnapshot,
    pub events_replayed: u64,
}

/// Counts at each of `points` (ascending), from the node's event log.
///
/// Each actor (region, partition) is folded in its log order (position order), never in time
/// order: the event time only decides where the actor's events stop counting. As of an instant,
/// an actor counts the longest prefix of its log whose events all occurred at or before it, so a
/// clock that stepped back cannot reorder or skip anything. Event times are monotonic along a
/// region's positions (taken under the append lock, never below the previous event's), which
/// makes that prefix exactly the actor's events with `occurred_at <=` the instant. `?at=` at a
/// point's instant answers the same counts. With `only`, just that region's events (its
/// actors): the region's own view, as `GET /v1/regions/{region}/counts` shows it.
pub async fn counts_at_points<'c>(
    executor: impl PgExecutor<'c> + 'c,
    points: &[DateTime<Utc>],
    only: Option<&'c RegionId>,
) -> Result<Vec<PointCounts>, sqlx::Error> {
    let Some(last) = points.last().copied() else {
        return Ok(Vec::new());
    };
    let mut rows = replay_rows(executor, last, only);
    let mut pass = Pass::new(points);
    while let Some(row) = rows.try_next().await? {
        pass.row(&row);
    }
    Ok(pass.finish())
}

/// Where one actor stands in the pass.
#[derive(Debug, Default)]
struct ActorCut {
    /// Points before this index already hold this actor's counts.
    closed: usize,
    /// Events of this actor handed to the fold.
    events: u64,
}

/// The pass's state: one fold per actor, and each point's counts summed over the actors whose
/// prefix for it is complete.
struct Pass<'p> {
    points: &'p [DateTime<Utc>],
    replay: Replay,
    cuts: BTreeMap<ActorId, ActorCut>,
    sums: Vec<(CountSnapshot, u64)>,
}

impl<'p> Pass<'p> {
    fn new(points: &'p [DateTime<Utc>]) -> Self {
        Self {
            points,
            replay: Replay::new(),
            cuts: BTreeMap::new(),
            sums: points
                .iter()
                .map(|_| (CountSnapshot::default(), 0))
                .collect(),
        }
    }

    /// The next row of the log: it first closes, for its actor, every point it comes after;
    /// past the last point, the actor's prefix is complete and its later rows change nothing.
    fn row(&mut self, row: &Row) {
        let region = match RegionId::parse(&row.region) {
            Ok(region) => region,
            Err(error) => {
                warn!(%error, region = row.region, position = row.position,
                      "event log row of an invalid region; left out of history");
                return;
            }
        };
        let actor = ActorId::new(region, row.partition);
        let mut cut = self.cuts.remove(&actor).unwrap_or_default();
        let open = self
            .points
            .iter()
            .skip(cut.closed)
            .take_while(|point| **point < row.occurred_at)
            .count();
        self.close(&actor, &mut cut, open);
        if cut.closed < self.points.len() && fold_row(&mut self.replay, &actor, row) {
            cut.events = cut.events.saturating_add(1);
        }
        self.cuts.insert(actor, cut);
    }

    /// Adds `actor`'s counts to the next `count` points not yet holding them.
    fn close(&mut self, actor: &ActorId, cut: &mut ActorCut, count: usize) {
        if count == 0 {
            return;
        }
        let counts = CountSnapshot::sum(self.replay.fold(actor).map(|fold| fold.counters()));
        for (sum, events) in self.sums.iter_mut().skip(cut.closed).take(count) {
            add(sum, &counts);
            *events = events.saturating_add(cut.events);
        }
        cut.closed = cut.closed.saturating_add(count);
    }

    /// Every actor's whole prefix counts for the points it never went past.
    fn finish(mut self) -> Vec<PointCounts> {
        let cuts = std::mem::take(&mut self.cuts);
        for (actor, mut cut) in cuts {
            let rest = self.points.len().saturating_sub(cut.closed);
            self.close(&actor, &mut cut, rest);
        }
        self.points
            .iter()
            .zip(self.sums)
            .map(|(at, (mut counts, events_replayed))| {
                // As `CountSnapshot::sum` leaves them out: depends on the state, not on history.
                counts
                    .by_provider
                    .retain(|_, c| *c != ProviderCounts::default());
                counts.regions.retain(|_, c| *c != RegionCounts::default());
                PointCounts {
                    at: *at,
                    counts,
                    events_replayed,
                }
            })
            .collect()
    }
}

/// `into += from`, number by number.
fn add(into: &mut CountSnapshot, from: &CountSnapshot) {
    into.total = into.total.saturating_add(from.total);
    into.active = into.active.saturating_add(from.active);
    into.inactive = into.inactive.saturating_add(from.inactive);
    into.retired = into.retired.saturating_add(from.retired);
    for (status, n) in &from.by_status {
        let slot = into.by_status.entry(*status).or_default();
        *slot = slot.saturating_add(*n);
    }
    for (provider, counts) in &from.by_provider {
        let slot = into.by_provider.entry(provider.clone()).or_default();
        slot.total = slot.total.saturating_add(counts.total);
        slot.active = slot.active.saturating_add(counts.active);
    }
    for (region, counts) in &from.regions {
        let slot = into.regions.entry(region.clone()).or_default();
        slot.available = slot.available.saturating_add(counts.available);
    }
}

/// The envelope as far as the fold reads it; who/which command is not part of a count.
pub(super) fn envelope(row: &Row) -> Result<EventEnvelope, String> {
    let event = row.event.as_deref().ok_or("the event was not read")?;
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
        event: serde_json::from_str(event).map_err(|e| e.to_string())?,
    })
}

/// Whether the row reached the fold.
fn fold_row(replay: &mut Replay, actor: &ActorId, row: &Row) -> bool {
    match envelope(row) {
        Ok(envelope) => {
            replay.apply(actor, row.kafka_offset, &envelope);
            true
        }
        // The follower only logs events it decoded: this is a newer build's row or a bug.
        Err(error) => {
            warn!(%error, region = row.region, position = row.position,
                  "event log row not decodable; left out of history");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use chrono::TimeDelta;
    use domain::{EventPayload, LocalizedText, OperationalStatus, ProviderId};

    use super::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + TimeDelta::minutes(minutes)
    }

    fn row(region: &str, partition: i32, position: i64, at: i64, model: &str, seq: i64) -> Row {
        let event = if seq == 1 {
            EventPayload::ModelRegistered {
                id: ModelId::parse(model).unwrap(),
                provider: ProviderId::parse("acme").unwrap(),
                home_region: RegionId::parse(region).unwrap(),
                name: LocalizedText::english(model),
                description: None,
                status: OperationalStatus::Operational,
            }
        } else if seq % 2 == 0 {
            EventPayload::ModelActivated
        } else {
            EventPayload::ModelDeactivated
        };
        Row {
            region: region.to_owned(),
            partition,
            kafka_offset: position,
            position,
            occurred_at: t(at),
            event_id: Uuid::now_v7(),
            stream: format!("model:{model}"),
            sequence: seq,
            model_id: model.to_owned(),
            event: Some(serde_json::to_string(&event).unwrap()),
        }
    }

    fn pass(points: &[DateTime<Utc>], rows: &[Row]) -> Vec<(i64, i64, u64)> {
        let mut pass = Pass::new(points);
        for row in rows {
            pass.row(row);
        }
        pass.finish()
            .into_iter()
            .map(|p| (p.counts.total, p.counts.active, p.events_replayed))
            .collect()
    }

    #[test]
    fn each_point_counts_every_actor_prefix_up_to_it() {
        let rows = [
            row("eu-west", 0, 1, 0, "acme/a", 1),
            row("us-east", 1, 1, 1, "acme/b", 1),
            row("eu-west", 0, 2, 2, "acme/a", 2),
            row("us-east", 1, 2, 5, "acme/b", 2),
        ];
        let points = [t(-1), t(0), t(1), t(3), t(5), t(9)];
        assert_eq!(
            pass(&points, &rows),
            [
                (0, 0, 0),
                (1, 0, 1),
                (2, 0, 2),
                (2, 1, 3),
                (2, 2, 4),
                (2, 2, 4)
            ]
        );
    }

    /// A clock step back: an event stamped before its predecessor counts from its
    /// predecessor's time on, never before it, and never skips the predecessor.
    #[test]
    fn an_event_stamped_before_its_predecessor_counts_with_its_prefix() {
        let rows = [
            row("eu-west", 0, 1, 10, "acme/a", 1),
            row("eu-west", 0, 2, 0, "acme/a", 2), // the clock stepped back 10 minutes
            row("eu-west", 0, 3, 1, "acme/a", 3),
        ];
        let points = [t(0), t(5), t(10), t(11)];
        assert_eq!(
            pass(&points, &rows),
            [(0, 0, 0), (0, 0, 0), (1, 0, 3), (1, 0, 3)]
        );
    }
}
