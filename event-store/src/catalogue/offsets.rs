//! How far the catalogue follower has applied each region topic's partitions, committed in the
//! same transaction as the rows those records changed.

use std::collections::HashMap;

use sqlx::{PgConnection, PgExecutor};

use crate::ReadPoint;

/// The read point per (topic, partition).
pub type TopicOffsets = HashMap<(String, i32), ReadPoint>;

/// Every partition's read point.
pub async fn load_offsets<'e>(db: impl PgExecutor<'e>) -> Result<TopicOffsets, sqlx::Error> {
    let rows: Vec<(String, i32, i64, i32, Option<i64>)> = sqlx::query_as(
        "SELECT topic, partition, next_offset, incarnation, last_record_ms FROM catalogue_offsets",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(topic, partition, next_offset, incarnation, last_record_ms)| {
                let point = ReadPoint {
                    incarnation,
                    next_offset,
                    last_record_ms,
                };
                ((topic, partition), point)
            },
        )
        .collect())
}

/// Records the read points a batch reached; a read point never moves back (a later
/// incarnation of the topic is ahead of any offset of an earlier one).
pub async fn save_offsets(
    conn: &mut PgConnection,
    reached: &TopicOffsets,
) -> Result<(), sqlx::Error> {
    for ((topic, partition), point) in reached {
        sqlx::query(
            "INSERT INTO catalogue_offsets (topic, partition, next_offset, incarnation, last_record_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (topic, partition) DO UPDATE
                SET next_offset = excluded.next_offset, incarnation = excluded.incarnation,
                    last_record_ms = excluded.last_record_ms
              WHERE (catalogue_offsets.incarnation, catalogue_offsets.next_offset)
                  < (excluded.incarnation, excluded.next_offset)",
        )
        .bind(topic)
        .bind(partition)
        .bind(point.next_offset)
        .bind(point.incarnation)
        .bind(point.last_record_ms)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
