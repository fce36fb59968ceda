use std::collections::BTreeMap;

use domain::{ConsistencyToken, EventEnvelope};
use serde::{Deserialize, Serialize};

/// The `type` URI of a problem document: relative, resolved against the API's own origin.
pub fn problem_type(code: &str) -> String {
    format!("/problems/{code}")
}

/// `POST /v1/models`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    pub id: String,
    pub provider: String,
    pub name: BTreeMap<String, String>,
    #[serde(default)]
    pub description: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub home_region: Option<String>,
}

/// `PUT /v1/models/{id}/status`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    pub status: String,
}

/// `PATCH /v1/models/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataBody {
    #[serde(default)]
    pub name: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub description: Option<BTreeMap<String, String>>,
}

/// What every successful command answers: the events it recorded and how to read them back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandAccepted {
    pub model_id: String,
    pub stream: String,
    /// The stream's version after the command; send it back as `If-Match: "<version>"`.
    pub version: u64,
    pub events: Vec<EventEnvelope>,
    /// Pass as `?after=` or `Consistency-Token` to read your own write.
    pub consistency_token: Option<ConsistencyToken>,
}
