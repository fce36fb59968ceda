//! Versioned events and the envelope that carries one through the store, Kafka and history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ids::{ModelId, ProviderId, RegionId};
use crate::lifecycle::OperationalStatus;
use crate::stream::StreamId;
use crate::text::LocalizedText;

/// The schema version this build writes. Readers accept this and every older version: older
/// shapes are upcast on decode (see `upcast.rs` for what each version looked like).
pub const CURRENT_SCHEMA_VERSION: u16 = 1;

/// What happened. Events are facts: past tense, immutable, minimal.
///
/// Decoded by hand (`payload_de.rs`), with the rules the attributes below state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventPayload {
    ModelRegistered {
        id: ModelId,
        provider: ProviderId,
        home_region: RegionId,
        #[serde(deserialize_with = "crate::text::limits::name")]
        name: LocalizedText,
        description: Option<LocalizedText>,
        status: OperationalStatus,
    },
    ModelActivated,
    ModelDeactivated,
    ModelStatusChanged {
        status: OperationalStatus,
    },
    ModelMetadataUpdated {
        #[serde(default, deserialize_with = "crate::text::limits::optional_name")]
        name: Option<LocalizedText>,
        description: Option<LocalizedText>,
    },
    ModelRetired,
    ModelServed {
        region: RegionId,
    },
    ModelWithdrawn {
        region: RegionId,
        reason: WithdrawReason,
    },
}

impl EventPayload {
    pub fn type_name(&self) -> &'static str {
        match self {
            EventPayload::ModelRegistered { .. } => "model_registered",
            EventPayload::ModelActivated => "model_activated",
            EventPayload::ModelDeactivated => "model_deactivated",
            EventPayload::ModelStatusChanged { .. } => "model_status_changed",
            EventPayload::ModelMetadataUpdated { .. } => "model_metadata_updated",
            EventPayload::ModelRetired => "model_retired",
            EventPayload::ModelServed { .. } => "model_served",
            EventPayload::ModelWithdrawn { .. } => "model_withdrawn",
        }
    }
}

/// Why a region stopped serving a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawReason {
    /// The region's operator withdrew it.
    Manual,
    /// The model was retired by its home region.
    ModelRetired,
}

/// A recorded event with everything a consumer or an auditor needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventEnvelope {
    pub event_id: Uuid,
    pub schema_version: u16,
    #[serde(with = "stream_text")]
    pub stream: StreamId,
    /// 1-based position within `stream`.
    pub sequence: u64,
    /// Position in the origin region's event store (its log order).
    pub position: u64,
    pub model_id: ModelId,
    pub origin_region: RegionId,
    #[serde(deserialize_with = "timestamp::deserialize")]
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    /// Who asked for it: the token's name, never the token.
    pub actor: Option<String>,
    pub event: EventPayload,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed event: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error(
        "event schema version {0} is newer than this build understands ({CURRENT_SCHEMA_VERSION})"
    )]
    UnsupportedVersion(u16),
}

impl EventEnvelope {
    /// The wire form on Kafka and in the outbox: JSON, self-describing and easy to audit.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        // Nearly every payload is of today's version: one parse. Anything else (an older or
        // newer version, or bytes that do not decode) takes the careful path below, which
        // gives exactly the answer it always gave.
        // UTF-8 is checked once for the whole payload, not string by string.
        if let Ok(text) = std::str::from_utf8(bytes)
            && let Ok(envelope) = serde_json::from_str::<Self>(text)
            && envelope.schema_version == CURRENT_SCHEMA_VERSION
        {
            return Ok(envelope);
        }
        Self::decode_versioned(bytes)
    }

    /// Reads the schema version first: a newer one is refused before anything else is looked
    /// at, an older one is upcast to today's shape before the typed decode.
    fn decode_versioned(bytes: &[u8]) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            schema_version: u16,
        }
        let VersionOnly { schema_version } = serde_json::from_slice(bytes)?;
        if schema_version > CURRENT_SCHEMA_VERSION {
            return Err(DecodeError::UnsupportedVersion(schema_version));
        }
        if schema_version == CURRENT_SCHEMA_VERSION {
            return Ok(serde_json::from_slice(bytes)?);
        }
        // An older shape: rewrite it to today's before the typed decode (see `upcast`).
        let mut json: serde_json::Value = serde_json::from_slice(bytes)?;
        crate::upcast::to_current(schema_version, &mut json);
        Ok(serde_json::from_value(json)?)
    }
}

