//! Counts as of instants from the history index. Per actor, the blocks from the one the first
//! instant's prefix ends in to the one the last instant's ends in are read in one pass: the
//! first block's counters, then every block's events rolled forward, each instant taking the
//! running counters plus its own block's events up to it. Read in one snapshot, and only when
//! the index holds every logged event; otherwise the caller is told how far it reaches.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use domain::RegionId;
use event_store::history_index::{self as index, BlockKey, LogCoverage, RangeBlock};
use projector::history::{BlockEntry, decode_counters, decode_entries};
use projector::{CodecError, CountSnapshot, MetricKey};
use sqlx::PgPool;

use crate::history::log::PointCounts;

#[derive(Debug, thiserror::Error)]
pub enum IndexReadError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("a history block: {0}")]
    Codec(#[from] CodecError),
}

/// Counts at each of `points` (ascending) from the index, or how far it reaches when it does
/// not yet hold every logged event.
pub async fn counts_from_index(
    pool: &PgPool,
    points: &[DateTime<Utc>],
    only: Option<&RegionId>,
) -> Result<Result<Vec<PointCounts>, LogCoverage>, IndexReadError> {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Ok(Ok(Vec::new()));
    };
    let mut tx = pool.begin().await?;
    // One snapshot for every read below; no JIT: these plans are many cheap index probes,
    // which JIT compilation (15 ms) would only slow down.
    for setting in [
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        "SET LOCAL jit = off",
    ] {
        sqlx::query(setting).execute(&mut *tx).await?;
    }
    let coverage = index::log_coverage(&mut *tx).await?;
    if !coverage.complete() {
        return Ok(Err(coverage));
    }
    let span = [*first, *last];
    let cuts = index::cut_blocks(&mut *tx, &span, only.map(RegionId::as_str)).await?;
    let mut ends: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
    for (point, key) in cuts {
        let end = ends
            .entry((key.region, key.partition))
            .or_insert((key.first_position, key.first_position));
        if point == 0 {
            end.0 = end.0.min(key.first_position);
        } else {
            end.1 = end.1.max(key.first_position);
        }
    }
    let ranges: Vec<(BlockKey, i64)> = ends
        .into_iter()
        .map(|((region, partition), (from, to))| {
            let key = BlockKey {
                region,
                partition,
                first_position: from.min(to),
            };
            (key, from.max(to))
        })
        .collect();
    let blocks = index::blocks_between(&mut *tx, &ranges).await?;
    tx.commit().await?;

    let mut sums = Sums::new(points.len());
    for actor in blocks.chunk_by(|a, b| a.region == b.region && a.partition == b.partition) {
        roll_actor(actor, points, &mut sums)?;
    }
    Ok(Ok(sums.into_points(points)))
}

/// An entry with its keys numbered: (time in µs, counted, [(key number, change)]).
type Numbered = (i64, bool, Vec<(usize, i64)>);

/// Counter values per instant, over keys numbered as they are met.
struct Sums {
    keys: Vec<MetricKey>,
    numbers: HashMap<MetricKey, usize>,
    points: Vec<(Vec<i64>, u64)>,
}

impl Sums {
    fn new(points: usize) -> Self {
        Self {
            keys: Vec::new(),
            numbers: HashMap::new(),
            points: vec![(Vec::new(), 0); points],
        }
    }

    fn number(&mut self, key: &MetricKey) -> usize {
        if let Some(n) = self.numbers.get(key) {
            return *n;
        }
        self.keys.push(key.clone());
        self.numbers.insert(key.clone(), self.keys.len() - 1);
        self.keys.len() - 1
    }

    fn into_points(self, at: &[DateTime<Utc>]) -> Vec<PointCounts> {
        let keys = self.keys;
        at.iter()
            .zip(self.points)
            .map(|(at, (values, events))| PointCounts {
                at: *at,
                counts: CountSnapshot::from_values(keys.iter().zip(values)),
                events_replayed: events,
            })
            .collect()
    }
}

/// Adds one actor's prefix at every instant to `sums`; `blocks` are the actor's, in log order,
/// the first carrying its counters.
fn roll_actor(
    blocks: &[RangeBlock],
    points: &[DateTime<Utc>],
    sums: &mut Sums,
) -> Result<(), IndexReadError> {
    let Some(head) = blocks.first() else {
        return Ok(());
    };
    let counters = head
        .counters_before
        .as_deref()
        .ok_or(CodecError::Inconsistent(
            "a range's first block without counters",
        ))?;
    let mut running: Vec<i64> = Vec::new();
    for (key, value) in decode_counters(counters)? {
        add(&mut running, sums.number(&key), value);
    }
    let mut events = u64::try_from(head.events_before).unwrap_or(0);
    let entries: Vec<Vec<Numbered>> = blocks
        .iter()
        .map(|block| numbered(&decode_entries(&block.entries)?, sums))
        .collect::<Result<_, IndexReadError>>()?;
    let last = blocks.len() - 1;
    let mut rolled = 0;
    for (point, at) in points.iter().enumerate() {
        // The block this instant's prefix ends in: the first reaching past it.
        let cut = blocks.partition_point(|b| b.reach <= *at).min(last);
        while rolled < cut {
            for (_, counted, changes) in entries.get(rolled).into_iter().flatten() {
                events = events.saturating_add(u64::from(*counted));
                for (key, change) in changes {
                    add(&mut running, *key, *change);
                }
            }
            rolled += 1;
        }
        let Some((values, total)) = sums.points.get_mut(point) else {
            continue;
        };
        for (key, value) in running.iter().enumerate() {
            add(values, key, *value);
        }
        *total = total.saturating_add(events);
        let until = at.timestamp_micros();
        for (time, counted, changes) in entries.get(cut).into_iter().flatten() {
            if *time > until {
                break;
            }
            *total = total.saturating_add(u64::from(*counted));
            for (key, change) in changes {
                add(values, *key, *change);
            }
        }
    }
    Ok(())
}

/// A block's entries with their keys numbered.
fn numbered(entries: &[BlockEntry], sums: &mut Sums) -> Result<Vec<Numbered>, IndexReadError> {
    Ok(entries
        .iter()
        .map(|entry| {
            let changes = entry
                .changes
                .iter()
                .map(|(key, change)| (sums.number(key), i64::from(*change)))
                .collect();
            (entry.occurred_at_micros, entry.counted, changes)
        })
        .collect())
}

fn add(values: &mut Vec<i64>, key: usize, value: i64) {
    if values.len() <= key {
        values.resize(key + 1, 0);
    }
    if let Some(slot) = values.get_mut(key) {
        *slot = slot.saturating_add(value);
    }
}
