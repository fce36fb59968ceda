//! Partition checkpoints: a fold's snapshot and the next offset to consume, written together.

use std::collections::HashMap;

use domain::RegionId;
use sqlx::{PgConnection, PgPool};

use crate::PartitionFold;
use crate::error::CodecError;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored checkpoint of {topic}/{partition} is unreadable: {source}")]
    Corrupt {
        topic: String,
        partition: i32,
        #[source]
        source: CodecError,
    },
}

/// The fold of `topic`/`partition` as last committed and the offset to resume from.
pub async fn load(
    pool: &PgPool,
    topic: &str,
    partition: i32,
) -> Result<Option<(PartitionFold, i64)>, CheckpointError> {
    let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT next_offset, state FROM projector_checkpoints WHERE topic = $1 AND partition = $2",
    )
    .bind(topic)
    .bind(partition)
    .fetch_optional(pool)
    .await?;
    row.map(|(next, bytes)| {
        PartitionFold::restore(&bytes)
            .map(|fold| (fold, next))
            .map_err(|source| CheckpointError::Corrupt {
                topic: topic.to_owned(),
                partition,
                source,
            })
    })
    .transpose()
}

/// Writes one checkpoint inside the caller's transaction. Never moves a partition backwards:
/// a consumer that lost the partition in a rebalance and commits late cannot undo the newer
/// owner's progress.
pub async fn save(
    conn: &mut PgConnection,
    region: &RegionId,
    topic: &str,
    partition: i32,
    next_offset: i64,
    snapshot: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projector_checkpoints (region, topic, partition, next_offset, state, updated_at)
         VALUES ($1, $2, $3, $4, $5, now())
         ON CONFLICT (topic, partition) DO UPDATE
            SET next_offset = excluded.next_offset, state = excluded.state,
                updated_at = excluded.updated_at
          WHERE projector_checkpoints.next_offset <= excluded.next_offset",
    )
    .bind(region.as_str())
    .bind(topic)
    .bind(partition)
    .bind(next_offset)
    .bind(snapshot)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every committed partition of `topic` and its next offset: where assignments start.
pub async fn next_offsets(
    pool: &PgPool,
    topic: &str,
) -> Result<HashMap<(String, i32), i64>, sqlx::Error> {
    let rows: Vec<(i32, i64)> =
        sqlx::query_as("SELECT partition, next_offset FROM projector_checkpoints WHERE topic = $1")
            .bind(topic)
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(partition, next)| ((topic.to_owned(), partition), next))
        .collect())
}
