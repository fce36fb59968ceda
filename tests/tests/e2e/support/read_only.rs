//! The read side alone, in process: a `QueryState` on a given pool, served the way the node
//! serves it (`region_node::serve`), with the change feed in the test's hands.

use std::time::Duration;

use domain::RegionId;
use projector::{ChangeFeed, Projection};
use query_api::{HistoryGate, QueryState, StreamHub, TaskHealth};
use sqlx::PgPool;

use super::EU;

/// Settings of [`ReadOnlyNode::start`] that tests vary.
#[derive(Debug, Clone, Copy)]
pub struct ReadOnlyOptions {
    pub max_streams: usize,
    pub max_streams_per_client: usize,
    pub write_timeout: Duration,
    pub stream_tick: Duration,
}

impl Default for ReadOnlyOptions {
    fn default() -> Self {
        Self {
            max_streams: 8,
            max_streams_per_client: 0,
            write_timeout: Duration::from_secs(30),
            stream_tick: Duration::from_secs(1),
        }
    }
}

/// A running read side of region eu-west; it stops when the test's runtime ends.
#[derive(Debug)]
pub struct ReadOnlyNode {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// What the catalogue follower would announce.
    pub feed: ChangeFeed,
}

impl ReadOnlyNode {
    pub async fn start(pool: PgPool, options: ReadOnlyOptions) -> Self {
        let region = RegionId::parse(EU).unwrap();
        let feed = ChangeFeed::new();
        let state = QueryState {
            pool,
            metrics: None,
            projection: Projection::new(),
            feed: feed.clone(),
            region: region.clone(),
            regions: vec![region],
            partitions: 3,
            stale_after: Duration::from_secs(5),
            read_wait: Duration::from_secs(30),
            hub: StreamHub::with_per_host_cap(options.max_streams, options.max_streams_per_client),
            history: HistoryGate::new(4),
            stream_tick: options.stream_tick,
            health: TaskHealth::new(),
        };
        tokio::spawn(query_api::run_hub(state.clone(), std::future::pending()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(region_node::serve::serve(
            listener,
            query_api::router(state),
            options.write_timeout,
            std::future::pending(),
        ));
        Self { base, feed }
    }
}
