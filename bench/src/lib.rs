//! Measuring running region nodes from outside, over HTTP only: the write path's throughput
//! ([`load`]), the time from a command to another region's live stream ([`latency`]) and the
//! latency of history reads ([`history`]).

pub mod history;
pub mod isolation;
pub mod latency;
pub mod load;
