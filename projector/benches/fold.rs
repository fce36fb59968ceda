//! Fold throughput from encoded Kafka payloads to counter state (one core), and the cost of
//! merging actor states.
//!
//! `cargo bench -p projector --bench fold`

// A benchmark is a test harness: a bad fixture should abort it loudly (clippy.toml's
// allow-*-in-tests settings do not reach benches).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use chrono::{DateTime, Duration};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use domain::{
    CURRENT_SCHEMA_VERSION, EventEnvelope, EventPayload, LocalizedText, ModelId, OperationalStatus,
    ProviderId, RegionId, StreamId, WithdrawReason,
};
use projector::{ActorId, ActorState, Counters, GlobalView, MetricKey, PartitionFold, Watermark};
use uuid::Uuid;

const REGION: &str = "eu-west";
const MODELS: usize = 1_000;
const PROVIDERS: usize = 50;

fn region(raw: &str) -> RegionId {
    RegionId::parse(raw).unwrap()
}

/// One model's realistic life: registered, served, activated, status flaps, renamed,
/// deactivated and reactivated, finally (for one model in four) withdrawn and retired.
fn life(i: usize) -> Vec<(StreamId, EventPayload)> {
    let provider = ProviderId::parse(&format!("provider-{}", i % PROVIDERS)).unwrap();
    let id = ModelId::parse(&format!("{provider}/model-{i}")).unwrap();
    let home = region(REGION);
    let lifecycle = StreamId::Model(id.clone());
    let availability = StreamId::Availability {
        region: home.clone(),
        model: id.clone(),
    };
    let mut events = vec![
        (
            lifecycle.clone(),
            EventPayload::ModelRegistered {
                id,
                provider,
                home_region: home.clone(),
                name: LocalizedText::english(&format!("Model {i}")),
                description: Some(LocalizedText::english("A large language model.")),
                status: OperationalStatus::Operational,
            },
        ),
        (
            availability.clone(),
            EventPayload::ModelServed {
                region: home.clone(),
            },
        ),
        (lifecycle.clone(), EventPayload::ModelActivated),
        (
            lifecycle.clone(),
            EventPayload::ModelStatusChanged {
                status: OperationalStatus::Degraded,
            },
        ),
        (
            lifecycle.clone(),
            EventPayload::ModelMetadataUpdated {
                name: Some(LocalizedText::english(&format!("Model {i} (2025)"))),
                description: None,
            },
        ),
        (
            lifecycle.clone(),
            EventPayload::ModelStatusChanged {
                status: OperationalStatus::Operational,
            },
        ),
        (lifecycle.clone(), EventPayload::ModelDeactivated),
        (lifecycle.clone(), EventPayload::ModelActivated),
    ];
    if i.is_multiple_of(4) {
        events.extend([
            (lifecycle.clone(), EventPayload::ModelDeactivated),
            (
                availability,
                EventPayload::ModelWithdrawn {
                    region: home,
                    reason: WithdrawReason::ModelRetired,
                },
            ),
            (lifecycle, EventPayload::ModelRetired),
        ]);
    }
    events
}

/// Every model's life, interleaved round-robin as a busy partition would see them.
fn workload() -> Vec<EventEnvelope> {
    let lives: Vec<_> = (0..MODELS).map(life).collect();
    let longest = lives.iter().map(Vec::len).max().unwrap_or(0);
    let mut sequences = std::collections::HashMap::<String, u64>::new();
    let mut out = Vec::new();
    for step in 0..longest {
        for life in &lives {
            let Some((stream, event)) = life.get(step) else {
                continue;
            };
            let sequence = sequences.entry(stream.to_string()).or_default();
            *sequence += 1;
            let n = out.len() as u64 + 1;
            out.push(EventEnvelope {
                event_id: Uuid::from_u128(u128::from(n)),
                schema_version: CURRENT_SCHEMA_VERSION,
                stream: stream.clone(),
                sequence: *sequence,
                position: n,
                model_id: stream.model_id().clone(),
                origin_region: region(REGION),
                occurred_at: DateTime::from_timestamp(1_750_000_000, 0).unwrap()
                    + Duration::milliseconds(n as i64),
                correlation_id: Uuid::from_u128(u128::from(n)),
                causation_id: None,
                idempotency_key: Some(format!("key-{n}")),
                actor: Some("admin".to_owned()),
                event: event.clone(),
            });
        }
    }
    out
}

