//! A map of PN-counters, one per metric key: the CRDT that actors exchange.

use std::collections::BTreeMap;

use crdts::{CmRDT, CvRDT, Dot, PNCounter, ResetRemove, VClock};
use serde::{Deserialize, Serialize};

use crate::actor::ActorId;
use crate::error::InvalidState;
use crate::metric::MetricKey;

/// The largest dot an actor state may carry (2^62): far beyond any real event count, and low
/// enough that incrementing it can never overflow.
pub const MAX_DOT: u64 = 1 << 62;

/// PN-counters keyed by metric. A `BTreeMap` (and the `BTreeMap`-backed vector clocks inside
/// the counters) keeps iteration, and so the encoding, deterministic.
///
/// Merging is pointwise over keys (a key missing on one side is an empty counter), and each
/// counter merges by the maximum per dot, so merge is commutative, associative and idempotent.
/// A key appears only once some actor changed it, so equal histories give equal maps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Counters(BTreeMap<MetricKey, PNCounter<ActorId>>);

impl Counters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves `key` by `delta` with `actor`'s own dot. A zero delta changes nothing (not even
    /// the key set).
    pub fn add(&mut self, actor: &ActorId, key: MetricKey, delta: i32) {
        if delta == 0 {
            return;
        }
        let counter = self.0.entry(key).or_default();
        let steps = u64::from(delta.unsigned_abs());
        let op = if delta > 0 {
            counter.inc_many(actor.clone(), steps)
        } else {
            counter.dec_many(actor.clone(), steps)
        };
        counter.apply(op);
    }

    /// The counter's value summed over every actor it holds; 0 for a key never touched.
    pub fn value(&self, key: &MetricKey) -> i64 {
        self.0.get(key).map_or(0, read)
    }

    /// Every key ever touched with its current value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&MetricKey, i64)> + '_ {
        self.0.iter().map(|(key, counter)| (key, read(counter)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Joins `other` into `self` (CvRDT merge); true when `self` changed. Counters already
    /// equal are skipped, so merging a state that moved a few keys costs only those keys.
    pub fn merge(&mut self, other: &Counters) -> bool {
        let mut changed = false;
        for (key, theirs) in &other.0 {
            match self.0.get_mut(key) {
                Some(ours) if ours == theirs => {}
                Some(ours) => {
                    let before = ours.clone();
                    ours.merge(theirs.clone());
                    changed |= *ours != before;
                }
                None => {
                    self.0.insert(key.clone(), theirs.clone());
                    changed = true;
                }
            }
        }
        changed
    }

    /// Every counter's steps (increments plus decrements) with `owner`'s dots: the fold moves
    /// a counter by at most one per event, so none can exceed the records the actor consumed.
    pub fn steps<'a>(
        &'a self,
        owner: &'a ActorId,
    ) -> impl Iterator<Item = (&'a MetricKey, u64)> + 'a {
        self.0.iter().map(move |(key, counter)| {
            let up = counter.inc_many(owner.clone(), 0).dot.counter;
            let down = counter.dec_many(owner.clone(), 0).dot.counter;
            (key, up.saturating_add(down))
        })
    }

    /// The most steps any one counter took with `owner`'s dots (see [`Counters::steps`]).
    pub fn max_steps(&self, owner: &ActorId) -> u64 {
        self.steps(owner).map(|(_, steps)| steps).max().unwrap_or(0)
    }

    /// Checks the actor invariant: every counter holds dots of `owner` only, none beyond
    /// [`MAX_DOT`].
    pub fn check_owned_by(&self, owner: &ActorId) -> Result<(), InvalidState> {
        // Forgetting every dot of `owner` up to MAX_DOT must leave nothing behind.
        let owned: VClock<ActorId> = VClock::from(Dot::new(owner.clone(), MAX_DOT));
        for (key, counter) in &self.0 {
            let mut rest = counter.clone();
            rest.reset_remove(&owned);
            if rest != PNCounter::default() {
                return Err(InvalidState::ForeignOrOversizedDots {
                    owner: owner.clone(),
                    key: key.clone(),
                });
            }
        }
        Ok(())
    }
}

/// P − N as an `i64`. Dots are bounded by [`MAX_DOT`] for states that passed the owner check;
/// anything else saturates rather than wraps.
fn read(counter: &PNCounter<ActorId>) -> i64 {
    let value = counter.read();
    i64::try_from(&value).unwrap_or(if value < 0.into() { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use domain::RegionId;

    use super::*;

    fn actor(region: &str, partition: i32) -> ActorId {
        ActorId::new(RegionId::parse(region).unwrap(), partition)
    }

    #[test]
    fn adds_and_reads_per_key() {
        let a = actor("eu", 0);
        let mut counters = Counters::new();
        counters.add(&a, MetricKey::Total, 1);
        counters.add(&a, MetricKey::Total, 1);
        counters.add(&a, MetricKey::Total, -1);
        counters.add(&a, MetricKey::Active, 0);
        assert_eq!(counters.value(&MetricKey::Total), 1);
        assert_eq!(counters.value(&MetricKey::Active), 0);
        assert_eq!(counters.iter().count(), 1, "a zero delta creates no key");
    }

    #[test]
    fn merge_takes_the_max_per_dot() {
        let (a, b) = (actor("eu", 0), actor("us", 0));
        let mut old = Counters::new();
        old.add(&a, MetricKey::Total, 1);
        let mut new = old.clone();
        new.add(&a, MetricKey::Total, 1);
        let mut other = Counters::new();
        other.add(&b, MetricKey::Total, 5);

        let mut merged = new.clone();
        assert!(!merged.merge(&old), "an older state changes nothing");
        assert!(merged.merge(&other));
        assert!(!merged.merge(&other));
        assert_eq!(merged.value(&MetricKey::Total), 7);
    }

    #[test]
    fn steps_count_both_directions() {
        let a = actor("eu", 0);
        let mut counters = Counters::new();
        assert_eq!(counters.max_steps(&a), 0);
        counters.add(&a, MetricKey::Total, 1);
        counters.add(&a, MetricKey::Total, -1);
        counters.add(&a, MetricKey::Total, 1);
        counters.add(&a, MetricKey::Active, 1);
        assert_eq!(counters.value(&MetricKey::Total), 1);
        assert_eq!(counters.max_steps(&a), 3);
    }

    #[test]
    fn owner_check_finds_foreign_dots() {
        let (a, b) = (actor("eu", 0), actor("eu", 1));
        let mut counters = Counters::new();
        counters.add(&a, MetricKey::Retired, 3);
        assert!(counters.check_owned_by(&a).is_ok());
        counters.add(&b, MetricKey::Retired, 1);
        assert!(counters.check_owned_by(&a).is_err());
    }
}
