//! Notices an assigned partition that has records to deliver but makes no progress: librdkafka
//! not fetching it (stuck in an offset query, say) or the reader not taking what was fetched.
//! A reader that silently stops is the failure a counting product must not hide; this turns it
//! into a warning and a gauge, from the statistics librdkafka reports every second.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::claims::PartitionKey;

/// How long a partition with records beyond its position may stand still before it is
/// reported. Longer than a fetch wait, a claim review and a checkpoint commit put together.
const STALL_AFTER: Duration = Duration::from_secs(10);

/// One partition as a statistics report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReport {
    /// librdkafka's fetch state: none, stopping or stopped (not assigned), offset-query,
    /// offset-wait, active, ...
    pub fetch_state: String,
    /// The next offset librdkafka will fetch (negative: not known yet).
    pub next_offset: i64,
    /// The offset after the last record handed to the reader (negative: none yet).
    pub app_offset: i64,
    /// The broker's high watermark (on Nisshi at most the true end, never beyond it).
    pub hi_offset: i64,
    /// Records fetched and queued for the reader.
    pub fetchq_cnt: i64,
}

impl PartitionReport {
    /// Where delivery stands: past the last record handed over, else where fetching resumes.
    fn delivered(&self) -> i64 {
        if self.app_offset >= 0 {
            self.app_offset
        } else {
            self.next_offset
        }
    }

    fn is_assigned(&self) -> bool {
        is_assigned(&self.fetch_state)
    }

    /// The broker holds records this partition has not delivered yet.
    fn behind(&self) -> bool {
        self.hi_offset >= 0 && self.hi_offset > self.delivered().max(0)
    }
}

/// Whether librdkafka's `fetch_state` of a partition says it is assigned to the consumer
/// (unassigned ones are reported as stopping, stopped or none).
pub fn is_assigned(fetch_state: &str) -> bool {
    !matches!(fetch_state, "none" | "stopping" | "stopped")
}

#[derive(Debug)]
struct Watched {
    position: (i64, i64),
    since: Instant,
    reported: bool,
}

/// Per reader: each assigned partition's last movement.
#[derive(Debug, Default)]
pub struct StallWatch {
    partitions: HashMap<PartitionKey, Watched>,
}

impl StallWatch {
    /// Takes one statistics report (every assigned partition), warns once per partition that
    /// stood still for [`STALL_AFTER`] with records to deliver, and answers how many stand so.
    pub fn observe(
        &mut self,
        reader: &str,
        now: Instant,
        report: impl IntoIterator<Item = (PartitionKey, PartitionReport)>,
    ) -> usize {
        let mut seen = HashMap::new();
        for (key, partition) in report {
            // Not assigned (a dozing reader unassigns everything; librdkafka reports such a
            // partition as stopping, stopped or none): nothing is owed.
            if !partition.is_assigned() {
                continue;
            }
            let position = (partition.next_offset, partition.app_offset);
            let mut watched = self.partitions.remove(&key).unwrap_or(Watched {
                position,
                since: now,
                reported: false,
            });
            if watched.position != position || !partition.behind() {
                watched = Watched {
                    position,
                    since: now,
                    reported: false,
                };
            } else if !watched.reported && now.duration_since(watched.since) >= STALL_AFTER {
                watched.reported = true;
                metrics::counter!("reader_partition_stalls_total", "reader" => reader.to_owned())
                    .increment(1);
                warn!(
                    reader,
                    topic = %key.0,
                    partition = key.1,
                    fetch_state = %partition.fetch_state,
                    next_offset = partition.next_offset,
                    app_offset = partition.app_offset,
                    high_watermark = partition.hi_offset,
                    queued = partition.fetchq_cnt,
                    stalled_s = now.duration_since(watched.since).as_secs(),
                    "a partition has records to deliver but has not moved"
                );
            }
            seen.insert(key, watched);
        }
        self.partitions = seen;
        self.partitions.values().filter(|w| w.reported).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(state: &str, next: i64, app: i64, hi: i64) -> PartitionReport {
        PartitionReport {
            fetch_state: state.to_owned(),
            next_offset: next,
            app_offset: app,
            hi_offset: hi,
            fetchq_cnt: 0,
        }
    }

    fn key() -> PartitionKey {
        ("t".to_owned(), 0)
    }

    #[test]
    fn a_partition_standing_still_behind_its_end_is_reported_once() {
        let mut watch = StallWatch::default();
        let start = Instant::now();
        let stuck = || [(key(), report("offset-query", -1001, 40, 95))];
        assert_eq!(watch.observe("r", start, stuck()), 0);
        assert_eq!(
            watch.observe("r", start + Duration::from_secs(9), stuck()),
            0
        );
        assert_eq!(watch.observe("r", start + STALL_AFTER, stuck()), 1);
        assert_eq!(
            watch.observe("r", start + Duration::from_secs(30), stuck()),
            1
        );
        // It moves: no longer stalled.
        let moved = [(key(), report("active", 96, 96, 96))];
        assert_eq!(
            watch.observe("r", start + Duration::from_secs(31), moved),
            0
        );
    }

    #[test]
    fn caught_up_moving_or_unassigned_partitions_are_not_reported() {
        let mut watch = StallWatch::default();
        let start = Instant::now();
        let later = start + Duration::from_secs(60);
        let caught_up = || [(key(), report("active", 95, 95, 95))];
        watch.observe("r", start, caught_up());
        assert_eq!(watch.observe("r", later, caught_up()), 0);

        // librdkafka keeps an unassigned partition in its statistics as stopping, stopped or
        // none: a dozing reader's partitions, records arriving meanwhile, owe nothing.
        for state in ["none", "stopping", "stopped"] {
            let mut watch = StallWatch::default();
            let unassigned = || [(key(), report(state, -1001, 40, 95))];
            watch.observe("r", start, unassigned());
            assert_eq!(watch.observe("r", later, unassigned()), 0, "{state}");
        }

        let mut watch = StallWatch::default();
        for second in 0..60 {
            let moving = [(key(), report("active", 10 + second, 10 + second, 100))];
            let at = start + Duration::from_secs(second.unsigned_abs());
            assert_eq!(watch.observe("r", at, moving), 0);
        }
    }
}
