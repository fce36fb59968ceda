//! One actor's part of the history index: its fold, and its log cut into blocks as events
//! come, in the actor's log (position) order.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::RegionId;
use event_store::event_log::ReplayRow;
use event_store::history_index::{StoredBlock, StoredFold};
use projector::history::{BlockEntry, encode_counters, encode_entries};
use projector::{ActorId, CodecError, MetricKey, PartitionFold};
use tracing::warn;

use crate::history::log::envelope;

/// How blocks and resume points are cut.
#[derive(Debug, Clone, Copy)]
pub struct BlockPolicy {
    /// Events per block: an instant's answer reads at most this many of an actor's events.
    pub block_events: usize,
    /// A resume point (the whole fold) is saved after at least this many events.
    pub fold_every_events: u64,
}

/// What [`ActorLog::push`] did with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Appended,
    /// The row is at or before the actor's last position: it arrived out of log order, and the
    /// actor's index must be built again.
    OutOfOrder,
}

/// The block being filled.
#[derive(Debug)]
struct OpenBlock {
    first_position: i64,
    events_before: u64,
    counters_before: BTreeMap<MetricKey, i64>,
    entries: Vec<BlockEntry>,
}

#[derive(Debug)]
pub struct ActorLog {
    actor: ActorId,
    fold: PartitionFold,
    last_position: i64,
    reach: Option<DateTime<Utc>>,
    events: u64,
    through_arrival: i64,
    open: Option<OpenBlock>,
    /// Closed since the last [`ActorLog::take_writes`], in order.
    closed: Vec<StoredBlock>,
    /// The open block changed since it was last taken.
    open_changed: bool,
    since_fold: u64,
    fold_due: Option<StoredFold>,
    changes: Vec<(MetricKey, i32)>,
}

impl ActorLog {
    pub fn new(actor: ActorId) -> Self {
        Self {
            fold: PartitionFold::new(actor.clone()),
            actor,
            last_position: 0,
            reach: None,
            events: 0,
            through_arrival: 0,
            open: None,
            closed: Vec::new(),
            open_changed: false,
            since_fold: 0,
            fold_due: None,
            changes: Vec::new(),
        }
    }

    /// Resumes from a saved fold (taken at the end of a block).
    pub fn resume(actor: ActorId, stored: &StoredFold) -> Result<Self, CodecError> {
        let fold = PartitionFold::restore(&stored.fold)?;
        if fold.actor() != &actor {
            return Err(CodecError::Inconsistent(
                "a saved history fold of another actor",
            ));
        }
        Ok(Self {
            fold,
            last_position: stored.position,
            reach: Some(stored.reach),
            events: u64::try_from(stored.events).unwrap_or(0),
            through_arrival: stored.through_arrival,
            ..Self::new(actor)
        })
    }

    pub fn last_position(&self) -> i64 {
        self.last_position
    }

    /// Appends the actor's next logged row (arrival `arrival`).
    pub fn push(&mut self, arrival: i64, row: &ReplayRow, policy: BlockPolicy) -> Pushed {
        if row.position <= self.last_position {
            return Pushed::OutOfOrder;
        }
        let open = self.open.get_or_insert_with(|| OpenBlock {
            first_position: row.position,
            events_before: self.events,
            counters_before: self
                .fold
                .counters()
                .iter()
                .map(|(key, value)| (key.clone(), value))
                .collect(),
            entries: Vec::with_capacity(policy.block_events),
        });
        self.changes.clear();
        let counted = match envelope(row) {
            Ok(envelope) => {
                self.fold
                    .apply_recording(row.kafka_offset, &envelope, &mut self.changes);
                true
            }
            // As history's replay: the row still ends prefixes, its event is not folded.
            Err(error) => {
                warn!(%error, region = row.region, position = row.position,
                      "event log row not decodable; left out of history");
                false
            }
        };
        open.entries.push(BlockEntry {
            occurred_at_micros: row.occurred_at.timestamp_micros(),
            counted,
            changes: std::mem::take(&mut self.changes),
        });
        if counted {
            self.events = self.events.saturating_add(1);
        }
        self.reach = Some(
            self.reach
                .map_or(row.occurred_at, |r| r.max(row.occurred_at)),
        );
        self.last_position = row.position;
        self.through_arrival = self.through_arrival.max(arrival);
        self.open_changed = true;
        if open.entries.len() >= policy.block_events {
            self.close(policy);
        }
        Pushed::Appended
    }

    /// Everything to write since the last call: blocks closed, the open block if it grew, and
    /// a resume point if one is due.
    pub fn take_writes(&mut self) -> Result<(Vec<StoredBlock>, Option<StoredFold>), CodecError> {
        let mut blocks = std::mem::take(&mut self.closed);
        if self.open_changed
            && let Some(open) = &self.open
        {
            blocks.push(self.stored(open)?);
        }
        self.open_changed = false;
        Ok((blocks, self.fold_due.take()))
    }

    fn close(&mut self, policy: BlockPolicy) {
        let Some(open) = self.open.take() else {
            return;
        };
        match self.stored(&open) {
            Ok(block) => self.closed.push(block),
            // Encoding what this build made cannot fail; if it did, the next build starts over.
            Err(error) => warn!(%error, actor = %self.actor, "history block not encoded"),
        }
        self.open_changed = false;
        self.since_fold = self.since_fold.saturating_add(open.entries.len() as u64);
        if self.since_fold >= policy.fold_every_events {
            match self.fold.snapshot() {
                Ok(fold) => {
                    self.fold_due = Some(StoredFold {
                        region: self.actor.region.to_string(),
                        partition: self.actor.partition,
                        position: self.last_position,
                        events: i64::try_from(self.events).unwrap_or(i64::MAX),
                        reach: self.reach.unwrap_or_default(),
                        through_arrival: self.through_arrival,
                        fold,
                    });
                    self.since_fold = 0;
                }
                Err(error) => warn!(%error, actor = %self.actor, "history fold not saved"),
            }
        }
    }

    fn stored(&self, open: &OpenBlock) -> Result<StoredBlock, CodecError> {
        Ok(StoredBlock {
            region: self.actor.region.to_string(),
            partition: self.actor.partition,
            first_position: open.first_position,
            last_position: self.last_position,
            reach: self.reach.unwrap_or_default(),
            events_before: i64::try_from(open.events_before).unwrap_or(i64::MAX),
            counters_before: encode_counters(&open.counters_before)?,
            entries: encode_entries(&open.entries)?,
            entry_count: i32::try_from(open.entries.len()).unwrap_or(i32::MAX),
        })
    }
}

/// The actor a logged row belongs to; `None` for a row of an invalid region (history's replay
/// leaves those out too).
pub fn actor_of(row: &ReplayRow) -> Option<ActorId> {
    RegionId::parse(&row.region)
        .ok()
        .map(|region| ActorId::new(region, row.partition))
}
