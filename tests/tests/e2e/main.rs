//! The end-to-end tests, one binary: every module drives real region-node processes or an
//! in-process node against the real broker and PostgreSQL, on one harness (`support`). Each
//! test has its own database, topics and consumer groups; node-process clusters take turns.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

mod audit;
mod bad_input;
mod catalogue_batch;
mod catch_up_gears;
mod changes;
mod checkpoint_store;
mod clock;
mod commands;
mod convergence;
mod dashboard;
mod exchange_trust;
mod follower_churn;
mod graceful_stop;
mod group_commit;
mod history;
mod history_block_reads;
mod history_catch_up;
mod history_index;
mod history_pages;
mod idle_readers;
mod imports;
mod openapi;
mod outbox_backlog;
mod ownership;
mod partition_claims;
mod pg_restart;
mod poison;
mod projector_crash;
mod read_side;
mod read_your_writes;
mod recreated_store;
mod relay;
mod relay_faults;
mod retired_models;
mod secured;
mod soak;
mod stream_heads;
mod stream_slots;
mod table_stats;
mod topic_checks;
mod topic_incarnations;
