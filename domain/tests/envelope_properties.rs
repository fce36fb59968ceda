//! Property (b): `EventEnvelope::encode` / `decode` round-trip every `EventPayload` variant with
//! arbitrary valid field values, and decoding refuses what this build cannot understand.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::strategies::{event_envelope_at, event_payload};
use domain::{CURRENT_SCHEMA_VERSION, DecodeError, EventEnvelope, EventPayload};
use proptest::prelude::*;
use serde_json::Value;

const CASES: u32 = 10_000;

fn any_supported_version() -> impl Strategy<Value = u16> {
    0..=CURRENT_SCHEMA_VERSION
}

/// Any version this build does not understand, the very next one included.
fn newer_version() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(CURRENT_SCHEMA_VERSION + 1),
        (CURRENT_SCHEMA_VERSION + 1)..=u16::MAX,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn envelopes_round_trip(envelope in event_envelope_at(any_supported_version())) {
        let bytes = envelope.encode();
        let decoded = EventEnvelope::decode(&bytes)
            .map_err(|error| TestCaseError::fail(format!("{error}: {}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(&decoded, &envelope);
        // Encoding is deterministic: the decoded envelope encodes to the very same bytes.
        prop_assert_eq!(decoded.encode(), bytes);
    }

    #[test]
    fn the_wire_form_is_self_describing(envelope in event_envelope_at(Just(CURRENT_SCHEMA_VERSION))) {
        let json: Value = serde_json::from_slice(&envelope.encode())
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(&json["event"]["type"], &Value::from(envelope.event.type_name()));
        prop_assert_eq!(&json["stream"], &Value::from(envelope.stream.to_string()));
        prop_assert_eq!(&json["model_id"], &Value::from(envelope.model_id.as_str()));
        prop_assert_eq!(&json["schema_version"], &Value::from(CURRENT_SCHEMA_VERSION));
    }

    #[test]
    fn newer_schema_versions_are_refused(
        envelope in event_envelope_at(newer_version())
    ) {
        let version = envelope.schema_version;
        match EventEnvelope::decode(&envelope.encode()) {
            Err(DecodeError::UnsupportedVersion(refused)) => prop_assert_eq!(refused, version),
            other => prop_assert!(false, "version {} decoded as {:?}", version, other),
        }
    }

    #[test]
    fn payloads_round_trip_on_their_own(payload in event_payload()) {
        let json = serde_json::to_string(&payload)
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        let decoded: EventPayload = serde_json::from_str(&json)
            .map_err(|error| TestCaseError::fail(format!("{error}: {json}")))?;
        prop_assert_eq!(decoded, payload);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = EventEnvelope::decode(&bytes);
    }
}

// --- decoding rejects what it must not trust -------------------------------------------------

fn sample_envelope_json() -> Value {
    serde_json::json!({
        "event_id": "0190b2a4-0000-7000-8000-000000000001",
        "schema_version": 1,
        "stream": "model:openai/gpt-5",
        "sequence": 1,
        "position": 7,
        "model_id": "openai/gpt-5",
        "origin_region": "eu-west",
        "occurred_at": "2025-01-02T03:04:05.123456789Z",
        "correlation_id": "0190b2a4-0000-7000-8000-000000000002",
        "causation_id": null,
        "idempotency_key": "k-1",
        "actor": "ops",
        "event": {
            "type": "model_registered",
            "id": "openai/gpt-5",
            "provider": "openai",
            "home_region": "eu-west",
            "name": {"en": "GPT-5", "ko": "지피티-5"},
            "description": null,
            "status": "operational"
        }
    })
}

fn decode_json(json: &Value) -> Result<EventEnvelope, DecodeError> {
    EventEnvelope::decode(&serde_json::to_vec(json).unwrap())
}

#[test]
fn a_hand_written_envelope_decodes() {
    let envelope = decode_json(&sample_envelope_json()).unwrap();
    assert_eq!(envelope.event.type_name(), "model_registered");
    assert_eq!(envelope.stream.to_string(), "model:openai/gpt-5");
    assert_eq!(envelope.occurred_at.timestamp_subsec_nanos(), 123_456_789);
}

#[test]
fn decode_rejects_invalid_ids_anywhere() {
    for (pointer, bad) in [
        ("/model_id", "OpenAI/GPT-5"),
        ("/origin_region", "eu/west"),
        ("/stream", "model:Bad Id"),
        ("/stream", "models:openai/gpt-5"),
        ("/stream", "availability:eu-west"),
        ("/event/provider", "open ai"),
        ("/event/home_region", ""),
    ] {
        let mut json = sample_envelope_json();
        *json.pointer_mut(pointer).unwrap() = Value::from(bad);
        assert!(
            matches!(decode_json(&json), Err(DecodeError::Malformed(_))),
            "{pointer} = {bad:?} was accepted"
        );
    }
}

#[test]
fn decode_rejects_unknown_fields_and_types() {
    let mut extra_top = sample_envelope_json();
    extra_top["extra"] = Value::from(1);
    let mut extra_event = sample_envelope_json();
    extra_event["event"]["extra"] = Value::from(1);
    let mut unknown_type = sample_envelope_json();
    unknown_type["event"] = serde_json::json!({"type": "model_exploded"});
    let mut bad_status = sample_envelope_json();
    bad_status["event"]["status"] = Value::from("on_fire");
    for json in [extra_top, extra_event, unknown_type, bad_status] {
        assert!(
            matches!(decode_json(&json), Err(DecodeError::Malformed(_))),
            "{json} was accepted"
        );
    }
}

#[test]
fn decode_rejects_a_missing_or_negative_schema_version() {
    let mut missing = sample_envelope_json();
    missing.as_object_mut().unwrap().remove("schema_version");
    let mut negative = sample_envelope_json();
    negative["schema_version"] = Value::from(-1);
    for json in [missing, negative] {
        assert!(matches!(decode_json(&json), Err(DecodeError::Malformed(_))));
    }
}

#[test]
fn decode_rejects_a_newer_version_before_looking_at_the_rest() {
    // A future event shape this build cannot parse must still be reported as "too new".
    let json = serde_json::json!({"schema_version": CURRENT_SCHEMA_VERSION + 1, "event": {"type": "from_the_future"}});
    assert!(matches!(
        decode_json(&json),
        Err(DecodeError::UnsupportedVersion(v)) if v == CURRENT_SCHEMA_VERSION + 1
    ));
}

/// `LocalizedText` requires an `en` entry, non-blank texts, valid locale tags and length limits
/// (`LocalizedText::parse`), but its `Deserialize` is `#[serde(transparent)]` over the map, so a
/// decoded event can carry a name that `parse` would refuse.
#[test]
fn decode_rejects_a_name_that_localized_text_parse_refuses() {
    for bad_name in [
        serde_json::json!({}),
        serde_json::json!({"ko": "지피티-5"}),
        serde_json::json!({"en": "   "}),
        serde_json::json!({"en": "GPT-5", "NOT A TAG": "x"}),
        Value::from_iter([("en".to_owned(), Value::from("x".repeat(201)))]),
    ] {
        let mut json = sample_envelope_json();
        json["event"]["name"] = bad_name.clone();
        assert!(
            decode_json(&json).is_err(),
            "an event named {bad_name} was accepted"
        );
    }
}
