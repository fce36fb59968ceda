//! What folding one record did.

use domain::{Lifecycle, RegionId};

/// The result of folding one record. Whatever it is, the record's offset is consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoldOutcome {
    /// The event advanced its stream (and possibly the counters).
    Applied,
    /// The stream already includes this sequence (re-delivery): nothing changed.
    Duplicate { sequence: u64, last_applied: u64 },
    /// The event came before its stream's predecessor (`expected`): it is held, and applied
    /// as soon as the predecessors arrive.
    Held { expected: u64, found: u64 },
    /// The event does not fit what this partition knows: nothing changed but the watermark.
    Skipped(SkipReason),
}

/// Why an event was not applied. Events come from a validated event store, so each of these
/// means a bug or a misrouted record; they are counted, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("the record is not an event: {0}")]
    Malformed(String),
    #[error("the event comes from region {origin}, but this actor folds region {actor_region}")]
    ForeignOrigin {
        origin: RegionId,
        actor_region: RegionId,
    },
    #[error("the event contradicts itself: {0}")]
    Inconsistent(&'static str),
    #[error("sequence gap: expected {expected}, found {found}")]
    SequenceGap { expected: u64, found: u64 },
    #[error("{event} for a model this partition has not seen registered")]
    UnknownModel { event: &'static str },
    #[error("{event} does not apply to a model that is {lifecycle}")]
    IllegalTransition {
        event: &'static str,
        lifecycle: Lifecycle,
    },
    #[error("{event} does not apply when served is {served}")]
    IllegalAvailability { event: &'static str, served: bool },
}

/// Running totals of outcomes since this fold was created or restored (not persisted: a
/// re-delivery must not change the persisted state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldStats {
    pub applied: u64,
    pub duplicates: u64,
    pub held: u64,
    pub skipped: u64,
}

impl FoldStats {
    pub(crate) fn record(&mut self, outcome: &FoldOutcome) {
        let slot = match outcome {
            FoldOutcome::Applied => &mut self.applied,
            FoldOutcome::Duplicate { .. } => &mut self.duplicates,
            FoldOutcome::Held { .. } => &mut self.held,
            FoldOutcome::Skipped(_) => &mut self.skipped,
        };
        *slot = slot.saturating_add(1);
    }
}
