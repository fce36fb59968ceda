//! Two gears for a reader: a consumer with a short fetch wait for the tail (every record on its
//! way at once) and one with a long wait for catching up. On Nisshi's sqlite engine a fetch
//! stops reading records once its wait has passed, so a short wait also means short answers:
//! a reader far behind got about 2,400 records/s at 50 ms and 15-28k/s at 500-2,000 ms
//! (docs/BROKER.md, "The sqlite engine"). A long wait costs nothing while records are waiting
//! (the broker answers once it has them, on any broker); only a caught-up reader pays it, in
//! latency, which is why the reader changes back.
//!
//! The gear is chosen from the broker's last high watermarks against the reader's own
//! positions: [`BULK_FROM`] records or more behind, the long wait; [`TAIL_FROM`] or fewer, the
//! short one; judged once per statistics report of the consumer reading, and not before every
//! partition has a high watermark (a consumer whose fetches were not answered yet says nothing).
//! A change hands the partitions from one consumer to the other at the reader's positions (what
//! the first one fetched and not delivered is dropped and read again).

use std::sync::Arc;

use kafka_client::KafkaClient;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaResult;
use tracing::info;

use crate::claims::PartitionKey;
use crate::source::{Reader, ReaderStats, reader_config, start_reading};

/// This many records behind in all (every partition the reader holds): the catching-up gear.
pub const BULK_FROM: i64 = 2_000;
/// This many or fewer: the tail gear.
pub const TAIL_FROM: i64 = 200;
/// `fetch.max.bytes` of a reader's tail consumer when a catching-up one takes the long reads:
/// about 130 of our records, many times the tail's usual answer, and a bounded amount of work
/// for a broker that reads one record per query once a fetch's short wait has passed (Nisshi's
/// sqlite engine, see [`reader_config`]). The catching-up consumer, and a reader's only
/// consumer, keep librdkafka's bound: large answers are what catching up needs.
pub const TAIL_ANSWER_BYTES: u32 = 64 * 1024;

/// Which consumer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gear {
    /// Short fetch waits: low latency on the tail.
    Tail,
    /// Long fetch waits: large answers while far behind.
    Bulk,
}

impl Gear {
    /// The gear for a reader `behind` records from the end that reads in this one now: between
    /// the two thresholds it keeps its gear, so it does not change at every report.
    pub fn for_distance(self, behind: i64) -> Self {
        match self {
            Self::Tail if behind >= BULK_FROM => Self::Bulk,
            Self::Bulk if behind <= TAIL_FROM => Self::Tail,
            current => current,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Tail => "tail",
            Self::Bulk => "bulk",
        }
    }
}

/// The names a reader's consumers go by in metrics and warnings.
#[derive(Debug, Clone, Copy)]
pub struct ReaderNames {
    /// `projector`, `catalogue`: the tail consumer's name, and the label of the gear gauge.
    pub tail: &'static str,
    /// The catching-up consumer's name.
    pub bulk: &'static str,
    /// The lag gauge both consumers set for the partitions assigned to them.
    pub lag_metric: &'static str,
}

/// A reader's two consumers and the one reading now.
pub struct Gears {
    names: ReaderNames,
    tail: Arc<Reader>,
    /// None: one gear only (catching up disabled).
    bulk: Option<Arc<Reader>>,
    gear: Gear,
    /// The active consumer's statistics count when it was last judged (or took over): it is
    /// judged again only on a report it made since.
    judged_at_report: u64,
}

impl std::fmt::Debug for Gears {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gears")
            .field("names", &self.names)
            .field("gear", &self.gear)
            .finish_non_exhaustive()
    }
}

impl Gears {
    /// `tail` reads the tail; `catch_up`, if given, is the client of the catching-up consumer
    /// (its fetch wait is the long one). A reader starts in the catching-up gear when it has
    /// one: a process starting is usually behind, and its first statistics say otherwise
    /// within a second.
    pub fn new(
        tail: &KafkaClient,
        catch_up: Option<&KafkaClient>,
        group: &str,
        names: ReaderNames,
    ) -> KafkaResult<Self> {
        let tail_answer_bytes = catch_up.is_some().then_some(TAIL_ANSWER_BYTES);
        let tail: Arc<Reader> = Arc::new(
            reader_config(tail, group, tail_answer_bytes)
                .create_with_context(ReaderStats::new(names.tail, names.lag_metric))?,
        );
        let bulk = catch_up
            .map(|client| {
                reader_config(client, group, None)
                    .create_with_context(ReaderStats::new(names.bulk, names.lag_metric))
                    .map(Arc::new)
            })
            .transpose()?;
        let gear = if bulk.is_some() {
            Gear::Bulk
        } else {
            Gear::Tail
        };
        metrics::gauge!("reader_catching_up", "reader" => names.tail)
            .set(f64::from(u8::from(gear == Gear::Bulk)));
        Ok(Self {
            names,
            tail,
            bulk,
            gear,
            judged_at_report: 0,
        })
    }

