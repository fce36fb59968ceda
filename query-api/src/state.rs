//! The state the read side's handlers share: the live projection, the pool and their settings.

use std::time::Duration;

use domain::RegionId;
use metrics_exporter_prometheus::PrometheusHandle;
use projector::{ChangeFeed, Projection};
use sqlx::PgPool;

use crate::history::HistoryGate;
use crate::readiness::TaskHealth;
use crate::stream::hub::StreamHub;

/// What the read routes share.
#[derive(Debug, Clone)]
pub struct QueryState {
    pub pool: PgPool,
    pub metrics: Option<PrometheusHandle>,
    pub projection: Projection,
    /// Every event the catalogue follower commits, as it commits it.
    pub feed: ChangeFeed,
    /// This node's region.
    pub region: RegionId,
    /// Every region of the deployment, this one included.
    pub regions: Vec<RegionId>,
    /// Partitions of every region's events topic (which actor folds a model's events).
    pub partitions: i32,
    /// A region not heard from for longer is reported `stale`.
    pub stale_after: Duration,
    /// The longest a read with a consistency token waits for the projection.
    pub read_wait: Duration,
    /// Live clients and the events they may resume from.
    pub hub: StreamHub,
    /// How many history reads may run at once.
    pub history: HistoryGate,
    /// How often a live stream reports freshness (also its heartbeat).
    pub stream_tick: Duration,
    /// Background tasks that failed and are not healthy again (`/readyz` lists them).
    pub health: TaskHealth,
}
