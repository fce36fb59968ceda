//! Measuring running region nodes from outside, over HTTP only: the write path's throughput
//! ([`load`]), the time from a command to another region's live stream ([`latency`]) and the
//! latency of history reads ([`history`]); reads of one URL under load ([`read_load`]) and the
//! replaced platform's SQL counts, served for comparison ([`sql_counts`]).

pub mod history;
pub mod isolation;
pub mod latency;
pub mod load;
pub mod read_load;
pub mod sql_counts;
