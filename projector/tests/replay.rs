//! `Replay`: folds many actors from scratch; an event stored in an older schema folds into
//! today's counts.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use domain::{OperationalStatus, ProviderId, RegionId};
use projector::{ActorId, CountSnapshot, FoldOutcome, GlobalView, Replay};
use serde_json::json;

fn v0_event(model: &str, sequence: u64, event: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event_id": format!("0190b2a4-0000-7000-8000-{sequence:012}"),
        "schema_version": 0,
        "stream": format!("model:{model}"),
        "sequence": sequence,
        "position": sequence,
        "model_id": model,
        "origin_region": "eu-west",
        "occurred_at": "2024-03-01T12:00:00Z",
        "correlation_id": "0190b2a4-0000-7000-8000-0000000000aa",
        "causation_id": null,
        "idempotency_key": null,
        "actor": null,
        "event": event,
    }))
    .unwrap()
}

#[test]
fn a_v0_history_folds_into_todays_counts() {
    let actor = ActorId::new(RegionId::parse("eu-west").unwrap(), 0);
    let mut replay = Replay::new();
    let registered = v0_event(
        "openai/gpt-4",
        1,
        json!({"type": "model_registered", "id": "openai/gpt-4", "provider": "openai",
               "home_region": "eu-west", "name": "GPT-4"}),
    );
    let activated = v0_event("openai/gpt-4", 2, json!({"type": "model_activated"}));
    for (offset, bytes) in [registered, activated].iter().enumerate() {
        let outcome = replay.apply_bytes(&actor, offset as i64, bytes).unwrap();
        assert_eq!(outcome, FoldOutcome::Applied);
    }
    let totals = replay.totals();
    assert_eq!((totals.total, totals.active, totals.inactive), (1, 1, 0));
    assert_eq!(totals.by_status[&OperationalStatus::Operational], 1);
    assert_eq!(
        totals.by_provider[&ProviderId::parse("openai").unwrap()].active,
        1
    );
    assert_eq!(replay.events(), 2);
}

#[test]
fn replay_totals_are_the_merge_of_its_actor_states() {
    let eu = RegionId::parse("eu-west").unwrap();
    let mut replay = Replay::new();
    for (offset, (partition, model)) in [(0, "a/one"), (1, "b/two"), (1, "b/three")]
        .into_iter()
        .enumerate()
    {
        let provider = model.split('/').next().unwrap();
        let bytes = serde_json::to_vec(&json!({
            "event_id": "0190b2a4-0000-7000-8000-000000000001",
            "schema_version": 1, "stream": format!("model:{model}"), "sequence": 1,
            "position": 1, "model_id": model, "origin_region": "eu-west",
            "occurred_at": "2026-01-01T00:00:00Z",
            "correlation_id": "0190b2a4-0000-7000-8000-000000000002",
            "causation_id": null, "idempotency_key": null, "actor": null,
            "event": {"type": "model_registered", "id": model, "provider": provider,
                      "home_region": "eu-west", "name": {"en": model}, "description": null,
                      "status": "degraded"}
        }))
        .unwrap();
        let actor = ActorId::new(eu.clone(), partition);
        let outcome = replay.apply_bytes(&actor, offset as i64, &bytes).unwrap();
        assert_eq!(outcome, FoldOutcome::Applied);
    }
    let mut view = GlobalView::new();
    for fold in replay.folds() {
        view.observe(fold.state());
    }
    assert_eq!(replay.folds().count(), 2);
    assert_eq!(view.totals(), replay.totals());
    let expected: CountSnapshot = replay.totals();
    assert_eq!(expected.total, 3);
    assert_eq!(expected.by_status[&OperationalStatus::Degraded], 3);
}
