//! The commands a client can send about a model or its availability in a region.

use crate::envelope::WithdrawReason;
use crate::ids::{ModelId, ProviderId, RegionId};
use crate::lifecycle::OperationalStatus;
use crate::text::LocalizedText;

/// Register a new model; only its home region may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterModel {
    pub id: ModelId,
    pub provider: ProviderId,
    pub name: LocalizedText,
    pub description: Option<LocalizedText>,
    pub home_region: RegionId,
}

/// Replace the localized name and/or description; at least one must be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateMetadata {
    pub name: Option<LocalizedText>,
    pub description: Option<LocalizedText>,
}

/// Commands on a model's lifecycle stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelCommand {
    Register(RegisterModel),
    Activate,
    Deactivate,
    SetStatus(OperationalStatus),
    UpdateMetadata(UpdateMetadata),
    Retire,
}

impl ModelCommand {
    /// The verb used in error messages.
    pub fn verb(&self) -> &'static str {
        match self {
            ModelCommand::Register(_) => "register",
            ModelCommand::Activate => "activate",
            ModelCommand::Deactivate => "deactivate",
            ModelCommand::SetStatus(_) => "change the status of",
            ModelCommand::UpdateMetadata(_) => "update",
            ModelCommand::Retire => "retire",
        }
    }
}

/// Commands on one region's availability stream for one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvailabilityCommand {
    Serve,
    Withdraw(WithdrawReason),
}
