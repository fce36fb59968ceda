//! How far the catalogue follower has applied each region topic's partitions, committed in the
//! same transaction as the rows those records changed.

use std::collections::HashMap;

use sqlx::{PgConnection, PgExecutor};

/// The next offset to apply per (topic, partition).
pub type TopicOffsets = HashMap<(String, i32), i64>;

/// Every partition's next offset.
pub async fn load_offsets<'e>(db: impl PgExecutor<'e>) -> Result<TopicOffsets, sqlx::Error> {
    let rows: Vec<(String, i32, i64)> =
        sqlx::query_as("SELECT topic, partition, next_offset FROM catalogue_offsets")
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
}

/// Records the offsets a batch reached; an offset never moves back.
pub async fn save_offsets(
    conn: &mut PgConnection,
    reached: &TopicOffsets,
) -> Result<(), sqlx::Error> {
    for ((topic, partition), next) in reached {
        sqlx::query(
            "INSERT INTO catalogue_offsets (topic, partition, next_offset) VALUES ($1, $2, $3)
             ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset
              WHERE catalogue_offsets.next_offset < excluded.next_offset",
        )
        .bind(topic)
        .bind(partition)
        .bind(next)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
