//! The fold's checkpoint: counters, watermark and per-stream facts in one versioned blob.

use serde::{Deserialize, Serialize};

use crate::actor::ActorId;
use crate::counters::Counters;
use crate::error::CodecError;
use crate::facts::PartitionFacts;
use crate::fold::PartitionFold;
use crate::held::HeldEvents;
use crate::outcome::FoldStats;
use crate::state_codec::{self, FOLD_SNAPSHOT, FOLD_SNAPSHOT_V1};
use crate::watermark::Watermark;

#[derive(Serialize)]
struct SnapshotRef<'a> {
    actor: &'a ActorId,
    counters: &'a Counters,
    watermark: &'a Watermark,
    facts: &'a PartitionFacts,
    held: &'a HeldEvents,
}

#[derive(Deserialize)]
struct Snapshot {
    actor: ActorId,
    counters: Counters,
    watermark: Watermark,
    facts: PartitionFacts,
    held: HeldEvents,
}

/// Version 1, from before held events: nothing was held.
#[derive(Deserialize)]
struct SnapshotV1 {
    actor: ActorId,
    counters: Counters,
    watermark: Watermark,
    facts: PartitionFacts,
}

impl PartitionFold {
    /// The format version [`PartitionFold::snapshot`] writes (see [`crate::state_codec`]).
    pub const SNAPSHOT_FORMAT_VERSION: u16 = FOLD_SNAPSHOT.version;

    /// Everything needed to resume: stored with the consumed offset in one transaction.
    /// Deterministic: the same events folded from scratch give the same bytes.
    pub fn snapshot(&self) -> Result<Vec<u8>, CodecError> {
        state_codec::encode(
            FOLD_SNAPSHOT,
            &SnapshotRef {
                actor: &self.actor,
                counters: &self.counters,
                watermark: &self.watermark,
                facts: &self.facts,
                held: &self.held,
            },
        )
    }

    /// Resumes from a [`PartitionFold::snapshot`]; the caller checks [`PartitionFold::actor`]
    /// is the partition it was assigned. Stats start again from zero.
    pub fn restore(bytes: &[u8]) -> Result<Self, CodecError> {
        let Snapshot {
            actor,
            counters,
            watermark,
            facts,
            held,
        } = match state_codec::decode(FOLD_SNAPSHOT, bytes) {
            Err(CodecError::UnsupportedVersion { found: 1, .. }) => {
                let old: SnapshotV1 = state_codec::decode(FOLD_SNAPSHOT_V1, bytes)?;
                Snapshot {
                    actor: old.actor,
                    counters: old.counters,
                    watermark: old.watermark,
                    facts: old.facts,
                    held: HeldEvents::default(),
                }
            }
            other => other?,
        };
        counters.check_owned_by(&actor)?;
        Ok(Self::resumed(actor, counters, watermark, facts, held))
    }

    /// A fold resumed from stored parts: stats from zero, nothing recorded or tracked.
    pub(crate) fn resumed(
        actor: ActorId,
        counters: Counters,
        watermark: Watermark,
        facts: PartitionFacts,
        held: HeldEvents,
    ) -> Self {
        Self {
            actor,
            counters,
            watermark,
            facts,
            held,
            stats: FoldStats::default(),
            recording: None,
            changed: None,
        }
    }
}
