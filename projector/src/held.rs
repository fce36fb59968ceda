//! Events that arrived before their stream's predecessor: held, in the checkpoint too, until
//! the predecessor arrives. After a relay failure a partition can carry a stream's sequence 3
//! before its re-sent 2; skipping 3 would lose an acknowledged event for good.

use std::collections::BTreeMap;

use domain::{EventEnvelope, StreamId};
use serde::{Deserialize, Serialize};

/// Held events by (stream, sequence). Keys are the stream's text form, so the encoding is
/// deterministic; values are the events' own wire form (JSON), which bincode can carry
/// (the typed envelope uses internally tagged enums, which it cannot).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldEvents {
    events: BTreeMap<(String, u64), Vec<u8>>,
}

impl HeldEvents {
    pub(crate) fn hold(&mut self, envelope: &EventEnvelope) {
        self.events.insert(
            (envelope.stream.to_string(), envelope.sequence),
            envelope.encode(),
        );
    }

    /// Takes the held event `sequence` of `stream`, if any. One that no longer decodes (it
    /// was encoded by this build, so only a corrupted checkpoint could do that) is dropped.
    pub(crate) fn take(&mut self, stream: &StreamId, sequence: u64) -> Option<EventEnvelope> {
        let bytes = self.events.remove(&(stream.to_string(), sequence))?;
        EventEnvelope::decode(&bytes).ok()
    }

    /// Drops what a stream now has applied (re-deliveries held before their turn came).
    pub(crate) fn forget_through(&mut self, stream: &StreamId, sequence: u64) {
        let key = stream.to_string();
        self.events
            .retain(|(held_stream, held), _| held_stream != &key || *held > sequence);
    }

    /// How many events wait for a predecessor.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}
