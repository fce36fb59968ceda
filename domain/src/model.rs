//! A model's stream: its state, the decisions on commands and the evolution by events.

use serde::{Deserialize, Serialize};

use crate::command::ModelCommand;
use crate::envelope::EventPayload;
use crate::error::DomainError;
use crate::ids::{ModelId, ProviderId, RegionId};
use crate::lifecycle::{Lifecycle, OperationalStatus};
use crate::text::LocalizedText;

/// Everything known about a registered model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub id: ModelId,
    pub provider: ProviderId,
    pub home_region: RegionId,
    pub name: LocalizedText,
    pub description: Option<LocalizedText>,
    pub lifecycle: Lifecycle,
    pub status: OperationalStatus,
}

/// A model's lifecycle stream folded: `None` until registered. `version` is the number of
/// events applied, i.e. the stream's last sequence number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelState {
    pub record: Option<ModelRecord>,
    pub version: u64,
}

/// Decides what `command` on model `id` means, from `acting_region`'s point of view.
pub fn decide_model(
    state: &ModelState,
    id: &ModelId,
    acting_region: &RegionId,
    command: &ModelCommand,
) -> Result<Vec<EventPayload>, DomainError> {
    let record = match (&state.record, command) {
        (None, ModelCommand::Register(register)) => {
            if register.id != *id {
                return Err(DomainError::StreamMismatch {
                    stream: id.clone(),
                    command: register.id.clone(),
                });
            }
            ensure_owner(&register.home_region, acting_region)?;
            return Ok(vec![EventPayload::ModelRegistered {
                id: register.id.clone(),
                provider: register.provider.clone(),
                home_region: register.home_region.clone(),
                name: register.name.clone(),
                description: register.description.clone(),
                status: OperationalStatus::Operational,
            }]);
        }
        (None, _) => return Err(DomainError::UnknownModel(id.clone())),
        (Some(record), _) => record,
    };
    ensure_owner(&record.home_region, acting_region)?;
    if let ModelCommand::Register(_) = command {
        return Err(DomainError::AlreadyRegistered(id.clone()));
    }
    if record.lifecycle == Lifecycle::Retired {
        return Err(DomainError::Retired(id.clone()));
    }
    let illegal = || DomainError::IllegalTransition {
        command: command.verb(),
        state: record.lifecycle,
    };
    let event = match command {
        ModelCommand::Register(_) => return Err(DomainError::AlreadyRegistered(id.clone())),
        ModelCommand::Activate if record.lifecycle == Lifecycle::Inactive => {
            EventPayload::ModelActivated
        }
        ModelCommand::Deactivate if record.lifecycle == Lifecycle::Active => {
            EventPayload::ModelDeactivated
        }
        ModelCommand::Retire if record.lifecycle == Lifecycle::Inactive => {
            EventPayload::ModelRetired
        }
        ModelCommand::Activate | ModelCommand::Deactivate | ModelCommand::Retire => {
            return Err(illegal());
        }
        ModelCommand::SetStatus(status) if *status == record.status => {
            return Err(DomainError::StatusUnchanged(*status));
        }
        ModelCommand::SetStatus(status) => EventPayload::ModelStatusChanged { status: *status },
        ModelCommand::UpdateMetadata(update) => {
            let name = update.name.clone().filter(|n| *n != record.name);
            let description = update
                .description
                .clone()
                .filter(|d| Some(d) != record.description.as_ref());
            if name.is_none() && description.is_none() {
                return Err(DomainError::NothingChanged);
            }
            EventPayload::ModelMetadataUpdated { name, description }
        }
    };
    Ok(vec![event])
}

/// Applies one event of the model's lifecycle stream. Events of other streams leave it as is
/// apart from the version, which counts every event applied.
pub fn evolve_model(mut state: ModelState, event: &EventPayload) -> ModelState {
    state.version += 1;
    match (event, state.record.as_mut()) {
        (
            EventPayload::ModelRegistered {
                id,
                provider,
                home_region,
                name,
                description,
                status,
            },
            _,
        ) => {
            state.record = Some(ModelRecord {
                id: id.clone(),
                provider: provider.clone(),
                home_region: home_region.clone(),
                name: name.clone(),
                description: description.clone(),
                lifecycle: Lifecycle::Inactive,
                status: *status,
            });
        }
        (EventPayload::ModelActivated, Some(record)) => record.lifecycle = Lifecycle::Active,
        (EventPayload::ModelDeactivated, Some(record)) => record.lifecycle = Lifecycle::Inactive,
        (EventPayload::ModelRetired, Some(record)) => record.lifecycle = Lifecycle::Retired,
        (EventPayload::ModelStatusChanged { status }, Some(record)) => record.status = *status,
        (EventPayload::ModelMetadataUpdated { name, description }, Some(record)) => {
            if let Some(name) = name {
                record.name = name.clone();
            }
            if let Some(description) = description {
                record.description = Some(description.clone());
            }
        }
        _ => {}
    }
    state
}

pub(crate) fn ensure_owner(owner: &RegionId, acting: &RegionId) -> Result<(), DomainError> {
    if owner == acting {
        Ok(())
    } else {
        Err(DomainError::NotOwner {
            owner: owner.clone(),
            acting: acting.clone(),
        })
    }
}
