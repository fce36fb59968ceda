//! One model's events in history order (event time, region, position), a page at a time.

use chrono::{DateTime, Utc};
use domain::ModelId;
use sqlx::PgExecutor;

/// Where a page ends in the history's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageKey {
    pub occurred_at: DateTime<Utc>,
    pub region: String,
    pub position: i64,
}

/// One event of the page: its envelope as stored, and its key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ModelPageRow {
    pub envelope: String,
    pub occurred_at: DateTime<Utc>,
    pub region: String,
    pub position: i64,
}

impl ModelPageRow {
    pub fn key(&self) -> PageKey {
        PageKey {
            occurred_at: self.occurred_at,
            region: self.region.clone(),
            position: self.position,
        }
    }
}

/// Up to `limit` events of `model` after `after` (from the first when `None`).
pub async fn model_page<'e>(
    db: impl PgExecutor<'e>,
    model: &ModelId,
    after: Option<&PageKey>,
    limit: i64,
) -> Result<Vec<ModelPageRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT envelope::text AS envelope, occurred_at, region, position FROM event_log
          WHERE model_id = $1
            AND ($2::timestamptz IS NULL OR (occurred_at, region, position) > ($2, $3, $4))
          ORDER BY occurred_at, region, position
          LIMIT $5",
    )
    .bind(model.as_str())
    .bind(after.map(|k| k.occurred_at))
    .bind(after.map(|k| k.region.as_str()))
    .bind(after.map(|k| k.position))
    .bind(limit)
    .fetch_all(db)
    .await
}
