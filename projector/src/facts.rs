//! What a partition fold remembers about the streams it has seen, to compute deltas.

use std::collections::BTreeMap;

use domain::{Lifecycle, ModelId, OperationalStatus, ProviderId, RegionId};
use serde::{Deserialize, Serialize};

/// A model whose lifecycle stream (`model:<id>`) is in this partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFacts {
    pub provider: ProviderId,
    pub lifecycle: Lifecycle,
    pub status: OperationalStatus,
    /// The last lifecycle-stream sequence applied.
    pub sequence: u64,
}

/// One region's availability stream (`availability:<region>:<model>`) for one model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityFacts {
    pub served: bool,
    /// The last availability-stream sequence applied (0: none yet).
    pub sequence: u64,
}

/// Per-stream facts of one partition. Lifecycle streams are keyed by model id, availability
/// streams by (region, model id); both maps are `BTreeMap`s so the encoding is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionFacts {
    pub models: BTreeMap<ModelId, ModelFacts>,
    pub availability: BTreeMap<(RegionId, ModelId), AvailabilityFacts>,
}
