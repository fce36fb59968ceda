//! A replay from scratch: one [`PartitionFold`] per actor, fed events in each partition's order.
//!
//! This is the projector's own fold, so counts computed here (history queries, `region-node
//! replay`, `audit`) are what the live projection computes from the same events.

use std::collections::BTreeMap;

use domain::EventEnvelope;

use crate::actor::ActorId;
use crate::counts::CountSnapshot;
use crate::error::FoldError;
use crate::fold::PartitionFold;
use crate::outcome::FoldOutcome;

/// Folds of every actor seen so far.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    folds: BTreeMap<ActorId, PartitionFold>,
    events: u64,
}

impl Replay {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds `envelope`, found at Kafka `offset` of `actor`'s partition.
    pub fn apply(&mut self, actor: &ActorId, offset: i64, envelope: &EventEnvelope) -> FoldOutcome {
        self.events = self.events.saturating_add(1);
        self.fold_mut(actor).apply(offset, envelope)
    }

    /// Folds a raw Kafka payload, like the live projector does.
    pub fn apply_bytes(
        &mut self,
        actor: &ActorId,
        offset: i64,
        payload: &[u8],
    ) -> Result<FoldOutcome, FoldError> {
        let outcome = self.fold_mut(actor).apply_bytes(offset, payload)?;
        self.events = self.events.saturating_add(1);
        Ok(outcome)
    }

    /// Takes in the folds of `other`, a replay of other actors (records of one actor are
    /// folded by one replay only, in their order: splitting an actor's records would fold
    /// neither part right). An actor in both keeps this replay's fold.
    pub fn absorb(&mut self, other: Replay) {
        self.events = self.events.saturating_add(other.events);
        for (actor, fold) in other.folds {
            self.folds.entry(actor).or_insert(fold);
        }
    }

    /// Records handed to the fold, whatever their outcome.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Global counts: the sum over every actor, as [`crate::GlobalView::totals`] computes them.
    pub fn totals(&self) -> CountSnapshot {
        CountSnapshot::sum(self.folds.values().map(PartitionFold::counters))
    }

    pub fn fold(&self, actor: &ActorId) -> Option<&PartitionFold> {
        self.folds.get(actor)
    }

    /// Every actor's fold, in actor order.
    pub fn folds(&self) -> impl Iterator<Item = &PartitionFold> + '_ {
        self.folds.values()
    }

    fn fold_mut(&mut self, actor: &ActorId) -> &mut PartitionFold {
        self.folds
            .entry(actor.clone())
            .or_insert_with(|| PartitionFold::new(actor.clone()))
    }
}
