//! Why a command is refused (`DomainError`) or an input rejected (`ValidationError`).

use crate::ids::{ModelId, RegionId};
use crate::lifecycle::{Lifecycle, OperationalStatus};

/// Input that can never be valid, whatever the state: rejected before any decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    pub field: &'static str,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// The model said no: a command that makes no sense in the current state or for this region.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("model {0} is not registered")]
    UnknownModel(ModelId),
    #[error("model {0} is already registered")]
    AlreadyRegistered(ModelId),
    #[error("cannot {command} a model that is {state}")]
    IllegalTransition {
        command: &'static str,
        state: Lifecycle,
    },
    #[error("status is already {0}")]
    StatusUnchanged(OperationalStatus),
    #[error("the update changes nothing")]
    NothingChanged,
    #[error("model {0} is retired")]
    Retired(ModelId),
    #[error("region {region} already serves model {model}")]
    AlreadyServed { region: RegionId, model: ModelId },
    #[error("region {region} does not serve model {model}")]
    NotServed { region: RegionId, model: ModelId },
    #[error("a command for model {command} was sent to the stream of model {stream}")]
    StreamMismatch { stream: ModelId, command: ModelId },
    #[error("only region {owner} may write this; this node is region {acting}")]
    NotOwner { owner: RegionId, acting: RegionId },
}
