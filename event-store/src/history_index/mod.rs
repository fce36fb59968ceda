//! The history index's tables (`history_blocks`, `history_folds`, `history_fold_facts`,
//! `history_index_state`): each actor's log in blocks that carry the counters before them, the
//! folds the indexer resumes from, and how far the index reaches. This module is the only code
//! that reads or writes them.

mod blocks;
mod folds;
mod state;

pub use blocks::{BlockKey, RangeBlock, StoredBlock, blocks_between, cut_blocks, upsert_blocks};
pub use folds::{FoldFactsRow, FoldSave, StoredFold, load_fold_facts, load_folds, save_folds};
pub use state::{
    LogCoverage, forget_actor, indexed_through, log_coverage, reset, set_indexed_through,
};
