//! The projector's I/O: Kafka consumers, PostgreSQL checkpoints, state exchange, the live view.

pub mod catalogue_follower;
pub mod change_feed;
pub mod checkpoint;
pub mod event_log;
pub mod exchange;
pub mod known_states;
pub mod partition_projector;
pub mod projection;
pub mod source;
