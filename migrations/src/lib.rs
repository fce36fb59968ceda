//! The region node's schema: event store, outbox, idempotency keys, catalogue, checkpoints.

/// Every migration under `sql/`, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./sql");
