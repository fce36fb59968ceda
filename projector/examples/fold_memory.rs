//! Resident bytes a partition fold adds per model: folds N models of a catalogue (registered,
//! served in their home region, activated) and reads the process's resident memory before and
//! after (issue #13's "memory per model", the fold's own part of a node's resident memory).
//!
//! `cargo run --release -p projector --example fold_memory -- [MODELS=1000000]`

// A measuring harness: a bad fixture should abort it loudly.
#![allow(clippy::expect_used)]

use chrono::DateTime;
use domain::{
    CURRENT_SCHEMA_VERSION, EventEnvelope, EventPayload, LocalizedText, ModelId, OperationalStatus,
    ProviderId, RegionId, StreamId,
};
use projector::{ActorId, PartitionFold};
use uuid::Uuid;

/// The process's resident memory in bytes (`VmRSS` of `/proc/self/status`; Linux).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// A catalogue of 40 providers; ids the length of real ones (`provider-7/model-123456-instruct`).
fn model_events(region: &RegionId, i: usize) -> Vec<(StreamId, EventPayload)> {
    let provider = ProviderId::parse(&format!("provider-{}", i % 40)).expect("a valid provider");
    let id = ModelId::parse(&format!("{provider}/model-{i}-instruct")).expect("a valid model id");
    let lifecycle = StreamId::Model(id.clone());
    vec![
        (
            lifecycle.clone(),
            EventPayload::ModelRegistered {
                id: id.clone(),
                provider,
                home_region: region.clone(),
                name: LocalizedText::english(&format!("Model {i}")),
                description: None,
                status: OperationalStatus::Operational,
            },
        ),
        (
            StreamId::Availability {
                region: region.clone(),
                model: id,
            },
            EventPayload::ModelServed {
                region: region.clone(),
            },
        ),
        (lifecycle, EventPayload::ModelActivated),
    ]
}

fn main() {
    let models: usize = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |raw| raw.parse())
        .expect("MODELS must be a number");
    let region = RegionId::parse("eu-west").expect("a valid region");
    let mut fold = PartitionFold::new(ActorId::new(region.clone(), 0));
    let before = resident_bytes();
    let mut position = 0_u64;
    for i in 0..models {
        for (stream, event) in model_events(&region, i) {
            position += 1;
            let envelope = EventEnvelope {
                event_id: Uuid::from_u128(u128::from(position)),
                schema_version: CURRENT_SCHEMA_VERSION,
                model_id: stream.model_id().clone(),
                sequence: if matches!(event, EventPayload::ModelActivated) {
                    2
                } else {
                    1
                },
                stream,
                position,
                origin_region: region.clone(),
                occurred_at: DateTime::from_timestamp(1_750_000_000, 0).expect("a valid time"),
                correlation_id: Uuid::from_u128(u128::from(position)),
                causation_id: None,
                idempotency_key: None,
                actor: None,
                event,
            };
            fold.apply(i64::try_from(position).unwrap_or(i64::MAX), &envelope);
        }
    }
    let held = resident_bytes().saturating_sub(before);
    let stats = fold.stats();
    println!(
        "{models} models folded ({stats:?}): resident memory grew by {held} bytes, {:.0} bytes per model",
        held as f64 / models as f64
    );
}
