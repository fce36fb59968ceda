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
    /// The first state seen from this actor (in the current epoch).
    New,
    /// It moved this actor's state forward.
    Advanced,
    /// Already included (a duplicate, an older state, or one of an older epoch): nothing
    /// changed.
    Unchanged,
}

/// The merged states of every actor seen, from any region, received in any order, any number
/// of times. Per actor, states merge by the CRDT join (maximum per dot, maximum watermark), so
/// an old or repeated message never moves anything back; across actors, counts add up, since
/// each actor counts only its own partition's events.
///
/// The view lives in one exchange epoch: a state of a newer epoch moves it there and drops
/// every state of an older one (they are republished in the new epoch by their owners); a
/// state of an older epoch changes nothing.
///
/// `GlobalView` is itself a state-based CRDT: [`GlobalView::merge`] is commutative, associative
/// and idempotent (the join of the lexicographic product of epoch and states).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalView {
    epoch: u64,
    actors: BTreeMap<ActorId, ActorState>,
}

impl GlobalView {
    pub fn new() -> Self {
        Self::default()
    }

    /// The exchange epoch every state in the view belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Moves to `epoch` if it is newer, dropping every state of an older epoch; true if it
    /// moved.
    pub fn enter_epoch(&mut self, epoch: u64) -> bool {
        if epoch <= self.epoch {
            return false;
        }
        self.epoch = epoch;
        self.actors.retain(|_, state| state.epoch() >= epoch);
        true
    }

    pub fn observe(&mut self, state: ActorState) -> Observed {
        if state.epoch() < self.epoch {
            return Observed::Unchanged;
        }
        self.enter_epoch(state.epoch());
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
        self.enter_epoch(other.epoch);
        if other.epoch < self.epoch {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Counters, MetricKey, Watermark};

    fn state(region: &str, total: i32) -> ActorState {
        let actor = ActorId::new(RegionId::parse(region).unwrap(), 0);
        let mut counters = Counters::new();
        counters.add(&actor, MetricKey::Total, total);
        ActorState::new(actor, counters, Watermark::default()).unwrap()
    }

    #[test]
    fn a_newer_epoch_drops_every_older_state() {
        let mut view = GlobalView::new();
        view.observe(state("eu-west", 1_000));
        view.observe(state("us-east", 2));
        assert_eq!(view.totals().total, 1_002);

        assert_eq!(
            view.observe(state("us-east", 2).with_epoch(1)),
            Observed::New
        );
        assert_eq!(view.epoch(), 1);
        assert_eq!(view.totals().total, 2, "eu-west's old state is gone");
        assert_eq!(view.observe(state("eu-west", 1_000)), Observed::Unchanged);
        assert_eq!(view.totals().total, 2, "an older epoch is not taken back");
        assert_eq!(
            view.observe(state("eu-west", 3).with_epoch(1)),
            Observed::New
        );
        assert_eq!(view.totals().total, 5);
        assert!(!view.enter_epoch(1));
        assert!(view.enter_epoch(2));
        assert_eq!(view.actors().count(), 0);
    }

    #[test]
    fn merging_views_of_different_epochs_keeps_the_newer() {
        let mut old = GlobalView::new();
        old.observe(state("eu-west", 1_000));
        let mut new = GlobalView::new();
        new.observe(state("us-east", 2).with_epoch(3));
        let mut a = old.clone();
        a.merge(&new);
        let mut b = new.clone();
        b.merge(&old);
        assert_eq!(a, b);
        assert_eq!(a.totals().total, 2);
    }
}
