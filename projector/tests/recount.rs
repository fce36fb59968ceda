//! Folding a random legal history, split into partitions, counts exactly what a direct
//! recount of the final model states gives.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::world::{World, scenario};
use projector::{FoldOutcome, GlobalView};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn fold_counts_equal_a_recount_of_final_states(scenario in scenario(40)) {
        let world = World::build(&scenario);
        let folds = world.fold_partitions();
        let mut view = GlobalView::new();
        for fold in &folds {
            prop_assert_eq!(fold.stats().skipped, 0, "a legal history skips nothing");
            prop_assert_eq!(fold.stats().duplicates, 0);
            view.observe(fold.state());
        }
        prop_assert_eq!(view.totals(), world.recount());
        for region in world.logs.keys() {
            prop_assert_eq!(view.region_view(region), world.recount_region(region));
        }
    }

    #[test]
    fn every_event_of_a_legal_history_applies(scenario in scenario(40)) {
        let world = World::build(&scenario);
        for (region, log) in &world.logs {
            let mut fold = projector::PartitionFold::new(projector::ActorId::new(region.clone(), 0));
            for (offset, event) in log.all.iter().enumerate() {
                prop_assert_eq!(fold.apply(offset as i64, event), FoldOutcome::Applied);
            }
        }
    }
}
