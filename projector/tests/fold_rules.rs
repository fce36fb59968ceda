//! The counting rules and the fold's outcomes, event by event.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use chrono::DateTime;
use common::{actor, model, provider, region};
use domain::{
    CURRENT_SCHEMA_VERSION, EventEnvelope, EventPayload, LocalizedText, OperationalStatus,
    StreamId, WithdrawReason,
};
use projector::{
    CountSnapshot, FoldError, FoldOutcome, GlobalView, MetricKey, PartitionFold, ProviderCounts,
    RegionCounts, SkipReason,
};
use uuid::Uuid;

const HOME: &str = "eu-west";
const GPT: &str = "openai/gpt-5";

fn envelope(origin: &str, stream: StreamId, sequence: u64, event: EventPayload) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::from_u128(u128::from(sequence)),
        schema_version: CURRENT_SCHEMA_VERSION,
        model_id: stream.model_id().clone(),
        stream,
        sequence,
        position: sequence * 10,
        origin_region: region(origin),
        occurred_at: DateTime::from_timestamp(1_700_000_000 + sequence as i64, 0).unwrap(),
        correlation_id: Uuid::nil(),
        causation_id: None,
        idempotency_key: None,
        actor: Some("admin".to_owned()),
        event,
    }
}

fn lifecycle(sequence: u64, event: EventPayload) -> EventEnvelope {
    envelope(HOME, StreamId::Model(model(GPT)), sequence, event)
}

fn availability(serving: &str, sequence: u64, serve: bool) -> EventEnvelope {
    let stream = StreamId::Availability {
        region: region(serving),
        model: model(GPT),
    };
    let event = if serve {
        EventPayload::ModelServed {
            region: region(serving),
        }
    } else {
        EventPayload::ModelWithdrawn {
            region: region(serving),
            reason: WithdrawReason::Manual,
        }
    };
    envelope(serving, stream, sequence, event)
}

fn registered() -> EventPayload {
    EventPayload::ModelRegistered {
        id: model(GPT),
        provider: provider("openai"),
        home_region: region(HOME),
        name: LocalizedText::english("GPT-5"),
        description: None,
        status: OperationalStatus::Operational,
    }
}

fn fold() -> PartitionFold {
    PartitionFold::new(actor(HOME, 0))
}

/// Applies events at consecutive offsets, asserting each is applied.
fn applied(events: &[EventEnvelope]) -> PartitionFold {
    let mut fold = fold();
    for (offset, event) in events.iter().enumerate() {
        assert_eq!(
            fold.apply(offset as i64, event),
            FoldOutcome::Applied,
            "{event:?}"
        );
    }
    fold
}

fn counts(fold: &PartitionFold) -> CountSnapshot {
    let mut view = GlobalView::new();
    view.observe(fold.state());
    view.totals()
}

#[test]
fn registration_counts_a_new_inactive_model() {
    let fold = applied(&[lifecycle(1, registered())]);
    let c = counts(&fold);
    assert_eq!((c.total, c.active, c.inactive, c.retired), (1, 0, 1, 0));
    assert_eq!(c.by_status[&OperationalStatus::Operational], 1);
    assert_eq!(c.by_status[&OperationalStatus::Outage], 0);
    assert_eq!(
        c.by_provider[&provider("openai")],
        ProviderCounts {
            total: 1,
            active: 0
        }
    );
}

#[test]
fn activation_and_deactivation_move_between_active_and_inactive() {
    let fold = applied(&[
        lifecycle(1, registered()),
        lifecycle(2, EventPayload::ModelActivated),
    ]);
    let c = counts(&fold);
    assert_eq!((c.total, c.active, c.inactive), (1, 1, 0));
    assert_eq!(c.by_provider[&provider("openai")].active, 1);

    let fold = applied(&[
        lifecycle(1, registered()),
        lifecycle(2, EventPayload::ModelActivated),
        lifecycle(3, EventPayload::ModelDeactivated),
    ]);
    let c = counts(&fold);
    assert_eq!((c.total, c.active, c.inactive), (1, 0, 1));
    assert_eq!(c.by_provider[&provider("openai")].active, 0);
}

#[test]
fn status_and_metadata() {
    let fold = applied(&[
        lifecycle(1, registered()),
        lifecycle(
            2,
            EventPayload::ModelStatusChanged {
                status: OperationalStatus::Outage,
            },
        ),
        lifecycle(
            3,
            EventPayload::ModelMetadataUpdated {
                name: Some(LocalizedText::english("GPT five")),
                description: None,
            },
        ),
    ]);
    let c = counts(&fold);
    assert_eq!(c.by_status[&OperationalStatus::Operational], 0);
    assert_eq!(c.by_status[&OperationalStatus::Outage], 1);
    assert_eq!(c.total, 1);
}

#[test]
fn retirement_leaves_total_and_status_counts() {
    let fold = applied(&[
        lifecycle(1, registered()),
        lifecycle(
            2,
            EventPayload::ModelStatusChanged {
                status: OperationalStatus::Degraded,
            },
        ),
        lifecycle(3, EventPayload::ModelRetired),
    ]);
    let c = counts(&fold);
    assert_eq!((c.total, c.active, c.inactive, c.retired), (0, 0, 0, 1));
    assert!(c.by_status.values().all(|n| *n == 0));
    assert!(c.by_provider.is_empty(), "an all-zero provider is left out");
    assert_eq!(fold.counters().value(&MetricKey::Retired), 1);
}

