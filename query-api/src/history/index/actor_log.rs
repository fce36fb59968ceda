//! One actor's part of the history index: its fold, and its log cut into blocks as events
//! come, in the actor's log (position) order.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::RegionId;
use event_store::event_log::ReplayRow;
use event_store::history_index::{FoldFactsRow, FoldSave, StoredBlock, StoredFold};
use projector::history::{BlockEntry, encode_counters, encode_entries};
use projector::{ActorId, CodecError, FactsRow, MetricKey, PartitionFold, is_whole_snapshot};
use tracing::warn;

use crate::history::log::envelope;

/// How blocks and resume points are cut.
#[derive(Debug, Clone, Copy)]
pub struct BlockPolicy {
    /// Events per block: an instant's answer reads at most this many of an actor's events.
    pub block_events: usize,
    /// A resume point (the fold's head and the facts that changed since the last one) is saved
    /// after at least this many events: a restarted indexer folds at most about this many of
    /// each actor's events again.
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
    fold_due: Option<FoldSave>,
    /// The actor's stored facts rows are not this fold's baseline (it was built from nothing or
    /// from a whole snapshot): its next resume point replaces them all.
    replace_facts: bool,
    changes: Vec<(MetricKey, i32)>,
}

impl ActorLog {
    pub fn new(actor: ActorId) -> Self {
        let mut fold = PartitionFold::new(actor.clone());
        // Every stream it learns is written at its first resume point.
        fold.track_changes(false);
        Self {
            fold,
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
            replace_facts: true,
            changes: Vec::new(),
        }
    }

