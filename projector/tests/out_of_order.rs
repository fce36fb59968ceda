//! The order a partition's events arrive in does not change what they count: an event that
//! comes before its stream's predecessor (a relay re-sending a failed row after its
//! successors) is held until the predecessor arrives, in memory and in the checkpoint.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::world::{World, scenario};
use domain::{
    EventEnvelope, EventPayload, LocalizedText, ModelId, OperationalStatus, ProviderId, RegionId,
    StreamId,
};
use projector::{ActorId, FoldOutcome, PartitionFold};
use proptest::prelude::*;

fn region() -> RegionId {
    RegionId::parse("eu-west").unwrap()
}

fn event(sequence: u64, event: EventPayload) -> EventEnvelope {
    let model = ModelId::parse("acme/one").unwrap();
    EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        schema_version: domain::CURRENT_SCHEMA_VERSION,
        stream: StreamId::Model(model.clone()),
        sequence,
        position: sequence * 10,
        model_id: model,
        origin_region: region(),
        occurred_at: chrono::DateTime::from_timestamp(1_800_000_000 + sequence as i64, 0).unwrap(),
        correlation_id: uuid::Uuid::nil(),
        causation_id: None,
        idempotency_key: None,
        actor: None,
        event,
    }
}

fn registered() -> EventPayload {
    EventPayload::ModelRegistered {
        id: ModelId::parse("acme/one").unwrap(),
        provider: ProviderId::parse("acme").unwrap(),
        home_region: region(),
        name: LocalizedText::english("One"),
        description: None,
        status: OperationalStatus::Operational,
    }
}

fn fold(events: &[&EventEnvelope]) -> PartitionFold {
    let mut fold = PartitionFold::new(ActorId::new(region(), 0));
    for (offset, event) in events.iter().enumerate() {
        fold.apply(offset as i64, event);
    }
    fold
}

#[test]
fn one_three_two_counts_like_one_two_three() {
    let (one, two, three) = (
        event(1, registered()),
        event(2, EventPayload::ModelActivated),
        event(3, EventPayload::ModelDeactivated),
    );
    let in_order = fold(&[&one, &two, &three]);

    let mut late = PartitionFold::new(ActorId::new(region(), 0));
    assert_eq!(late.apply(0, &one), FoldOutcome::Applied);
    assert_eq!(
        late.apply(1, &three),
        FoldOutcome::Held {
            expected: 2,
            found: 3
        }
    );
    assert_eq!(late.held().len(), 1);
    assert_eq!(late.apply(2, &two), FoldOutcome::Applied);
    assert!(late.held().is_empty());
    assert_eq!(late.counters(), in_order.counters());
    assert_eq!(late.facts(), in_order.facts());
    // The re-sent successor, a second time: a duplicate, nothing changes.
    assert!(matches!(
        late.apply(3, &three),
        FoldOutcome::Duplicate { .. }
    ));
    assert_eq!(late.counters(), in_order.counters());
}

#[test]
fn a_held_event_survives_the_checkpoint() {
    let (one, two, three) = (
        event(1, registered()),
        event(2, EventPayload::ModelActivated),
        event(3, EventPayload::ModelDeactivated),
    );
    let in_order = fold(&[&one, &two, &three]);
    let before_restart = fold(&[&one, &three]);
    let snapshot = before_restart.snapshot().unwrap();

    let mut restored = PartitionFold::restore(&snapshot).unwrap();
    assert_eq!(restored.held().len(), 1);
    assert_eq!(restored.snapshot().unwrap(), snapshot, "restore is exact");
    assert_eq!(restored.apply(2, &two), FoldOutcome::Applied);
    assert_eq!(restored.counters(), in_order.counters());
    assert_eq!(restored.facts(), in_order.facts());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Any arrival order of a partition's events, with any of them delivered twice, ends in
    /// the counters and facts of the log order, with nothing left held.
    #[test]
    fn any_arrival_order_counts_like_log_order(
        scenario in scenario(40),
        keys in proptest::collection::vec(any::<u32>(), 0..400),
        twice in proptest::collection::vec(any::<bool>(), 0..400),
    ) {
        let world = World::build(&scenario);
        for (region, log) in &world.logs {
            for (partition, events) in log.partitions.iter().enumerate() {
                let actor = ActorId::new(region.clone(), partition as i32);
                let mut in_order = PartitionFold::new(actor.clone());
                for (offset, event) in events.iter().enumerate() {
                    in_order.apply(offset as i64, event);
                }
                let mut arrivals: Vec<(u32, &EventEnvelope)> = events
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (keys.get(i).copied().unwrap_or(i as u32), e))
                    .collect();
                for (i, event) in events.iter().enumerate() {
                    if twice.get(i).copied().unwrap_or(false) {
                        arrivals.push((keys.get(i).copied().unwrap_or(0) / 2, event));
                    }
                }
                arrivals.sort_by_key(|(key, _)| *key);
                let mut shuffled = PartitionFold::new(actor);
                for (offset, (_, event)) in arrivals.iter().enumerate() {
                    shuffled.apply(offset as i64, event);
                }
                prop_assert_eq!(shuffled.counters(), in_order.counters());
                prop_assert_eq!(shuffled.facts(), in_order.facts());
                prop_assert!(shuffled.held().is_empty());
            }
        }
    }
}

/// Checkpoints written before events could be held (format version 1: the same fields, no
/// held events) are restored as holding nothing.
#[test]
fn a_version_1_checkpoint_is_still_restored() {
    let in_order = fold(&[
        &event(1, registered()),
        &event(2, EventPayload::ModelActivated),
    ]);
    let current = in_order.snapshot().unwrap();
    assert_eq!(PartitionFold::SNAPSHOT_FORMAT_VERSION, 2);
    // Version 2 appends the held events: an empty map is one zero byte in bincode.
    assert_eq!(current.last(), Some(&0));
    let mut v1 = current[..current.len() - 1].to_vec();
    v1[1..3].copy_from_slice(&1_u16.to_be_bytes());
    let restored = PartitionFold::restore(&v1).unwrap();
    assert!(restored.held().is_empty());
    assert_eq!(restored.snapshot().unwrap(), current);
}
