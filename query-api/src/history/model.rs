//! `GET /v1/models/{id}/history`: every event of one model, from every region, in order.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::{EventEnvelope, ModelId};
use serde::Serialize;
use serde_json::Value;
use tracing::{Instrument, info_span, warn};
use uuid::Uuid;

use super::params::format_instant;
use super::problem::{problem, unavailable};
use crate::state::QueryState;

#[derive(Debug, Serialize)]
pub struct ModelHistory {
    pub model_id: String,
    pub events: Vec<HistoryEvent>,
}

/// One event and everything an auditor asks about it: who, when, which command.
#[derive(Debug, Serialize)]
pub struct HistoryEvent {
    pub event_id: Uuid,
    /// The region whose node recorded it, and its position in that region's log.
    pub region: String,
    pub position: u64,
    pub stream: String,
    pub sequence: u64,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub occurred_at: String,
    /// The schema the event was written in (older ones are shown upcast to today's shape).
    pub schema_version: u16,
    /// The event's fields (without `type`).
    pub payload: Value,
    /// The token name that issued the command; `null` for the node's own events.
    pub actor: Option<String>,
    pub idempotency_key: Option<String>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
}

impl From<EventEnvelope> for HistoryEvent {
    fn from(envelope: EventEnvelope) -> Self {
        let mut payload = serde_json::to_value(&envelope.event).unwrap_or(Value::Null);
        if let Some(fields) = payload.as_object_mut() {
            fields.remove("type");
        }
        Self {
            event_id: envelope.event_id,
            region: envelope.origin_region.to_string(),
            position: envelope.position,
            stream: envelope.stream.to_string(),
            sequence: envelope.sequence,
            event_type: envelope.event.type_name(),
            occurred_at: format_instant(envelope.occurred_at),
            schema_version: envelope.schema_version,
            payload,
            actor: envelope.actor,
            idempotency_key: envelope.idempotency_key,
            correlation_id: envelope.correlation_id,
            causation_id: envelope.causation_id,
        }
    }
}

/// Every event of model `id` across all regions (lifecycle and availability streams), ordered
/// by event time, then region and position.
#[utoipa::path(
    get, path = "/v1/models/{id}/history", tag = "history", operation_id = "model_history",
    params(("id" = ModelId, Path)),
    responses(
        (status = 200, description = "Every event of the model, in order, with who, when and \
            which command (idempotency key, correlation id)", body = Object),
        crate::openapi::NotFound, crate::openapi::Unavailable,
    ),
)]
pub async fn model_history(State(state): State<QueryState>, Path(id): Path<String>) -> Response {
    let unknown = || {
        problem(
            StatusCode::NOT_FOUND,
            "unknown-model",
            format!("model {id:?} has no recorded events"),
        )
    };
    let Ok(model) = ModelId::parse(&id) else {
        return unknown();
    };
    let rows: Result<Vec<(String,)>, sqlx::Error> = sqlx::query_as(
        "SELECT envelope::text FROM event_log WHERE model_id = $1
          ORDER BY occurred_at, region, position",
    )
    .bind(model.as_str())
    .fetch_all(&state.pool)
    .instrument(info_span!("model_history", model = %model))
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(error) => return unavailable(&error),
    };
    let events: Vec<HistoryEvent> = rows
        .into_iter()
        .filter_map(|(text,)| match EventEnvelope::decode(text.as_bytes()) {
            Ok(envelope) => Some(HistoryEvent::from(envelope)),
            Err(error) => {
                warn!(%error, model = %model, "event log row not decodable; left out of history");
                None
            }
        })
        .collect();
    if events.is_empty() {
        return unknown();
    }
    axum::Json(ModelHistory {
        model_id: model.to_string(),
        events,
    })
    .into_response()
}
