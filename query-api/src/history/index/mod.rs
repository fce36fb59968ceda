//! The history index: each actor's log in blocks that carry the counters before them, kept by
//! one indexer per database, so `?at=` and series cost a block per actor and instant instead
//! of a replay of the whole log.

mod actor_log;
mod indexer;
mod read;

pub use actor_log::BlockPolicy;
pub use indexer::{IndexError, run_indexer};
pub use read::{IndexReadError, counts_from_index};
