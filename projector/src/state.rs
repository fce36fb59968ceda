//! One actor's counter contribution and watermark: what actors exchange.

use serde::{Deserialize, Serialize};

use crate::actor::ActorId;
use crate::counters::Counters;
use crate::error::{CodecError, InvalidState};
use crate::state_codec::{self, ACTOR_STATE};
use crate::watermark::Watermark;

/// The state actor `actor` publishes: its counters (holding only its own dots) and how far it
/// has folded. Invariant, checked by every constructor and by [`ActorState::decode`]: the
/// counters hold no other actor's dots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActorState {
    actor: ActorId,
    counters: Counters,
    watermark: Watermark,
}

/// The decoding twin of `ActorState`, so serde cannot bypass the invariant check.
#[derive(Deserialize)]
struct Wire {
    actor: ActorId,
    counters: Counters,
    watermark: Watermark,
}

impl ActorState {
    /// The format version [`ActorState::encode`] writes (see [`crate::state_codec`]).
    pub const FORMAT_VERSION: u16 = ACTOR_STATE.version;

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
        })
    }

    /// An actor that has folded nothing yet.
    pub fn empty(actor: ActorId) -> Self {
        Self {
            actor,
            counters: Counters::new(),
            watermark: Watermark::default(),
        }
    }

    /// For the fold, whose counters hold its own dots by construction.
    pub(crate) fn from_fold(actor: ActorId, counters: Counters, watermark: Watermark) -> Self {
        Self {
            actor,
            counters,
            watermark,
        }
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

    /// `merge` for callers that already matched the actor; true when `self` changed.
    pub(crate) fn join(&mut self, other: &ActorState) -> bool {
        let counters_changed = self.counters.merge(&other.counters);
        let watermark = self.watermark.max(other.watermark);
        let watermark_changed = watermark != self.watermark;
        self.watermark = watermark;
        counters_changed || watermark_changed
    }

    /// The versioned binary form; deterministic: equal states give equal bytes.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        state_codec::encode(ACTOR_STATE, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let Wire {
            actor,
            counters,
            watermark,
        } = state_codec::decode(ACTOR_STATE, bytes)?;
        Ok(Self::new(actor, counters, watermark)?)
    }
}
