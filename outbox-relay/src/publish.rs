//! One publish step: read a batch, send it, mark what the broker confirmed.

use std::time::Instant;

use sqlx::PgPool;
use tracing::{Instrument, debug, info_span};

use crate::error::RelayError;
use crate::outbox::{fetch_unpublished, mark_published};
use crate::producer::Publisher;

/// What one [`relay_once`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayOutcome {
    /// Rows delivered and marked published.
    pub published: usize,
    /// The batch was full: more rows are probably waiting.
    pub more: bool,
}

/// Publishes up to `batch_size` unpublished rows in position order and marks the delivered ones.
///
/// Only rows acknowledged with every earlier row of their partition are marked. A row that
/// follows a failure in its partition is on the topic, but ahead of its predecessor: it stays
/// unpublished and is sent again after the failed row, so the partition holds every stream's
/// events in order after the gap (consumers drop the early copy's re-send by stream sequence,
/// and the fold holds an early copy until its predecessor comes). If anything failed the call
/// returns [`RelayError::Undelivered`]: the caller backs off and reconciles (a failed message
/// may still have reached the broker) before the next attempt.
pub async fn relay_once(
    pool: &PgPool,
    publisher: &Publisher,
    batch_size: u32,
) -> Result<RelayOutcome, RelayError> {
    let rows = fetch_unpublished(pool, batch_size).await?;
    let Some(first) = rows.first() else {
        return Ok(RelayOutcome {
            published: 0,
            more: false,
        });
    };
    let span = info_span!(
        "outbox_batch",
        rows = rows.len(),
        first_position = first.position
    );
    async {
        let started = Instant::now();
        let report = publisher.send_all(&rows).await?;
        mark_published(pool, &report.delivered).await?;
        let published = report.delivered.len();
        metrics::counter!("outbox_published_total").increment(published as u64);
        metrics::counter!("outbox_overtaking_resent_total").increment(report.overtook.len() as u64);
        metrics::histogram!("outbox_publish_batch_seconds").record(started.elapsed().as_secs_f64());
        debug!(
            published,
            elapsed_ms = started.elapsed().as_millis(),
            "batch published"
        );

        let attempted = rows.len();
        if let Some((_, first_error)) = report.failed.into_iter().next() {
            return Err(RelayError::Undelivered {
                attempted,
                failed: attempted - published,
                first: first_error,
            });
        }
        Ok(RelayOutcome {
            published,
            more: u32::try_from(attempted).is_ok_and(|n| n >= batch_size),
        })
    }
    .instrument(span)
    .await
}