fn fold_throughput(c: &mut Criterion) {
    let envelopes = workload();
    let payloads: Vec<Vec<u8>> = envelopes.iter().map(EventEnvelope::encode).collect();
    let actor = ActorId::new(region(REGION), 0);

    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(payloads.len() as u64));
    group.bench_function("payload_bytes_to_counters", |b| {
        b.iter_batched(
            || PartitionFold::new(actor.clone()),
            |mut fold| {
                for (offset, payload) in payloads.iter().enumerate() {
                    black_box(fold.apply_bytes(offset as i64, payload).unwrap());
                }
                fold
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("decoded_envelopes_to_counters", |b| {
        b.iter_batched(
            || PartitionFold::new(actor.clone()),
            |mut fold| {
                for (offset, envelope) in envelopes.iter().enumerate() {
                    black_box(fold.apply(offset as i64, envelope));
                }
                fold
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// A state with every metric key a region with `PROVIDERS` providers has.
fn busy_state(region_name: &str, partition: i32, scale: i32) -> ActorState {
    let actor = ActorId::new(region(region_name), partition);
    let mut counters = Counters::new();
    let mut add = |key: MetricKey, up: i32, down: i32| {
        counters.add(&actor, key.clone(), up * scale);
        counters.add(&actor, key, -down * scale);
    };
    add(MetricKey::Total, 1_000, 250);
    add(MetricKey::Active, 1_500, 750);
    add(MetricKey::Inactive, 1_000, 1_000);
    add(MetricKey::Retired, 250, 0);
    for status in OperationalStatus::ALL {
        add(MetricKey::Status(status), 1_000, 900);
    }
    for p in 0..PROVIDERS {
        let provider = ProviderId::parse(&format!("provider-{p}")).unwrap();
        add(MetricKey::ProviderTotal(provider.clone()), 20, 5);
        add(MetricKey::ProviderActive(provider), 30, 15);
    }
    add(MetricKey::Available(region(region_name)), 1_000, 250);
    let watermark = Watermark {
        offset: Some(i64::from(scale) * 10_000),
        last_event: None,
    };
    ActorState::new(actor, counters, watermark).unwrap()
}

fn merge_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("merge");
    let older = busy_state("eu-west", 0, 1);
    let newer = busy_state("eu-west", 0, 2);
    group.bench_function("actor_state_50_providers", |b| {
        b.iter_batched(
            || newer.clone(),
            |mut state| {
                state.merge(black_box(&older)).unwrap();
                state
            },
            BatchSize::SmallInput,
        );
    });

    // The usual case: the next publication of an actor moved a handful of keys.
    let next = {
        let actor = older.actor().clone();
        let mut counters = older.counters().clone();
        counters.add(&actor, MetricKey::Active, 1);
        counters.add(&actor, MetricKey::Inactive, -1);
        let provider = ProviderId::parse("provider-7").unwrap();
        counters.add(&actor, MetricKey::ProviderActive(provider), 1);
        let watermark = Watermark {
            offset: older.watermark().offset.map(|o| o + 1),
            last_event: None,
        };
        ActorState::new(actor, counters, watermark).unwrap()
    };
    group.bench_function("actor_state_50_providers_3_keys_moved", |b| {
        b.iter_batched(
            || older.clone(),
            |mut state| {
                state.merge(black_box(&next)).unwrap();
                state
            },
            BatchSize::SmallInput,
        );
    });

    let view = |scale| {
        let mut view = GlobalView::new();
        for name in ["eu-west", "us-east", "ap-south"] {
            view.observe(busy_state(name, 0, scale));
        }
        view
    };
    let (old_view, new_view) = (view(1), view(2));
    group.bench_function("global_view_3_regions_50_providers", |b| {
        b.iter_batched(
            || new_view.clone(),
            |mut view| {
                view.merge(black_box(&old_view));
                view
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("observe_encoded_state_50_providers", |b| {
        let bytes = older.encode().unwrap();
        b.iter_batched(
            || new_view.clone(),
            |mut view| {
                view.observe_bytes(black_box(&bytes)).unwrap();
                view
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("totals_3_regions_50_providers", |b| {
        b.iter(|| black_box(new_view.totals()));
    });
    group.finish();
}

criterion_group!(benches, fold_throughput, merge_cost);
criterion_main!(benches);
