//! The history index's pure part: each actor's log cut into blocks of events, each block
//! carrying the actor's counters before it and every event's counter changes, so the counts
//! as of any instant are one block per actor away (`GET /v1/counts?at=`, series).

mod block;

pub use block::{BlockEntry, decode_counters, decode_entries, encode_counters, encode_entries};
