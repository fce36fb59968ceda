//! Any interleaving, duplication or reordering of the actors' state messages converges to the
//! counts of folding every region's whole log in one place.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::SplitMix;
use common::world::{World, scenario};
use domain::RegionId;
use projector::{ActorState, GlobalView};
use proptest::prelude::*;

/// Every state each actor published: some intermediate ones (as a projector publishes after
/// some commits) and always its final one.
fn published_states(world: &World, rng: &mut SplitMix) -> Vec<ActorState> {
    let mut messages = Vec::new();
    for (region, log) in &world.logs {
        for (p, events) in log.partitions.iter().enumerate() {
            let actor = projector::ActorId::new(region.clone(), p as i32);
            let mut fold = projector::PartitionFold::new(actor);
            for (offset, event) in events.iter().enumerate() {
                fold.apply(offset as i64, event);
                if rng.chance(3) {
                    messages.push(fold.state());
                }
            }
            messages.push(fold.state());
        }
    }
    messages
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn any_delivery_order_converges_to_the_true_sum(
        scenario in scenario(30),
        seed in any::<u64>(),
    ) {
        let world = World::build(&scenario);
        let truth = world.fold_in_one_place();
        let mut rng = SplitMix(seed);

        let mut messages: Vec<Vec<u8>> = published_states(&world, &mut rng)
            .iter()
            .map(|state| state.encode().unwrap())
            .collect();
        // Duplicate some, then deliver in any order.
        for _ in 0..rng.below(messages.len() + 1) {
            let again = messages[rng.below(messages.len())].clone();
            messages.push(again);
        }
        rng.shuffle(&mut messages);

        // Two nodes each receive part of the stream (both get every final state eventually
        // via the other's merge), then exchange views.
        let mut node_a = GlobalView::new();
        let mut node_b = GlobalView::new();
        for bytes in &messages {
            let node = if rng.chance(2) { &mut node_a } else { &mut node_b };
            node.observe_bytes(bytes).unwrap();
        }
        let mut everything = GlobalView::new();
        for bytes in &messages {
            everything.observe_bytes(bytes).unwrap();
        }
        node_a.merge(&node_b);

        prop_assert_eq!(node_a.totals(), truth.totals());
        prop_assert_eq!(everything.totals(), truth.totals());
        prop_assert_eq!(&node_a, &everything);
        for region in world.logs.keys() {
            let region: &RegionId = region;
            prop_assert_eq!(everything.region_view(region), truth.region_view(region));
        }
    }
}
