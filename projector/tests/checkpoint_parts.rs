//! Checkpoints in parts (a head and the facts rows that changed): committed at any points, with
//! commits lost on the way and restarts from what is stored, the stored parts restore the
//! fold byte for byte as never stopping; each commit writes at most one row per event since the
//! last; a stored set that lost, doubled or garbled a row is refused.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;

use common::world::{World, scenario};
use projector::{CodecError, FactsRow, PartitionFold};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// What the checkpoint tables hold for one partition.
#[derive(Default)]
struct Stored {
    head: Option<Vec<u8>>,
    rows: BTreeMap<String, Vec<u8>>,
}

impl Stored {
    fn rows(&self) -> Vec<FactsRow> {
        self.rows
            .iter()
            .map(|(stream, facts)| FactsRow {
                stream: stream.clone(),
                facts: facts.clone(),
            })
            .collect()
    }

    fn restore(&self, actor: &projector::ActorId) -> PartitionFold {
        match &self.head {
            Some(head) => PartitionFold::restore_parts(head, self.rows()).unwrap(),
            None => PartitionFold::new(actor.clone()),
        }
    }
}

/// At each offset: 0 = fold on, 1 = commit, 2 = commit that fails (nothing stored, nothing
/// marked), 3 = commit then restart from what is stored.
fn actions() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![6 => Just(0u8), 2 => Just(1), 1 => Just(2), 1 => Just(3)],
        0..200,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn parts_committed_anywhere_restore_the_fold_exactly(scenario in scenario(40), actions in actions()) {
        let world = World::build(&scenario);
        let expected = world.fold_partitions();
        let partitions = world.logs.values().flat_map(|log| log.partitions.iter());
        for (whole, events) in expected.iter().zip(partitions) {
            let actor = whole.actor().clone();
            let mut stored = Stored::default();
            let mut fold = PartitionFold::new(actor.clone());
            fold.track_changes(false);
            let mut since_commit = 0usize;
            for (offset, event) in events.iter().enumerate() {
                fold.apply(offset as i64, event);
                since_commit += 1;
                let action = actions.get(offset).copied().unwrap_or(0);
                if action == 0 {
                    continue;
                }
                let parts = fold.checkpoint_parts().unwrap();
                if action == 2 {
                    continue;
                }
                prop_assert!(
                    parts.changed.len() <= since_commit,
                    "{} rows for {} events", parts.changed.len(), since_commit
                );
                stored.head = Some(parts.head);
                for row in parts.changed {
                    stored.rows.insert(row.stream, row.facts);
                }
                fold.mark_checkpointed();
                since_commit = 0;
                if action == 3 {
                    fold = stored.restore(&actor);
                    fold.track_changes(false);
                }
            }
            let parts = fold.checkpoint_parts().unwrap();
            stored.head = Some(parts.head);
            for row in parts.changed {
                stored.rows.insert(row.stream, row.facts);
            }
            let restored = stored.restore(&actor);
            prop_assert_eq!(restored.snapshot().unwrap(), whole.snapshot().unwrap());
            prop_assert_eq!(restored.state(), whole.state());
        }
    }

    #[test]
    fn a_fold_from_a_whole_snapshot_writes_every_row_once(scenario in scenario(30)) {
        let world = World::build(&scenario);
        for whole in world.fold_partitions() {
            let mut fold = PartitionFold::restore(&whole.snapshot().unwrap()).unwrap();
            fold.track_changes(true);
            let parts = fold.checkpoint_parts().unwrap();
            let facts = whole.facts();
            prop_assert_eq!(parts.changed.len(), facts.model_count() + facts.availability_count());
            let restored = PartitionFold::restore_parts(&parts.head, parts.changed).unwrap();
            prop_assert_eq!(restored.snapshot().unwrap(), whole.snapshot().unwrap());
            fold.mark_checkpointed();
            prop_assert!(fold.checkpoint_parts().unwrap().changed.is_empty());
        }
    }
}

/// A deterministic fold of a partition that knows at least two models.
fn folded() -> PartitionFold {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    loop {
        let scenario = scenario(30).new_tree(&mut runner).unwrap().current();
        let fold = World::build(&scenario).fold_partitions().remove(0);
        if fold.facts().model_count() >= 2 {
            return fold;
        }
    }
}

#[test]
fn stored_rows_that_do_not_match_the_head_are_refused() {
    let fold = folded();
    let parts = fold.checkpoint_parts().unwrap();
    assert!(parts.changed.len() >= 2);
    let restore = |rows: Vec<FactsRow>| PartitionFold::restore_parts(&parts.head, rows);

    assert!(restore(parts.changed.clone()).is_ok());
    let lost = restore(parts.changed[1..].to_vec()).unwrap_err();
    assert!(
        matches!(lost, CodecError::FactsCount { expected, found } if found + 1 == expected),
        "{lost}"
    );
    let mut doubled = parts.changed.clone();
    doubled[1] = doubled[0].clone();
    let doubled = restore(doubled).unwrap_err();
    assert!(
        matches!(&doubled, CodecError::FactsRow { reason, .. } if reason == "stored twice"),
        "{doubled}"
    );
    let mut renamed = parts.changed.clone();
    renamed[0].stream = "not a stream".to_owned();
    assert!(matches!(
        restore(renamed).unwrap_err(),
        CodecError::FactsRow { .. }
    ));
    let mut garbled = parts.changed.clone();
    garbled[0].facts = vec![0xF3, 0, 1, 0xFF];
    assert!(restore(garbled).is_err());
    // A model's row under an availability stream's name is refused by its kind byte.
    let mut swapped = parts.changed.clone();
    let model_row = swapped
        .iter_mut()
        .find(|row| row.stream.starts_with("model:"))
        .unwrap();
    model_row.stream = "availability:eu-west:x/y".to_owned();
    assert!(matches!(
        restore(swapped).unwrap_err(),
        CodecError::WrongKind { .. }
    ));
    // A whole snapshot is not a head.
    assert!(matches!(
        PartitionFold::restore_parts(&fold.snapshot().unwrap(), parts.changed.clone()),
        Err(CodecError::WrongKind { .. })
    ));
}
