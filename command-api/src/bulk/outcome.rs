//! One result line of an import: the line's status and version, or its problem document.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::ApiError;
use crate::service::Accepted;

/// What became of one import line (lines are numbered from 1, blank lines included).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportOutcome {
    pub line: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The status the command's own route would have answered.
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// The stream's version after the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The region's log position of the command's last event (a consistency token's position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// Why the line was refused: the problem document its route would have answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub problem: Option<serde_json::Value>,
}

impl ImportOutcome {
    pub(crate) fn accepted(line: u64, key: Option<String>, accepted: &Accepted) -> Self {
        Self {
            line,
            idempotency_key: key,
            status: if accepted.created { 201 } else { 200 },
            model_id: Some(accepted.answer.model_id.clone()),
            version: Some(accepted.answer.version),
            position: accepted
                .answer
                .consistency_token
                .as_ref()
                .map(|t| t.position),
            problem: None,
        }
    }

    pub(crate) fn refused(line: u64, key: Option<String>, error: &ApiError) -> Self {
        Self {
            line,
            idempotency_key: key,
            status: error.status().as_u16(),
            model_id: None,
            version: None,
            position: None,
            problem: Some(error.problem().body()),
        }
    }

    /// The outcome as one NDJSON line.
    pub(crate) fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}
