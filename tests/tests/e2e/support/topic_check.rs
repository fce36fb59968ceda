//! What a region's topic holds against what the load was told: every acknowledged event is on
//! it and applied exactly once by a fresh fold, in its stream's order, and the fold's counts.

use std::collections::{BTreeMap, BTreeSet};

use domain::{EventEnvelope, RegionId};
use projector::{ActorId, CountSnapshot, FoldOutcome, PartitionFold};

use super::counts::Counts;
use super::events::read_partitions;

/// A fresh fold of every partition of one region's topic.
#[derive(Debug)]
pub struct TopicFold {
    pub topic: String,
    pub records: usize,
    /// `(stream, sequence)` -> how many times the fold applied it.
    pub applied: BTreeMap<(String, u64), usize>,
    /// Records the fold dropped as already applied (a republished event).
    pub duplicates: usize,
    /// Events that came before their stream's predecessor (held until it came).
    pub out_of_order: Vec<String>,
    pub folds: Vec<PartitionFold>,
}

impl TopicFold {
    /// Reads `topic` (all `partitions`, to their end) and folds it as region `region`'s.
    /// `Err` if a record is undecodable or skipped, or an event still waits for its
    /// predecessor (a gap).
    pub async fn read(
        brokers: &str,
        topic: &str,
        partitions: i32,
        region: &RegionId,
    ) -> Result<Self, String> {
        let records_by_partition = read_partitions(brokers, topic, partitions).await;
        let mut topic_fold = Self {
            topic: topic.to_owned(),
            records: 0,
            applied: BTreeMap::new(),
            duplicates: 0,
            out_of_order: Vec::new(),
            folds: Vec::new(),
        };
        for (partition, records) in (0..partitions).zip(&records_by_partition) {
            let mut fold = PartitionFold::new(ActorId::new(region.clone(), partition));
            for record in records {
                topic_fold.records += 1;
                let envelope = EventEnvelope::decode(&record.payload).map_err(|e| {
                    format!(
                        "{topic} partition {partition} offset {}: {e}",
                        record.offset
                    )
                })?;
                let key = (envelope.stream.to_string(), envelope.sequence);
                match fold.apply(record.offset, &envelope) {
                    FoldOutcome::Applied => *topic_fold.applied.entry(key).or_default() += 1,
                    // Applied once its predecessor comes (checked below: nothing stays held).
                    FoldOutcome::Held { .. } => {
                        topic_fold.out_of_order.push(format!(
                            "{topic} partition {partition} offset {}: {key:?}",
                            record.offset
                        ));
                        *topic_fold.applied.entry(key).or_default() += 1;
                    }
                    FoldOutcome::Duplicate { .. } => topic_fold.duplicates += 1,
                    FoldOutcome::Skipped(reason) => {
                        return Err(format!(
                            "{topic} partition {partition} offset {}: {key:?} skipped: {reason}",
                            record.offset
                        ));
                    }
                }
            }
            if !fold.held().is_empty() {
                return Err(format!(
                    "{topic} partition {partition}: {} events wait for a predecessor",
                    fold.held().len()
                ));
            }
            topic_fold.folds.push(fold);
        }
        Ok(topic_fold)
    }

    /// The acknowledged events of `acknowledged` that are not on the topic (at most `limit`).
    pub fn missing<'a>(
        &self,
        acknowledged: &'a BTreeSet<(String, u64)>,
        limit: usize,
    ) -> Vec<&'a (String, u64)> {
        acknowledged
            .iter()
            .filter(|k| !self.applied.contains_key(*k))
            .take(limit)
            .collect()
    }

    /// Events the fold applied more than once (at most `limit`): a count doubled.
    pub fn doubled(&self, limit: usize) -> Vec<(&(String, u64), &usize)> {
        self.applied
            .iter()
            .filter(|(_, n)| **n > 1)
            .take(limit)
            .collect()
    }
}

/// The counts the folds of `topics` add up to, in the shape the nodes answer.
pub fn counts_of<'a>(
    folds: impl IntoIterator<Item = &'a PartitionFold>,
    regions: &[String],
) -> Counts {
    let snapshot = CountSnapshot::sum(folds.into_iter().map(PartitionFold::counters));
    let mut counts = Counts::from_body(&serde_json::to_value(&snapshot).unwrap()).unwrap();
    for region in regions {
        counts.available.entry(region.clone()).or_insert(0);
    }
    counts
}
