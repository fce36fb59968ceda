//! Arbitrary actor states for the CRDT laws and the codec round trip.

use chrono::DateTime;
use domain::OperationalStatus;
use projector::{ActorState, Counters, EventMark, GlobalView, MetricKey, Watermark};
use proptest::prelude::*;

use super::{actor, provider, region};

/// A small key space so that states overlap.
pub fn metric_key() -> impl Strategy<Value = MetricKey> {
    prop_oneof![
        Just(MetricKey::Total),
        Just(MetricKey::Active),
        Just(MetricKey::Inactive),
        Just(MetricKey::Retired),
        prop::sample::select(OperationalStatus::ALL.to_vec()).prop_map(MetricKey::Status),
        prop::sample::select(vec!["openai", "meta"])
            .prop_map(|p| MetricKey::ProviderTotal(provider(p))),
        prop::sample::select(vec!["openai", "meta"])
            .prop_map(|p| MetricKey::ProviderActive(provider(p))),
        prop::sample::select(vec!["eu", "us"]).prop_map(|r| MetricKey::Available(region(r))),
    ]
}

pub fn watermark() -> impl Strategy<Value = Watermark> {
    (
        prop::option::of(0i64..50),
        prop::option::of((0u64..50, 0i64..1_000)),
    )
        .prop_map(|(offset, mark)| Watermark {
            offset,
            last_event: mark.map(|(position, secs)| EventMark {
                position,
                occurred_at: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap(),
            }),
        })
}

/// Any state of one of four actors: arbitrary increments and decrements (not only those a
/// fold could produce), so the laws are checked for the CRDT itself; mostly of epoch 0, some
/// of later exchange epochs.
pub fn actor_state() -> impl Strategy<Value = ActorState> {
    (
        prop::sample::select(vec![("eu", 0), ("eu", 1), ("us", 0), ("us", 1)]),
        prop::collection::vec((metric_key(), 0i32..8, 0i32..8), 0..6),
        watermark(),
        prop_oneof![4 => Just(0u64), 1 => 1u64..3],
    )
        .prop_map(|((r, p), moves, watermark, epoch)| {
            let actor = actor(r, p);
            let mut counters = Counters::new();
            for (key, up, down) in moves {
                counters.add(&actor, key.clone(), up);
                counters.add(&actor, key, -down);
            }
            ActorState::new(actor, counters, watermark)
                .unwrap()
                .with_epoch(epoch)
        })
}

pub fn global_view() -> impl Strategy<Value = GlobalView> {
    prop::collection::vec(actor_state(), 0..5).prop_map(|states| {
        let mut view = GlobalView::new();
        for state in states {
            view.observe(state);
        }
        view
    })
}
