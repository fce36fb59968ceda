//! Folds the indexer resumes from: each actor's, at the end of one of its blocks.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredFold {
    pub region: String,
    pub partition: i32,
    /// The last event folded: a block's last.
    pub position: i64,
    /// Events that reached the fold so far.
    pub events: i64,
    /// The latest event time folded.
    pub reach: DateTime<Utc>,
    /// The newest arrival folded.
    pub through_arrival: i64,
    /// `PartitionFold::snapshot`.
    pub fold: Vec<u8>,
}

pub async fn save_folds(conn: &mut PgConnection, folds: &[StoredFold]) -> Result<(), sqlx::Error> {
    for fold in folds {
        sqlx::query(
            "INSERT INTO history_folds (region, partition, position, events, reach,
                                        through_arrival, fold)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (region, partition) DO UPDATE
                SET position = excluded.position, events = excluded.events,
                    reach = excluded.reach, through_arrival = excluded.through_arrival,
                    fold = excluded.fold",
        )
        .bind(&fold.region)
        .bind(fold.partition)
        .bind(fold.position)
        .bind(fold.events)
        .bind(fold.reach)
        .bind(fold.through_arrival)
        .bind(&fold.fold)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn load_folds<'e>(db: impl PgExecutor<'e>) -> Result<Vec<StoredFold>, sqlx::Error> {
    sqlx::query_as(
        "SELECT region, partition, position, events, reach, through_arrival, fold
           FROM history_folds ORDER BY region, partition",
    )
    .fetch_all(db)
    .await
}
