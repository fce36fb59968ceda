//! The write side's wire types: request bodies and the accepted-command answer.

use std::collections::BTreeMap;

use domain::{
    ConsistencyToken, EventEnvelope, LocalizedName, LocalizedText, ModelId, ProviderId, RegionId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/models`. Fields are plain text here and validated by the handler, so that each
/// failure names its field; the schema shows the rules they are validated against.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    #[schema(value_type = ModelId)]
    pub id: String,
    #[schema(value_type = ProviderId)]
    pub provider: String,
    #[schema(value_type = LocalizedName)]
    pub name: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(value_type = Option<LocalizedText>)]
    pub description: Option<BTreeMap<String, String>>,
    /// The region that owns the model's lifecycle; this node's region by default.
    #[serde(default)]
    #[schema(value_type = Option<RegionId>)]
    pub home_region: Option<String>,
}

/// `PUT /v1/models/{id}/status`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    #[schema(value_type = domain::OperationalStatus)]
    pub status: String,
}

/// `PATCH /v1/models/{id}`: at least one of the two.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct MetadataBody {
    #[serde(default)]
    #[schema(value_type = Option<LocalizedName>)]
    pub name: Option<BTreeMap<String, String>>,
    #[serde(default)]
    #[schema(value_type = Option<LocalizedText>)]
    pub description: Option<BTreeMap<String, String>>,
}

/// What every successful command answers: the events it recorded and how to read them back.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommandAccepted {
    #[schema(value_type = ModelId)]
    pub model_id: String,
    #[schema(value_type = domain::StreamId)]
    pub stream: String,
    /// The stream's version after the command; send it back as `If-Match: "<version>"`.
    pub version: u64,
    pub events: Vec<EventEnvelope>,
    /// Pass as `?after=` or `Consistency-Token` to read your own write.
    pub consistency_token: Option<ConsistencyToken>,
}
