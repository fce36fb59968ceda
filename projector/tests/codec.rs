//! Versioned, deterministic encodings: round trips, refusal of future versions, and
//! byte-identical replays.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::arbitrary::actor_state;
use common::world::{World, scenario};
use projector::{ActorState, CodecError, PartitionFold, state_codec};
use proptest::prelude::*;

/// Rewrites the format version in a header (bytes 1..3, big-endian).
fn with_version(mut bytes: Vec<u8>, version: u16) -> Vec<u8> {
    bytes[1..state_codec::HEADER_LEN].copy_from_slice(&version.to_be_bytes());
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn actor_state_round_trips(state in actor_state()) {
        let bytes = state.encode().unwrap();
        let decoded = ActorState::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &state);
        prop_assert_eq!(decoded.encode().unwrap(), bytes);
    }

    #[test]
    fn future_versions_are_refused(state in actor_state(), ahead in 1u16..=u16::MAX - 1) {
        let version = ActorState::FORMAT_VERSION.saturating_add(ahead);
        let bytes = with_version(state.encode().unwrap(), version);
        let refused = matches!(
            ActorState::decode(&bytes),
            Err(CodecError::UnsupportedVersion { found, supported, .. })
                if found == version && supported == ActorState::FORMAT_VERSION
        );
        prop_assert!(refused);

        let supported = PartitionFold::SNAPSHOT_FORMAT_VERSION;
        let version = supported.saturating_add(ahead);
        let snapshot = PartitionFold::new(state.actor().clone()).snapshot().unwrap();
        let refused = matches!(
            PartitionFold::restore(&with_version(snapshot, version)),
            Err(CodecError::UnsupportedVersion { found, supported: s, .. })
                if found == version && s == supported
        );
        prop_assert!(refused);
    }

    #[test]
    fn replays_and_restores_are_byte_identical(scenario in scenario(30), cut in any::<prop::sample::Index>()) {
        let world = World::build(&scenario);
        let first = world.fold_partitions();
        let second = world.fold_partitions();
        for (a, b) in first.iter().zip(&second) {
            prop_assert_eq!(a.snapshot().unwrap(), b.snapshot().unwrap());
            prop_assert_eq!(a.state().encode().unwrap(), b.state().encode().unwrap());

            // Snapshot round trip.
            let restored = PartitionFold::restore(&a.snapshot().unwrap()).unwrap();
            prop_assert_eq!(restored.snapshot().unwrap(), a.snapshot().unwrap());
            prop_assert_eq!(restored.state(), a.state());
        }

        // Stop at any offset, checkpoint, restore, carry on: same bytes as never stopping.
        let partitions = world.logs.values().flat_map(|log| log.partitions.iter());
        for (fold, events) in first.iter().zip(partitions) {
            let stop = cut.index(events.len() + 1);
            let mut early = PartitionFold::new(fold.actor().clone());
            for (offset, event) in events.iter().enumerate().take(stop) {
                early.apply(offset as i64, event);
            }
            let mut resumed = PartitionFold::restore(&early.snapshot().unwrap()).unwrap();
            for (offset, event) in events.iter().enumerate().skip(stop) {
                resumed.apply(offset as i64, event);
            }
            prop_assert_eq!(resumed.snapshot().unwrap(), fold.snapshot().unwrap());
        }
    }
}

#[test]
fn a_snapshot_is_not_an_actor_state() {
    let fold = PartitionFold::new(common::actor("eu-west", 0));
    let snapshot = fold.snapshot().unwrap();
    assert!(matches!(
        ActorState::decode(&snapshot),
        Err(CodecError::WrongKind { .. })
    ));
    assert!(matches!(
        PartitionFold::restore(&fold.state().encode().unwrap()),
        Err(CodecError::WrongKind { .. })
    ));
    assert!(matches!(
        ActorState::decode(&[]),
        Err(CodecError::Truncated { len: 0, .. })
    ));
}

#[test]
fn decoding_refuses_foreign_dots() {
    use projector::{Counters, InvalidState, MetricKey, Watermark};
    let owner = common::actor("eu-west", 0);
    let intruder = common::actor("eu-west", 1);
    let mut counters = Counters::new();
    counters.add(&intruder, MetricKey::Total, 5);
    assert!(matches!(
        ActorState::new(owner.clone(), counters.clone(), Watermark::default()),
        Err(InvalidState::ForeignOrOversizedDots { .. })
    ));
    // Forge the bytes: a valid state of the intruder relabelled as the owner's.
    let honest = ActorState::new(intruder.clone(), counters, Watermark::default()).unwrap();
    let bytes = honest.encode().unwrap();
    let forged: Vec<u8> = {
        // region strings are the same length; the partition varint is the byte after them.
        let mut b = bytes.clone();
        let at = state_codec::HEADER_LEN + 1 + "eu-west".len();
        assert_eq!(b[at], 2, "zigzag varint of partition 1");
        b[at] = 0;
        b
    };
    assert!(matches!(
        ActorState::decode(&forged),
        Err(CodecError::Invalid(
            InvalidState::ForeignOrOversizedDots { .. }
        ))
    ));
}

#[test]
fn garbage_never_panics() {
    let state = ActorState::empty(common::actor("eu-west", 0));
    let bytes = state.encode().unwrap();
    for cut in 0..bytes.len() {
        let _ = ActorState::decode(&bytes[..cut]);
    }
    for flip in 0..bytes.len() {
        let mut b = bytes.clone();
        b[flip] ^= 0xFF;
        let _ = ActorState::decode(&b);
        let _ = PartitionFold::restore(&b);
    }
}
