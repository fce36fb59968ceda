//! One actor's counter contribution and watermark: what actors exchange.

use serde::{Deserialize, Serialize};

use crate::actor::ActorId;
use crate::counters::Counters;
use crate::error::{CodecError, InvalidState};
use crate::state_codec::{self, ACTOR_STATE, ACTOR_STATE_OLDEST};
use crate::watermark::Watermark;

/// The state actor `actor` publishes: its counters (holding only its own dots), how far it
/// has folded, and the exchange epoch it was published in. Invariant, checked by every
/// constructor and by [`ActorState::decode`]: the counters hold no other actor's dots.
///
/// The epoch is the exchange's way back from a bad state (`region-node reset-states`): states
/// of a newer epoch replace older ones whole, so a corrupt state merged in an older epoch is
/// forgotten once every node has moved on. Within one epoch states join as CRDTs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActorState {
    actor: ActorId,
    counters: Counters,
    watermark: Watermark,
    epoch: u64,
}

/// The decoding twin of `ActorState` (format version 2), so serde cannot bypass the invariant
/// check.
#[derive(Deserialize)]
struct Wire {
    actor: ActorId,
    counters: Counters,
    watermark: Watermark,
    epoch: u64,
}

/// Format version 1: before epochs; read as epoch 0.
#[derive(Deserialize)]
struct WireV1 {
    actor: ActorId,
    counters: Counters,
    watermark: Watermark,
}

impl ActorState {
    /// The format version [`ActorState::encode`] writes (see [`crate::state_codec`]).
    pub const FORMAT_VERSION: u16 = ACTOR_STATE.version;

    /// A state of epoch 0 (see [`ActorState::with_epoch`]).
    pub fn new(
        actor: ActorId,
        counters: Counters,
        watermark: Watermark,
    ) -> Result<Self, InvalidState> {
        counters.check_owned_by(&actor)?;
        Ok(Self {
            actor,
            counters,
            watermark,
            epoch: 0,
        })
    }

    /// An actor that has folded nothing yet.
    pub fn empty(actor: ActorId) -> Self {
        Self {
            actor,
            counters: Counters::new(),
            watermark: Watermark::default(),
            epoch: 0,
        }
    }

    /// For the fold, whose counters hold its own dots by construction.
    pub(crate) fn from_fold(actor: ActorId, counters: Counters, watermark: Watermark) -> Self {
        Self {
            actor,
            counters,
            watermark,
            epoch: 0,
        }
    }

    /// The same state, published in exchange epoch `epoch`.
    #[must_use]
    pub fn with_epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }

    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn watermark(&self) -> &Watermark {
        &self.watermark
    }

    /// The exchange epoch this state was published in (0 before any reset).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Joins another state of the same actor: counters by maximum per dot, watermark by
    /// maximum. For states the fold produced, that is simply the later of the two.
    pub fn merge(&mut self, other: &ActorState) -> Result<(), InvalidState> {
        if self.actor != other.actor {
            return Err(InvalidState::ActorMismatch {
                ours: self.actor.clone(),
                theirs: other.actor.clone(),
            });
        }
        self.join(other);
        Ok(())
    }

    /// `merge` for callers that already matched the actor; true when `self` changed. A newer
    /// epoch replaces the state whole, an older one changes nothing: the join of the
    /// lexicographic product (epoch, CRDT state), itself a semilattice.
    pub(crate) fn join(&mut self, other: &ActorState) -> bool {
        if other.epoch > self.epoch {
            *self = other.clone();
            return true;
        }
        if other.epoch < self.epoch {
            return false;
        }
        let counters_changed = self.counters.merge(&other.counters);
        let watermark = self.watermark.max(other.watermark);
        let watermark_changed = watermark != self.watermark;
        self.watermark = watermark;
        counters_changed || watermark_changed
    }

    /// True when joining `other` would change nothing: it is already included.
    pub fn includes(&self, other: &ActorState) -> bool {
        self.actor == other.actor && !self.clone().join(other)
    }

    /// The versioned binary form; deterministic: equal states give equal bytes.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        state_codec::encode(ACTOR_STATE, self)
    }

    /// Reads the current format and version 1 (as epoch 0).
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let (version, body) =
            state_codec::decode_versioned(ACTOR_STATE, ACTOR_STATE_OLDEST, bytes)?;
        let (actor, counters, watermark, epoch) = if version == 1 {
            let WireV1 {
                actor,
                counters,
                watermark,
            } = state_codec::decode_body(ACTOR_STATE, body)?;
            (actor, counters, watermark, 0)
        } else {
            let Wire {
                actor,
                counters,
                watermark,
                epoch,
            } = state_codec::decode_body(ACTOR_STATE, body)?;
            (actor, counters, watermark, epoch)
        };
        Ok(Self::new(actor, counters, watermark)?.with_epoch(epoch))
    }
}

#[cfg(test)]
mod tests {
    use domain::RegionId;

    use super::*;
    use crate::MetricKey;

    fn state(total: i32, offset: i64) -> ActorState {
        let actor = ActorId::new(RegionId::parse("eu-west").unwrap(), 0);
        let mut counters = Counters::new();
        counters.add(&actor, MetricKey::Total, total);
        let watermark = Watermark {
            offset: Some(offset),
            last_event: None,
        };
        ActorState::new(actor, counters, watermark).unwrap()
    }

    #[test]
    fn version_1_is_read_as_epoch_0() {
        #[derive(Serialize)]
        struct V1<'a> {
            actor: &'a ActorId,
            counters: &'a Counters,
            watermark: &'a Watermark,
        }
        let original = state(3, 7);
        let v1 = V1 {
            actor: original.actor(),
            counters: original.counters(),
            watermark: original.watermark(),
        };
        let mut bytes = state_codec::encode(ACTOR_STATE, &v1).unwrap();
        bytes[1..3].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(ActorState::decode(&bytes).unwrap(), original);

        let current = original.clone().with_epoch(4);
        let decoded = ActorState::decode(&current.encode().unwrap()).unwrap();
        assert_eq!(decoded.epoch(), 4);
        assert_eq!(decoded, current);
    }

    #[test]
    fn a_newer_epoch_replaces_an_older_one_whole() {
        let corrupt = state(1_000, 9);
        let honest = state(2, 5).with_epoch(1);
        let mut merged = corrupt.clone();
        assert!(merged.join(&honest));
        assert_eq!(merged, honest, "the older epoch's counters are gone");
        assert!(!merged.join(&corrupt), "an older epoch changes nothing");
        assert!(merged.includes(&corrupt));
        assert!(!corrupt.includes(&honest));
        // Within one epoch: the CRDT join.
        let mut later = state(2, 5);
        assert!(later.join(&state(3, 6)));
        assert_eq!(later.counters().value(&MetricKey::Total), 3);
        assert!(later.includes(&state(2, 5)));
    }
}
