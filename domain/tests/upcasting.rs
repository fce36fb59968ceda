//! Schema evolution: events stored at schema version 0 (plain-string names, no description,
//! no status) decode into today's shape and replay into the same state as today's events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use domain::{
    EventEnvelope, EventPayload, Lifecycle, LocalizedText, ModelState, OperationalStatus,
    evolve_model,
};
use serde_json::{Value, json};

/// An envelope as the first prototype stored it (schema version 0).
fn stored_v0(sequence: u64, event: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event_id": format!("0190b2a4-0000-7000-8000-{sequence:012}"),
        "schema_version": 0,
        "stream": "model:openai/gpt-4",
        "sequence": sequence,
        "position": sequence + 10,
        "model_id": "openai/gpt-4",
        "origin_region": "eu-west",
        "occurred_at": "2024-03-01T12:00:00Z",
        "correlation_id": "0190b2a4-0000-7000-8000-0000000000aa",
        "causation_id": null,
        "idempotency_key": null,
        "actor": "ops",
        "event": event,
    }))
    .unwrap()
}

fn old_history() -> Vec<Vec<u8>> {
    vec![
        stored_v0(
            1,
            json!({"type": "model_registered", "id": "openai/gpt-4", "provider": "openai",
                   "home_region": "eu-west", "name": "GPT-4"}),
        ),
        stored_v0(2, json!({"type": "model_activated"})),
        stored_v0(
            3,
            json!({"type": "model_metadata_updated", "name": "GPT-4 Turbo"}),
        ),
    ]
}

#[test]
fn a_v0_registration_decodes_into_todays_shape() {
    let envelope = EventEnvelope::decode(&old_history()[0]).unwrap();
    assert_eq!(envelope.schema_version, 0, "the recorded version is kept");
    match envelope.event {
        EventPayload::ModelRegistered {
            name,
            description,
            status,
            ..
        } => {
            assert_eq!(name, LocalizedText::english("GPT-4"));
            assert_eq!(description, None);
            assert_eq!(status, OperationalStatus::Operational);
        }
        other => panic!("decoded as {other:?}"),
    }
}

#[test]
fn an_old_history_replays_into_todays_state() {
    let replayed = old_history()
        .iter()
        .map(|bytes| EventEnvelope::decode(bytes).unwrap())
        .fold(ModelState::default(), |state, envelope| {
            evolve_model(state, &envelope.event)
        });
    let record = replayed.record.expect("registered");
    assert_eq!(replayed.version, 3);
    assert_eq!(record.lifecycle, Lifecycle::Active);
    assert_eq!(record.status, OperationalStatus::Operational);
    assert_eq!(record.name, LocalizedText::english("GPT-4 Turbo"));
    assert_eq!(record.description, None);
    assert_eq!(record.provider.as_str(), "openai");
}

#[test]
fn an_upcast_envelope_round_trips() {
    for bytes in old_history() {
        let decoded = EventEnvelope::decode(&bytes).unwrap();
        assert_eq!(EventEnvelope::decode(&decoded.encode()).unwrap(), decoded);
    }
}

#[test]
fn v0_rules_do_not_weaken_validation() {
    let too_long = stored_v0(
        1,
        json!({"type": "model_registered", "id": "openai/gpt-4", "provider": "openai",
               "home_region": "eu-west", "name": "x".repeat(201)}),
    );
    let blank = stored_v0(1, json!({"type": "model_metadata_updated", "name": "  "}));
    let unknown_field = stored_v0(
        1,
        json!({"type": "model_registered", "id": "openai/gpt-4", "provider": "openai",
               "home_region": "eu-west", "name": "GPT-4", "by": "someone"}),
    );
    for bytes in [too_long, blank, unknown_field] {
        assert!(
            EventEnvelope::decode(&bytes).is_err(),
            "{} was accepted",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn the_current_version_is_not_upcast() {
    // A version-1 registration without `status` is malformed: only version 0 may omit it.
    let mut json: Value = serde_json::from_slice(&old_history()[0]).unwrap();
    json["schema_version"] = json!(1);
    json["event"]["name"] = json!({"en": "GPT-4"});
    json["event"]["description"] = Value::Null;
    assert!(EventEnvelope::decode(&serde_json::to_vec(&json).unwrap()).is_err());
}
