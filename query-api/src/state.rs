use std::time::Duration;

use domain::RegionId;
use metrics_exporter_prometheus::PrometheusHandle;
use projector::runtime::projection::Projection;
use sqlx::PgPool;

use crate::stream::hub::StreamHub;

/// What the read routes share.
#[derive(Debug, Clone)]
pub struct QueryState {
    pub pool: PgPool,
    pub metrics: Option<PrometheusHandle>,
    pub projection: Projection,
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
    /// How often a live stream reports freshness (also its heartbeat).
    pub stream_tick: Duration,
}
