//! The projector's I/O around the pure fold of [`projector`]: Kafka consumers for a region's
//! partitions and the catalogue, PostgreSQL checkpoints, the state exchange between regions,
//! and the event log history reads from.

mod batch;
pub mod catalogue_follower;
pub mod checkpoint;
pub mod claims;
pub mod doze;
pub mod exchange;
mod exchange_readers;
pub mod gears;
pub mod incarnation;
pub mod known_states;
pub mod partition_projector;
pub mod retired;
pub mod source;
mod stall_watch;
pub mod undecodable;
