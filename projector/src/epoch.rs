//! The exchange epoch's control record: what `region-node reset-states` publishes on the
//! counter-state topic to make every node start over from checkpoints.

use serde::{Deserialize, Serialize};

use crate::error::CodecError;
use crate::state_codec::{self, EPOCH_MARK};

/// The record key of epoch marks on the counter-state topic (actor states are keyed
/// `<region>:<partition>`, which never equals it): compaction keeps the latest mark.
pub const EPOCH_MARK_KEY: &str = "epoch";

/// "From now on, states of epochs before `epoch` are void."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochMark {
    pub epoch: u64,
}

impl EpochMark {
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        state_codec::encode(EPOCH_MARK, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        state_codec::decode(EPOCH_MARK, bytes)
    }

    /// True when `bytes` claim to be an epoch mark (by their kind byte), whatever their version.
    pub fn is_mark(bytes: &[u8]) -> bool {
        bytes.first() == Some(&EPOCH_MARK.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ActorId, ActorState};

    #[test]
    fn marks_round_trip_and_are_told_apart_from_states() {
        let mark = EpochMark { epoch: 7 };
        let bytes = mark.encode().unwrap();
        assert!(EpochMark::is_mark(&bytes));
        assert_eq!(EpochMark::decode(&bytes).unwrap(), mark);
        let state = ActorState::empty(ActorId::new(domain::RegionId::parse("eu-west").unwrap(), 0));
        let state = state.encode().unwrap();
        assert!(!EpochMark::is_mark(&state));
        assert!(EpochMark::decode(&state).is_err());
        assert!(ActorState::decode(&bytes).is_err());
    }
}
