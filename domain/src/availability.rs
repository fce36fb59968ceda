//! Which regions serve a model: the availability stream's state, decisions and evolution.

use serde::{Deserialize, Serialize};

use crate::command::AvailabilityCommand;
use crate::envelope::EventPayload;
use crate::error::DomainError;
use crate::ids::{ModelId, RegionId};
use crate::lifecycle::Lifecycle;
use crate::model::ensure_owner;

/// What the region's catalogue knows about a model, looked up before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueFacts {
    pub lifecycle: Lifecycle,
}

/// Whether one region serves one model, folded from `availability:<region>:<model>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityState {
    pub served: bool,
    pub version: u64,
}

/// Decides a serve/withdraw command of `region` for `model`; only `region` itself may.
pub fn decide_availability(
    state: &AvailabilityState,
    region: &RegionId,
    model: &ModelId,
    acting_region: &RegionId,
    facts: Option<CatalogueFacts>,
    command: AvailabilityCommand,
) -> Result<Vec<EventPayload>, DomainError> {
    ensure_owner(region, acting_region)?;
    match command {
        AvailabilityCommand::Serve => {
            let facts = facts.ok_or_else(|| DomainError::UnknownModel(model.clone()))?;
            if facts.lifecycle == Lifecycle::Retired {
                return Err(DomainError::Retired(model.clone()));
            }
            if state.served {
                return Err(DomainError::AlreadyServed {
                    region: region.clone(),
                    model: model.clone(),
                });
            }
            Ok(vec![EventPayload::ModelServed {
                region: region.clone(),
            }])
        }
        AvailabilityCommand::Withdraw(reason) => {
            if !state.served {
                return Err(DomainError::NotServed {
                    region: region.clone(),
                    model: model.clone(),
                });
            }
            Ok(vec![EventPayload::ModelWithdrawn {
                region: region.clone(),
                reason,
            }])
        }
    }
}

pub fn evolve_availability(
    mut state: AvailabilityState,
    event: &EventPayload,
) -> AvailabilityState {
    state.version += 1;
    match event {
        EventPayload::ModelServed { .. } => state.served = true,
        EventPayload::ModelWithdrawn { .. } => state.served = false,
        _ => {}
    }
    state
}
