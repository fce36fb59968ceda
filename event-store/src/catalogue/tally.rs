//! The catalogue counted with SQL: what an audit compares the CRDT counters with.

use sqlx::PgConnection;

/// Models per (provider, lifecycle, status).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ModelTally {
    pub provider: String,
    pub lifecycle: String,
    pub status: String,
    pub models: i64,
}

/// Every model, grouped by provider, lifecycle and status.
pub async fn tally_models(conn: &mut PgConnection) -> Result<Vec<ModelTally>, sqlx::Error> {
    sqlx::query_as(
        "SELECT provider, lifecycle, status, count(*) AS models FROM catalogue_models
          GROUP BY provider, lifecycle, status",
    )
    .fetch_all(conn)
    .await
}

/// Models each region serves.
pub async fn served_tally(conn: &mut PgConnection) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT region, count(*) FROM catalogue_availability WHERE served GROUP BY region",
    )
    .fetch_all(conn)
    .await
}