#[test]
fn retiring_an_active_model_is_skipped() {
    let mut fold = applied(&[
        lifecycle(1, registered()),
        lifecycle(2, EventPayload::ModelActivated),
    ]);
    let before = fold.snapshot().unwrap();
    let outcome = fold.apply(2, &lifecycle(3, EventPayload::ModelRetired));
    assert!(matches!(
        outcome,
        FoldOutcome::Skipped(SkipReason::IllegalTransition {
            event: "model_retired",
            ..
        })
    ));
    assert_eq!(fold.stats().skipped, 1);
    // Only the watermark moved.
    let mut expected = PartitionFold::restore(&before).unwrap();
    assert_eq!(expected.counters(), fold.counters());
    assert_eq!(expected.facts(), fold.facts());
    assert_eq!(fold.watermark().offset, Some(2));
    expected.apply(2, &lifecycle(3, EventPayload::ModelRetired));
    assert_eq!(expected.snapshot().unwrap(), fold.snapshot().unwrap());
}

#[test]
fn events_for_unknown_models_are_skipped_and_early_ones_held_without_panicking() {
    let mut fold = fold();
    assert_eq!(
        fold.apply(0, &lifecycle(1, EventPayload::ModelActivated)),
        FoldOutcome::Skipped(SkipReason::UnknownModel {
            event: "model_activated"
        })
    );
    assert_eq!(
        fold.apply(1, &lifecycle(3, registered())),
        FoldOutcome::Held {
            expected: 1,
            found: 3
        }
    );
    assert_eq!(
        fold.apply(2, &lifecycle(1, registered())),
        FoldOutcome::Applied
    );
    assert_eq!(
        fold.apply(3, &lifecycle(3, EventPayload::ModelActivated)),
        FoldOutcome::Held {
            expected: 2,
            found: 3
        }
    );
    assert!(matches!(
        fold.apply(4, &lifecycle(0, EventPayload::ModelActivated)),
        FoldOutcome::Skipped(SkipReason::Inconsistent(_))
    ));
    assert_eq!(fold.stats().skipped, 2);
    assert_eq!(fold.stats().held, 2);
    assert_eq!(fold.stats().applied, 1);
    assert_eq!(
        fold.held().len(),
        1,
        "the later sequence 3 replaced the earlier one"
    );
}

#[test]
fn redelivery_is_a_duplicate() {
    let mut fold = applied(&[
        lifecycle(1, registered()),
        lifecycle(2, EventPayload::ModelActivated),
    ]);
    let before = fold.snapshot().unwrap();
    assert_eq!(
        fold.apply(0, &lifecycle(1, registered())),
        FoldOutcome::Duplicate {
            sequence: 1,
            last_applied: 2
        }
    );
    assert_eq!(fold.snapshot().unwrap(), before);
    assert_eq!(fold.stats().duplicates, 1);
}

#[test]
fn events_of_another_region_are_not_counted_here() {
    let mut fold = fold();
    let foreign = envelope("us-east", StreamId::Model(model(GPT)), 1, registered());
    assert!(matches!(
        fold.apply(0, &foreign),
        FoldOutcome::Skipped(SkipReason::ForeignOrigin { .. })
    ));
    assert!(fold.counters().is_empty());
}

#[test]
fn contradictory_envelopes_are_skipped() {
    let mut fold = fold();
    let mut wrong_model = lifecycle(1, registered());
    wrong_model.model_id = model("meta/llama");
    assert!(matches!(
        fold.apply(0, &wrong_model),
        FoldOutcome::Skipped(SkipReason::Inconsistent(_))
    ));
    let served_on_lifecycle = lifecycle(
        1,
        EventPayload::ModelServed {
            region: region(HOME),
        },
    );
    assert!(matches!(
        fold.apply(1, &served_on_lifecycle),
        FoldOutcome::Skipped(SkipReason::Inconsistent(_))
    ));
    let mut other_region = availability(HOME, 1, true);
    other_region.event = EventPayload::ModelServed {
        region: region("us-east"),
    };
    assert!(matches!(
        fold.apply(2, &other_region),
        FoldOutcome::Skipped(SkipReason::Inconsistent(_))
    ));
    let registered_elsewhere = lifecycle(
        1,
        EventPayload::ModelRegistered {
            id: model(GPT),
            provider: provider("openai"),
            home_region: region("us-east"),
            name: LocalizedText::english("GPT-5"),
            description: None,
            status: OperationalStatus::Operational,
        },
    );
    assert!(matches!(
        fold.apply(3, &registered_elsewhere),
        FoldOutcome::Skipped(SkipReason::Inconsistent(_))
    ));
    assert!(fold.counters().is_empty());
}