mod timestamp {
    use std::fmt;

    use chrono::{DateTime, Utc};
    use serde::Deserializer;
    use serde::de::{Error, Visitor};

    /// RFC 3339 (what our encoder writes) by chrono's dedicated parser; anything else by the
    /// general one chrono's own decoder uses, so what was accepted still is.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        struct Timestamp;
        impl Visitor<'_> for Timestamp {
            type Value = DateTime<Utc>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 date and time")
            }
            fn visit_str<E: Error>(self, raw: &str) -> Result<DateTime<Utc>, E> {
                match DateTime::parse_from_rfc3339(raw) {
                    Ok(at) => Ok(at.with_timezone(&Utc)),
                    Err(_) => raw.parse::<DateTime<Utc>>().map_err(E::custom),
                }
            }
        }
        d.deserialize_str(Timestamp)
    }
}

mod stream_text {
    use std::fmt;

    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};

    use crate::stream::StreamId;

    pub fn serialize<S: Serializer>(stream: &StreamId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(stream)
    }

    /// Parses the text where it lies: no copy of it is made first.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StreamId, D::Error> {
        struct StreamText;
        impl Visitor<'_> for StreamText {
            type Value = StreamId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a stream id")
            }
            fn visit_str<E: Error>(self, raw: &str) -> Result<StreamId, E> {
                StreamId::parse(raw).map_err(E::custom)
            }
        }
        d.deserialize_str(StreamText)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use serde_json::{Value, json};

    use super::*;

    fn a_current_envelope() -> Value {
        json!({
            "event_id": "01a24581-ac8d-76c2-9959-88f27bb99aef",
            "schema_version": CURRENT_SCHEMA_VERSION,
            "stream": "model:acme/m",
            "sequence": 1,
            "position": 7,
            "model_id": "acme/m",
            "origin_region": "eu-west",
            "occurred_at": "2026-12-05T09:20:55.949208Z",
            "correlation_id": "01a24581-ac52-72cb-972d-5c98910bd59f",
            "causation_id": null,
            "idempotency_key": null,
            "actor": "admin",
            "event": {"type": "model_registered", "id": "acme/m", "provider": "acme",
                      "home_region": "eu-west", "name": {"en": "M"}, "description": null,
                      "status": "operational"}
        })
    }

    /// The one-parse path answers exactly what the versioned path answers, for today's
    /// payloads, older and newer versions, and broken bytes alike.
    #[test]
    fn one_parse_decodes_as_the_versioned_path() {
        let current = a_current_envelope();
        let mut older = current.clone();
        older["schema_version"] = json!(0);
        older["event"]["name"] = json!("M");
        let mut newer = current.clone();
        newer["schema_version"] = json!(CURRENT_SCHEMA_VERSION + 1);
        let mut wrong_type = current.clone();
        wrong_type["sequence"] = json!("one");
        let mut unknown_field = current.clone();
        unknown_field["extra"] = json!(true);
        let mut payloads: Vec<Vec<u8>> = [current, older, newer, wrong_type, unknown_field]
            .iter()
            .map(|v| serde_json::to_vec(v).unwrap())
            .collect();
        let whole = payloads[0].clone();
        payloads.push(whole[..whole.len() / 2].to_vec());
        payloads.push(b"not json".to_vec());
        payloads.push(Vec::new());
        for bytes in payloads {
            let fast = EventEnvelope::decode(&bytes).map_err(|e| e.to_string());
            let careful = EventEnvelope::decode_versioned(&bytes).map_err(|e| e.to_string());
            assert_eq!(fast, careful, "{}", String::from_utf8_lossy(&bytes));
        }
        assert!(EventEnvelope::decode(&serde_json::to_vec(&a_current_envelope()).unwrap()).is_ok());
    }
}
