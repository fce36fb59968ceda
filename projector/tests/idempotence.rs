//! Re-delivering an already-applied event changes nothing: same outcome `Duplicate`, same
//! snapshot bytes, same state bytes.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::SplitMix;
use common::world::{World, scenario};
use projector::{ActorId, FoldOutcome, PartitionFold};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn redelivery_is_a_no_op(scenario in scenario(30), seed in any::<u64>()) {
        let world = World::build(&scenario);
        let mut rng = SplitMix(seed);
        for (region, log) in &world.logs {
            for (p, events) in log.partitions.iter().enumerate() {
                let mut fold = PartitionFold::new(ActorId::new(region.clone(), p as i32));
                for (offset, event) in events.iter().enumerate() {
                    fold.apply(offset as i64, event);
                    if rng.chance(3) {
                        // Kafka re-delivers an earlier record at its original offset.
                        let again = rng.below(offset + 1);
                        let snapshot = fold.snapshot().unwrap();
                        let state = fold.state().encode().unwrap();
                        let outcome = fold.apply(again as i64, &events[again]);
                        let is_duplicate = matches!(outcome, FoldOutcome::Duplicate { .. });
                        prop_assert!(is_duplicate, "{:?}", outcome);
                        prop_assert_eq!(fold.snapshot().unwrap(), snapshot);
                        prop_assert_eq!(fold.state().encode().unwrap(), state);
                    }
                }
                // And the whole partition again, from the start.
                let snapshot = fold.snapshot().unwrap();
                for (offset, event) in events.iter().enumerate() {
                    let outcome = fold.apply(offset as i64, event);
                    let is_duplicate = matches!(outcome, FoldOutcome::Duplicate { .. });
                    prop_assert!(is_duplicate, "{:?}", outcome);
                }
                prop_assert_eq!(fold.snapshot().unwrap(), snapshot);
            }
        }
    }
}
