//! How far an actor has folded its partition: the input to freshness.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The last event decoded and folded (whatever its outcome): its position in the origin
/// region's event store and when it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventMark {
    pub position: u64,
    pub occurred_at: DateTime<Utc>,
}

/// The highest Kafka offset consumed and the event found there.
///
/// Ordered by offset first, so the maximum of two watermarks of one actor is the later one;
/// `max` is also what merging two states of one actor does.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Watermark {
    /// The last Kafka offset consumed; `None` before the first record.
    pub offset: Option<i64>,
    /// The last event decoded at or before `offset`; unchanged by an undecodable record.
    pub last_event: Option<EventMark>,
}

impl Watermark {
    /// Records consuming `offset`; an offset at or below the current one (re-delivery) changes
    /// nothing.
    pub(crate) fn advance(&mut self, offset: i64, event: Option<EventMark>) {
        if self.offset.is_some_and(|current| offset <= current) {
            return;
        }
        self.offset = Some(offset);
        if event.is_some() {
            self.last_event = event;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_only_forward() {
        let mark = |position| EventMark {
            position,
            occurred_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        let mut w = Watermark::default();
        w.advance(5, Some(mark(10)));
        w.advance(3, Some(mark(7)));
        assert_eq!(w.offset, Some(5));
        assert_eq!(w.last_event, Some(mark(10)));
        w.advance(6, None);
        assert_eq!(w.offset, Some(6));
        assert_eq!(w.last_event, Some(mark(10)));
    }
}
