//! The node's live view shared by its writers (projector, exchange) and its readers (query
//! API): in-memory state behind locks and channels, no I/O.

pub mod change_feed;
pub mod projection;
