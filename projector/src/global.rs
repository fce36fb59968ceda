//! Global totals: the merge of every actor state this node has received.

use std::collections::BTreeMap;

use domain::RegionId;

use crate::actor::ActorId;
use crate::counts::CountSnapshot;
use crate::error::CodecError;
use crate::state::ActorState;

/// What receiving one actor state did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// The first state seen from this actor.
    New,
    /// It moved this actor's state forward.
    Advanced,
    /// Already included (a duplicate or an older state): nothing changed.
    Unchanged,
}

/// The merged states of every actor seen, from any region, received in any order, any number
/// of times. Per actor, states merge by the CRDT join (maximum per dot, maximum watermark), so
/// an old or repeated message never moves anything back; across actors, counts add up, since
/// each actor counts only its own partition's events.
///
/// `GlobalView` is itself a state-based CRDT: [`GlobalView::merge`] is commutative, associative
/// and idempotent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalView {
    actors: BTreeMap<ActorId, ActorState>,
}

impl GlobalView {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn observe(&mut self, state: ActorState) -> Observed {
        match self.actors.get_mut(state.actor()) {
            None => {
                self.actors.insert(state.actor().clone(), state);
                Observed::New
            }
            Some(ours) => {
                if ours.join(&state) {
                    Observed::Advanced
                } else {
                    Observed::Unchanged
                }
            }
        }
    }

    /// Decodes a record of the counter-state topic and observes it.
    pub fn observe_bytes(&mut self, bytes: &[u8]) -> Result<Observed, CodecError> {
        Ok(self.observe(ActorState::decode(bytes)?))
    }

    /// Joins everything `other` has seen.
    pub fn merge(&mut self, other: &GlobalView) {
        for (actor, theirs) in &other.actors {
            match self.actors.get_mut(actor) {
                Some(ours) => {
                    ours.join(theirs);
                }
                None => {
                    self.actors.insert(actor.clone(), theirs.clone());
                }
            }
        }
    }

    pub fn actor(&self, actor: &ActorId) -> Option<&ActorState> {
        self.actors.get(actor)
    }

    /// Every actor's merged state, in actor order (region, then partition).
    pub fn actors(&self) -> impl Iterator<Item = &ActorState> + '_ {
        self.actors.values()
    }

    /// Global counts: the sum over every actor.
    pub fn totals(&self) -> CountSnapshot {
        CountSnapshot::sum(self.actors.values().map(ActorState::counters))
    }

    /// One region's view: the sum over that region's actors only, i.e. the models it is home
    /// to, and what it serves.
    pub fn region_view(&self, region: &RegionId) -> CountSnapshot {
        CountSnapshot::sum(
            self.actors
                .values()
                .filter(|state| &state.actor().region == region)
                .map(ActorState::counters),
        )
    }
}
