//! The region's event store: a PostgreSQL pool and the region it writes for.

use domain::RegionId;
use sqlx::PgPool;

/// Handle on one region's event store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventStore {
    pub(crate) pool: PgPool,
    pub(crate) region: RegionId,
    pub(crate) topic: String,
}

impl EventStore {
    /// `topic` is where this region's events are published (written into each outbox row).
    pub fn new(pool: PgPool, region: RegionId, topic: impl Into<String>) -> Self {
        Self {
            pool,
            region,
            topic: topic.into(),
        }
    }

    pub fn region(&self) -> &RegionId {
        &self.region
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
