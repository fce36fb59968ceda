//! `GET /v1/models/{id}/history`: every event of one model, from every region, in order.

use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use domain::{EventEnvelope, ModelId};
use event_store::event_log::{self, PageKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{Instrument, info_span, warn};
use uuid::Uuid;

use super::params::format_instant;
use crate::cursor;
use crate::problem::QueryError;
use crate::state::QueryState;

#[derive(Debug, Serialize)]
pub struct ModelHistory {
    pub model_id: String,
    pub events: Vec<HistoryEvent>,
    /// Asks for the page after this one (`?cursor=`); absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
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

/// Events a history page holds by default, and at most.
pub const DEFAULT_PAGE: i64 = 500;
pub const MAX_PAGE: i64 = 1000;

/// `?cursor=&limit=` of a model's history.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryPage {
    /// `next_cursor` of the page before; absent for the first page.
    #[param(required = false)]
    pub cursor: Option<String>,
    /// Events per page, 1 to 1000 (default 500).
    #[param(required = false)]
    pub limit: Option<i64>,
}

/// A page's cursor: the key of its last event.
fn encode_key(key: &PageKey) -> String {
    cursor::encode(&format!(
        "{}|{}|{}",
        key.occurred_at.timestamp_micros(),
        key.region,
        key.position
    ))
}

fn decode_key(raw: &str) -> Result<PageKey, QueryError> {
    let bad = || QueryError::invalid("cursor", "is not a cursor this API issued");
    let key = cursor::decode(raw)?;
    let mut parts = key.splitn(3, '|');
    let (Some(micros), Some(region), Some(position)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok(PageKey {
        occurred_at: micros
            .parse()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(bad)?,
        region: region.to_owned(),
        position: position.parse().map_err(|_| bad())?,
    })
}

/// Every event of model `id` across all regions (lifecycle and availability streams), ordered
/// by event time, then region and position, a page at a time: each page's `next_cursor`
/// (absent on the last) asks for the next.
#[utoipa::path(
    get, path = "/v1/models/{id}/history", tag = "history", operation_id = "model_history",
    params(("id" = ModelId, Path), HistoryPage),
    responses(
        (status = 200, description = "A page of the model's events, in order, with who, when \
            and which command (idempotency key, correlation id)", body = Object),
        crate::openapi::NotFound, crate::openapi::Unprocessable, crate::openapi::Unavailable,
    ),
)]
pub async fn model_history(
    state: &QueryState,
    id: &str,
    page: HistoryPage,
) -> Result<Response, QueryError> {
    let unknown = || QueryError::UnknownModel(id.to_owned());
    let model = ModelId::parse(id).map_err(|_| unknown())?;
    let limit = page.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(QueryError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    let after = page.cursor.as_deref().map(decode_key).transpose()?;
    let _slot = state.history.enter()?;
    let mut rows = event_log::model_page(&state.pool, &model, after.as_ref(), limit + 1)
        .instrument(info_span!("model_history", model = %model, limit))
        .await
        .map_err(|error| QueryError::log_unavailable(&error))?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    if rows.is_empty() && after.is_none() {
        return Err(unknown());
    }
    let next_cursor = more
        .then(|| rows.last())
        .flatten()
        .map(|last| encode_key(&last.key()));
    let events: Vec<HistoryEvent> = rows
        .iter()
        .filter_map(|row| match EventEnvelope::decode(row.envelope.as_bytes()) {
            Ok(envelope) => Some(HistoryEvent::from(envelope)),
            Err(error) => {
                warn!(%error, model = %model, "event log row not decodable; left out of history");
                None
            }
        })
        .collect();
    Ok(axum::Json(ModelHistory {
        model_id: model.to_string(),
        events,
        next_cursor,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_page_key_round_trips_and_garbage_is_refused() {
        let key = PageKey {
            occurred_at: DateTime::from_timestamp_micros(1_780_000_000_123_456).unwrap(),
            region: "eu-west".into(),
            position: 42,
        };
        assert_eq!(decode_key(&encode_key(&key)).unwrap(), key);
        for bad in ["x|eu-west|1", "1|eu-west", "1|eu-west|p"] {
            assert!(decode_key(&cursor::encode(bad)).is_err(), "{bad}");
        }
    }
}
