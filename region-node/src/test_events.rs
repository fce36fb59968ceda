//! Events for the crate's unit tests.

#![allow(clippy::unwrap_used)]

use chrono::Utc;
use domain::{
    EventEnvelope, EventPayload, LocalizedText, ModelId, OperationalStatus, ProviderId, RegionId,
    StreamId,
};

/// The registration of `model` by `provider` in `region`, the first event of its stream, at
/// region log `position`.
pub(crate) fn registration(
    region: &RegionId,
    model: &str,
    provider: &str,
    position: u64,
) -> EventEnvelope {
    let id = ModelId::parse(model).unwrap();
    EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        schema_version: domain::CURRENT_SCHEMA_VERSION,
        stream: StreamId::Model(id.clone()),
        sequence: 1,
        position,
        model_id: id.clone(),
        origin_region: region.clone(),
        occurred_at: Utc::now(),
        correlation_id: uuid::Uuid::now_v7(),
        causation_id: None,
        idempotency_key: None,
        actor: None,
        event: EventPayload::ModelRegistered {
            id,
            provider: ProviderId::parse(provider).unwrap(),
            home_region: region.clone(),
            name: LocalizedText::english(model),
            description: None,
            status: OperationalStatus::Operational,
        },
    }
}
