//! `GlobalView::merge` (and so the per-actor PN-counter join) is a semilattice join:
//! commutative, associative and idempotent over arbitrary actor states.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::arbitrary::{actor_state, global_view};
use projector::GlobalView;
use proptest::prelude::*;

fn merged(a: &GlobalView, b: &GlobalView) -> GlobalView {
    let mut out = a.clone();
    out.merge(b);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn merge_is_commutative(a in global_view(), b in global_view()) {
        let ab = merged(&a, &b);
        let ba = merged(&b, &a);
        prop_assert_eq!(ab.totals(), ba.totals());
        prop_assert_eq!(ab, ba);
    }

    #[test]
    fn merge_is_associative(a in global_view(), b in global_view(), c in global_view()) {
        let left = merged(&merged(&a, &b), &c);
        let right = merged(&a, &merged(&b, &c));
        prop_assert_eq!(left, right);
    }

    #[test]
    fn merge_is_idempotent(a in global_view(), b in global_view()) {
        prop_assert_eq!(&merged(&a, &a), &a);
        let ab = merged(&a, &b);
        prop_assert_eq!(&merged(&ab, &b), &ab);
        prop_assert_eq!(&merged(&ab, &a), &ab);
    }

    /// Observing single states is the same join: the order of observation never matters.
    #[test]
    fn observe_order_does_not_matter(states in prop::collection::vec(actor_state(), 0..6)) {
        let mut forward = GlobalView::new();
        for state in &states {
            forward.observe(state.clone());
        }
        let mut backward = GlobalView::new();
        for state in states.iter().rev() {
            backward.observe(state.clone());
            backward.observe(state.clone());
        }
        prop_assert_eq!(forward, backward);
    }
}
