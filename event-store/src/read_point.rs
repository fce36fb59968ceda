//! Where a reader stands in one partition of a topic: what the projector's checkpoints and the
//! catalogue's offsets store beside the rows those records changed.

/// The next offset to read, in which incarnation of the topic, after which record.
///
/// Offsets only mean something within one incarnation of a topic (a topic deleted and created
/// again numbers its records from zero). `last_record_ms` is the Kafka timestamp of the record
/// at `next_offset - 1`, by which a reader recognizes that record on the partition again;
/// `incarnation` counts the times the reader started the partition over on a new incarnation.
/// Read points order by incarnation, then offset: a writer that still reads an old incarnation
/// cannot overwrite a newer read point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReadPoint {
    pub incarnation: i32,
    pub next_offset: i64,
    pub last_record_ms: Option<i64>,
}

impl ReadPoint {
    /// Offset `next_offset` of the first incarnation, after a record with no known timestamp.
    pub fn at(next_offset: i64) -> Self {
        Self {
            incarnation: 0,
            next_offset,
            last_record_ms: None,
        }
    }

    /// Moves past the record at `offset` with timestamp `timestamp_ms` (None: the broker gave
    /// none).
    pub fn consumed(&mut self, offset: i64, timestamp_ms: Option<i64>) {
        self.next_offset = offset.saturating_add(1);
        self.last_record_ms = timestamp_ms;
    }

    /// The start of the topic's next incarnation: offset zero, no record consumed there yet.
    pub fn next_incarnation(&self) -> Self {
        Self {
            incarnation: self.incarnation.saturating_add(1),
            next_offset: 0,
            last_record_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_incarnation_orders_after_any_offset_of_the_old_one() {
        let mut old = ReadPoint::at(1_000);
        old.consumed(1_000, Some(7));
        let new = old.next_incarnation();
        assert_eq!(new.next_offset, 0);
        assert!(new > old);
    }

    #[test]
    fn consuming_a_record_remembers_it() {
        let mut point = ReadPoint::at(0);
        point.consumed(41, Some(1_700_000_000_000));
        assert_eq!(point.next_offset, 42);
        assert_eq!(point.last_record_ms, Some(1_700_000_000_000));
    }
}