    /// The consumer reading now.
    pub fn reader(&self) -> &Arc<Reader> {
        match (&self.bulk, self.gear) {
            (Some(bulk), Gear::Bulk) => bulk,
            _ => &self.tail,
        }
    }

    pub fn gear(&self) -> Gear {
        self.gear
    }

    fn consumers(&self) -> impl Iterator<Item = &Arc<Reader>> {
        std::iter::once(&self.tail).chain(self.bulk.as_ref())
    }

    /// A partition's high watermark: the highest either consumer last reported (the one not
    /// reading may hold an older figure, never a newer one).
    fn high_watermark(&self, key: &PartitionKey) -> Option<i64> {
        self.consumers()
            .filter_map(|consumer| consumer.context().high_watermark(key))
            .max()
    }

    /// True when each partition, by its next offset in `positions`, has reached the high
    /// watermark the broker last reported (none reported yet: not caught up).
    pub fn caught_up(&self, positions: &[(PartitionKey, i64)]) -> bool {
        positions
            .iter()
            .all(|(key, next)| self.high_watermark(key).is_some_and(|high| *next >= high))
    }

    /// How many records the broker last reported beyond `positions`, in all; None while a
    /// partition has no high watermark reported yet (it answered no fetch so far).
    pub fn behind_by(&self, positions: &[(PartitionKey, i64)]) -> Option<i64> {
        positions
            .iter()
            .map(|(key, next)| self.high_watermark(key).map(|high| (high - next).max(0)))
            .sum()
    }

    /// Changes gear if the reader's distance to the end calls for it; `positions` gives where
    /// each partition it holds is read from next (asked only when a new report is there: the
    /// caller runs this after every record). `asleep`: nothing is assigned (a
    /// [dozing](crate::doze) reader), so only the choice changes and the next wake-up assigns
    /// to the new consumer.
    pub fn shift_if_due(
        &mut self,
        positions: impl FnOnce() -> Vec<(PartitionKey, i64)>,
        asleep: bool,
    ) -> KafkaResult<()> {
        let reports = self.reader().context().reports();
        if self.bulk.is_none() || reports <= self.judged_at_report {
            return Ok(());
        }
        self.judged_at_report = reports;
        let positions = positions();
        let positions = positions.as_slice();
        let Some(behind) = self.behind_by(positions) else {
            return Ok(());
        };
        let wanted = self.gear.for_distance(behind);
        if wanted == self.gear {
            return Ok(());
        }
        let from = Arc::clone(self.reader());
        self.gear = wanted;
        let to = Arc::clone(self.reader());
        if !asleep {
            let assigned = from.assignment()?;
            if assigned.count() > 0 {
                from.incremental_unassign(&assigned)?;
            }
            start_reading(&to, positions)?;
        }
        self.judged_at_report = to.context().reports();
        info!(
            reader = self.names.tail,
            gear = wanted.label(),
            behind,
            "reader changed gear"
        );
        metrics::gauge!("reader_catching_up", "reader" => self.names.tail)
            .set(f64::from(u8::from(wanted == Gear::Bulk)));
        metrics::counter!("reader_gear_changes_total", "reader" => self.names.tail, "to" => wanted.label())
            .increment(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_behind_reads_in_bulk_and_near_the_end_at_the_tail() {
        assert_eq!(Gear::Tail.for_distance(BULK_FROM), Gear::Bulk);
        assert_eq!(Gear::Tail.for_distance(BULK_FROM - 1), Gear::Tail);
        assert_eq!(Gear::Bulk.for_distance(TAIL_FROM), Gear::Tail);
        assert_eq!(Gear::Bulk.for_distance(TAIL_FROM + 1), Gear::Bulk);
    }

    #[test]
    fn between_the_thresholds_a_reader_keeps_its_gear() {
        let between = (BULK_FROM + TAIL_FROM) / 2;
        assert_eq!(Gear::Tail.for_distance(between), Gear::Tail);
        assert_eq!(Gear::Bulk.for_distance(between), Gear::Bulk);
    }
}
