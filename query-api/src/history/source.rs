//! Where counts as of instants come from: the history index when it holds every logged event
//! (waiting a moment for it to catch up), otherwise a replay of the log if the log is small
//! enough to replay for one read, otherwise a 503 until the index catches up. The index and a
//! replay answer the same.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::RegionId;
use tokio::time::Instant;
use tracing::warn;

use super::index::{IndexReadError, counts_from_index};
use super::log::{PointCounts, counts_at_points};
use crate::problem::QueryError;
use crate::state::QueryState;

/// How often a read looks again while the index catches up.
const INDEX_RECHECK: Duration = Duration::from_millis(20);

/// Counts at each of `points` (ascending), the deployment's or `only` one region's.
pub async fn counts_at_instants(
    state: &QueryState,
    points: &[DateTime<Utc>],
    only: Option<&RegionId>,
) -> Result<Vec<PointCounts>, QueryError> {
    if let Some(index) = state.history.index() {
        let deadline = Instant::now() + index.wait;
        loop {
            match counts_from_index(&state.pool, points, only).await {
                Ok(Ok(counts)) => {
                    metrics::counter!("history_reads_total", "source" => "index").increment(1);
                    return Ok(counts);
                }
                Ok(Err(_)) if Instant::now() + INDEX_RECHECK < deadline => {
                    tokio::time::sleep(INDEX_RECHECK).await;
                }
                Ok(Err(coverage)) => {
                    let logged = u64::try_from(coverage.logged).unwrap_or(0);
                    if logged > index.replay_limit {
                        metrics::counter!("history_reads_refused_total", "why" => "index-behind")
                            .increment(1);
                        return Err(QueryError::IndexCatchingUp {
                            indexed: coverage.indexed_through,
                            logged: coverage.logged,
                        });
                    }
                    break;
                }
                Err(IndexReadError::Database(error)) => {
                    return Err(QueryError::log_unavailable(&error));
                }
                // Only a bug or a newer build's blocks: the replay still answers right.
                Err(error @ IndexReadError::Codec(_)) => {
                    warn!(%error, "history index unreadable; replaying the log instead");
                    break;
                }
            }
        }
    }
    metrics::counter!("history_reads_total", "source" => "replay").increment(1);
    counts_at_points(&state.pool, points, only)
        .await
        .map_err(|error| QueryError::log_unavailable(&error))
}