    /// Resumes from a saved fold (taken at the end of a block): its head and the facts rows
    /// saved with it, or a whole snapshot saved before resume points came in parts (whose rows
    /// are then all written at the next resume point).
    pub fn resume(
        actor: ActorId,
        stored: &StoredFold,
        rows: Vec<FoldFactsRow>,
    ) -> Result<Self, CodecError> {
        let whole = is_whole_snapshot(&stored.fold);
        let mut fold = if whole {
            PartitionFold::restore(&stored.fold)?
        } else {
            let rows = rows.into_iter().map(|row| FactsRow {
                stream: row.stream,
                facts: row.facts,
            });
            PartitionFold::restore_parts(&stored.fold, rows)?
        };
        fold.track_changes(whole);
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
            replace_facts: whole,
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
    pub fn take_writes(&mut self) -> Result<(Vec<StoredBlock>, Option<FoldSave>), CodecError> {
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
            match self.fold.checkpoint_parts() {
                Ok(parts) => {
                    // Taken now, at the block's end: the fold moves on before the write.
                    self.fold.mark_checkpointed();
                    let save = FoldSave {
                        fold: StoredFold {
                            region: self.actor.region.to_string(),
                            partition: self.actor.partition,
                            position: self.last_position,
                            events: i64::try_from(self.events).unwrap_or(i64::MAX),
                            reach: self.reach.unwrap_or_default(),
                            through_arrival: self.through_arrival,
                            fold: parts.head,
                        },
                        changed: parts
                            .changed
                            .into_iter()
                            .map(|row| FoldFactsRow {
                                stream: row.stream,
                                facts: row.facts,
                            })
                            .collect(),
                        replace_facts: self.replace_facts,
                    };
                    self.replace_facts = false;
                    self.fold_due = Some(match self.fold_due.take() {
                        Some(earlier) => merged(earlier, save),
                        None => save,
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

/// Two resume points due before one write: the later head, and every row either changed (the
/// later's where both did), so the rows written still hold everything since the last write.
fn merged(earlier: FoldSave, later: FoldSave) -> FoldSave {
    let mut rows: BTreeMap<String, Vec<u8>> = earlier
        .changed
        .into_iter()
        .map(|row| (row.stream, row.facts))
        .collect();
    rows.extend(later.changed.into_iter().map(|row| (row.stream, row.facts)));
    FoldSave {
        fold: later.fold,
        changed: rows
            .into_iter()
            .map(|(stream, facts)| FoldFactsRow { stream, facts })
            .collect(),
        replace_facts: earlier.replace_facts || later.replace_facts,
    }
}

/// The actor a logged row belongs to; `None` for a row of an invalid region (history's replay
/// leaves those out too).
pub fn actor_of(row: &ReplayRow) -> Option<ActorId> {
    RegionId::parse(&row.region)
        .ok()
        .map(|region| ActorId::new(region, row.partition))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use chrono::TimeDelta;
    use domain::{EventPayload, LocalizedText, ModelId, OperationalStatus, ProviderId};
    use uuid::Uuid;

    use super::*;

    const POLICY: BlockPolicy = BlockPolicy {
        block_events: 4,
        fold_every_events: 8,
    };

    /// Row `position` of eu-west/0: `model`'s event `seq` (registered, then activated and
    /// deactivated in turn).
    fn row(position: i64, model: &str, seq: i64) -> ReplayRow {
        let event = match seq {
            1 => EventPayload::ModelRegistered {
                id: ModelId::parse(model).unwrap(),
                provider: ProviderId::parse("acme").unwrap(),
                home_region: RegionId::parse("eu-west").unwrap(),
                name: LocalizedText::english(model),
                description: None,
                status: OperationalStatus::Operational,
            },
            s if s % 2 == 0 => EventPayload::ModelActivated,
            _ => EventPayload::ModelDeactivated,
        };
        ReplayRow {
            region: "eu-west".to_owned(),
            partition: 0,
            kafka_offset: position,
            position,
            occurred_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap()
                + TimeDelta::seconds(position),
            event_id: Uuid::now_v7(),
            stream: format!("model:{model}"),
            sequence: seq,
            model_id: model.to_owned(),
            event: Some(serde_json::to_string(&event).unwrap()),
        }
    }

    /// Twelve models registered, then only `acme/m0` flapping.
    fn rows() -> Vec<ReplayRow> {
        let mut rows: Vec<ReplayRow> = (0..12)
            .map(|m| row(m + 1, &format!("acme/m{m}"), 1))
            .collect();
        rows.extend((0..40).map(|i| row(13 + i, "acme/m0", 2 + i)));
        rows
    }

    /// What the table holds after each write: the head and one row per stream.
    #[derive(Default)]
    struct Store {
        head: Option<StoredFold>,
        facts: BTreeMap<String, Vec<u8>>,
        saves: Vec<FoldSave>,
    }

    impl Store {
        fn write(&mut self, log: &mut ActorLog) {
            let (_, save) = log.take_writes().unwrap();
            let Some(save) = save else { return };
            if save.replace_facts {
                self.facts.clear();
            }
            for row in &save.changed {
                self.facts.insert(row.stream.clone(), row.facts.clone());
            }
            self.head = Some(save.fold.clone());
            self.saves.push(save);
        }

        fn rows(&self) -> Vec<FoldFactsRow> {
            self.facts
                .iter()
                .map(|(stream, facts)| FoldFactsRow {
                    stream: stream.clone(),
                    facts: facts.clone(),
                })
                .collect()
        }
    }

    #[test]
    fn a_resume_point_restores_the_fold_it_was_taken_at_and_writes_only_what_changed() {
        let actor = ActorId::new(RegionId::parse("eu-west").unwrap(), 0);
        let mut log = ActorLog::new(actor.clone());
        let mut reference = PartitionFold::new(actor.clone());
        let mut reference_at: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
        let mut store = Store::default();
        for (i, row) in rows().iter().enumerate() {
            assert_eq!(log.push(i as i64 + 1, row, POLICY), Pushed::Appended);
            reference.apply(row.kafka_offset, &envelope(row).unwrap());
            reference_at.insert(row.position, reference.snapshot().unwrap());
            // Written every 19 rows: some writes carry two resume points, merged.
            if i % 19 == 18 {
                store.write(&mut log);
            }
        }
        store.write(&mut log);

        let head = store.head.clone().unwrap();
        let resumed = ActorLog::resume(actor.clone(), &head, store.rows()).unwrap();
        assert_eq!(
            resumed.fold.snapshot().unwrap(),
            reference_at[&head.position],
            "resumed at {}",
            head.position
        );
        assert_eq!(resumed.last_position(), head.position);

        // The first resume point replaces whatever the actor had stored and holds every model;
        // the later ones, taken while only acme/m0 moved, hold its row alone.
        let first = &store.saves[0];
        assert!(first.replace_facts);
        assert_eq!(first.changed.len(), 12);
        assert!(store.saves.len() >= 3, "{} saves", store.saves.len());
        for later in &store.saves[1..] {
            assert!(!later.replace_facts);
            let streams: Vec<&str> = later.changed.iter().map(|r| r.stream.as_str()).collect();
            assert_eq!(streams, ["model:acme/m0"]);
        }
    }

    #[test]
    fn a_fold_resumed_from_a_whole_snapshot_writes_every_row_at_its_next_resume_point() {
        let actor = ActorId::new(RegionId::parse("eu-west").unwrap(), 0);
        let mut fold = PartitionFold::new(actor.clone());
        let rows = rows();
        for row in &rows[..12] {
            fold.apply(row.kafka_offset, &envelope(row).unwrap());
        }
        let saved = StoredFold {
            region: "eu-west".to_owned(),
            partition: 0,
            position: 12,
            events: 12,
            reach: rows[11].occurred_at,
            through_arrival: 12,
            fold: fold.snapshot().unwrap(),
        };
        let mut log = ActorLog::resume(actor, &saved, Vec::new()).unwrap();
        for (i, row) in rows[12..20].iter().enumerate() {
            log.push(13 + i as i64, row, POLICY);
        }
        let (_, save) = log.take_writes().unwrap();
        let save = save.unwrap();
        assert!(save.replace_facts);
        assert_eq!(save.changed.len(), 12);
    }
}
