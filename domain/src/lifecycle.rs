//! A model's lifecycle (inactive, active, retired) and its operational status.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ValidationError;

/// `registered → active ⇄ inactive → retired`; a registered model starts inactive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Inactive,
    Active,
    Retired,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 3] = [Lifecycle::Inactive, Lifecycle::Active, Lifecycle::Retired];

    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Inactive => "inactive",
            Lifecycle::Active => "active",
            Lifecycle::Retired => "retired",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| ValidationError::new("state", "must be inactive, active or retired"))
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Operational status from probes; independent of the lifecycle.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OperationalStatus {
    Operational,
    Degraded,
    Outage,
}

impl OperationalStatus {
    pub const ALL: [OperationalStatus; 3] = [
        OperationalStatus::Operational,
        OperationalStatus::Degraded,
        OperationalStatus::Outage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OperationalStatus::Operational => "operational",
            OperationalStatus::Degraded => "degraded",
            OperationalStatus::Outage => "outage",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                ValidationError::new("status", "must be operational, degraded or outage")
            })
    }
}

impl fmt::Display for OperationalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