#[test]
fn availability_needs_no_lifecycle_facts_here() {
    // The model's home is another region: its availability in this region is still counted.
    let mut fold = fold();
    assert_eq!(
        fold.apply(0, &availability(HOME, 1, true)),
        FoldOutcome::Applied
    );
    assert_eq!(
        fold.apply(1, &availability(HOME, 2, true)),
        FoldOutcome::Skipped(SkipReason::IllegalAvailability {
            event: "model_served",
            served: true
        })
    );
    let c = counts(&fold);
    assert_eq!(c.regions[&region(HOME)], RegionCounts { available: 1 });
    assert_eq!(c.total, 0);
    assert_eq!(
        fold.apply(2, &availability(HOME, 2, false)),
        FoldOutcome::Applied
    );
    assert!(counts(&fold).regions.is_empty());
    let stream = StreamId::Availability {
        region: region(HOME),
        model: model(GPT),
    };
    assert_eq!(fold.stream_sequence(&stream), 2);
}

#[test]
fn raw_payloads_decode_skip_or_refuse() {
    let mut fold = fold();
    let bytes = lifecycle(1, registered()).encode();
    assert_eq!(fold.apply_bytes(0, &bytes).unwrap(), FoldOutcome::Applied);

    let outcome = fold.apply_bytes(1, b"not json").unwrap();
    assert!(matches!(
        outcome,
        FoldOutcome::Skipped(SkipReason::Malformed(_))
    ));
    assert_eq!(fold.watermark().offset, Some(1));
    assert_eq!(
        fold.watermark().last_event.map(|m| m.position),
        Some(10),
        "an undecodable record moves the offset, not the last event"
    );

    let mut future = lifecycle(2, EventPayload::ModelActivated);
    future.schema_version = CURRENT_SCHEMA_VERSION + 1;
    let before = fold.snapshot().unwrap();
    assert!(matches!(
        fold.apply_bytes(2, &future.encode()),
        Err(FoldError::UnsupportedSchema(v)) if v == CURRENT_SCHEMA_VERSION + 1
    ));
    assert_eq!(
        fold.snapshot().unwrap(),
        before,
        "a refused event changes nothing"
    );
}

#[test]
fn watermark_tracks_offset_and_event_time() {
    let mut fold = fold();
    fold.apply(7, &lifecycle(1, registered()));
    let mark = fold.watermark().last_event.unwrap();
    assert_eq!(fold.watermark().offset, Some(7));
    assert_eq!(mark.position, 10);
    assert_eq!(mark.occurred_at.timestamp(), 1_700_000_001);
    // An older offset re-delivered does not move it back.
    fold.apply(3, &lifecycle(1, registered()));
    assert_eq!(fold.watermark().offset, Some(7));
}

#[test]
fn locale_never_changes_a_count() {
    let mut korean = LocalizedText::english("GPT-5").entries().clone();
    korean.insert("ko".to_owned(), "지피티".to_owned());
    let korean = LocalizedText::parse(korean, domain::TextLimit::NAME).unwrap();
    let a = applied(&[lifecycle(1, registered())]);
    let b = applied(&[
        lifecycle(1, registered()),
        lifecycle(
            2,
            EventPayload::ModelMetadataUpdated {
                name: Some(korean),
                description: None,
            },
        ),
    ]);
    assert_eq!(a.counters(), b.counters());
}

#[test]
fn region_view_sums_that_regions_actors_only() {
    let mut view = GlobalView::new();
    let home = applied(&[lifecycle(1, registered())]);
    let mut serving = PartitionFold::new(actor("us-east", 2));
    serving.apply(0, &availability("us-east", 1, true));
    view.observe(home.state());
    view.observe(serving.state());

    let global = view.totals();
    assert_eq!(global.total, 1);
    assert_eq!(global.regions[&region("us-east")].available, 1);

    let eu = view.region_view(&region(HOME));
    assert_eq!((eu.total, eu.regions.len()), (1, 0));
    let us = view.region_view(&region("us-east"));
    assert_eq!((us.total, us.regions[&region("us-east")].available), (0, 1));
}

#[test]
fn count_snapshot_serializes_as_the_api_shape() {
    let fold = applied(&[lifecycle(1, registered())]);
    let json = serde_json::to_value(counts(&fold)).unwrap();
    assert_eq!(json["total"], 1);
    assert_eq!(json["by_status"]["operational"], 1);
    assert_eq!(json["by_provider"]["openai"]["total"], 1);
    assert!(json["regions"].as_object().unwrap().is_empty());
}

#[test]
fn observe_says_whether_a_state_moved_the_view() {
    use projector::Observed;
    let mut fold = fold();
    fold.apply(0, &lifecycle(1, registered()));
    let older = fold.state();
    fold.apply(1, &lifecycle(2, EventPayload::ModelActivated));
    let newer = fold.state();

    let mut view = GlobalView::new();
    assert_eq!(view.observe(older.clone()), Observed::New);
    assert_eq!(view.observe(newer.clone()), Observed::Advanced);
    assert_eq!(view.observe(older), Observed::Unchanged);
    assert_eq!(view.observe(newer.clone()), Observed::Unchanged);
    assert_eq!(view.actor(&actor(HOME, 0)), Some(&newer));
}
