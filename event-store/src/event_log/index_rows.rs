//! The event log as the history indexer reads it: one actor's rows in position order (to
//! build or rebuild its blocks), and every row after an arrival (to keep up).

use sqlx::PgExecutor;

use super::replay::ReplayRow;

/// A logged event with its arrival number.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IndexRow {
    pub arrival: i64,
    #[sqlx(flatten)]
    pub row: ReplayRow,
}

/// An [`IndexRow`] query: its columns, then `$rest`.
macro_rules! index_rows {
    ($rest:literal) => {
        concat!(
            "SELECT arrival, region, partition, kafka_offset, position, occurred_at, event_id,
                    stream, sequence, model_id, (envelope->'event')::text AS event
               FROM event_log ",
            $rest
        )
    };
}

const ROWS_AFTER: &str = index_rows!("WHERE arrival > $1 ORDER BY arrival LIMIT $2");
const ACTOR_ROWS: &str = index_rows!(
    "WHERE region = $1 AND partition = $2 AND position > $3 AND arrival <= $4
     ORDER BY position LIMIT $5"
);

/// Up to `limit` of actor (`region`, `partition`)'s rows after `after_position`, up to arrival
/// `through`, in position order.
pub async fn actor_rows<'e>(
    db: impl PgExecutor<'e>,
    region: &str,
    partition: i32,
    after_position: i64,
    through: i64,
    limit: i64,
) -> Result<Vec<IndexRow>, sqlx::Error> {
    sqlx::query_as(ACTOR_ROWS)
        .bind(region)
        .bind(partition)
        .bind(after_position)
        .bind(through)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Up to `limit` rows after arrival `after`, in arrival order.
pub async fn rows_after<'e>(
    db: impl PgExecutor<'e>,
    after: i64,
    limit: i64,
) -> Result<Vec<IndexRow>, sqlx::Error> {
    sqlx::query_as(ROWS_AFTER)
        .bind(after)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// The newest arrival logged (0: none).
pub async fn max_arrival<'e>(db: impl PgExecutor<'e>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(max(arrival), 0) FROM event_log")
        .fetch_one(db)
        .await
}

/// Every actor (region, partition) the log holds, by a skip scan of the actor index.
pub async fn actors<'e>(db: impl PgExecutor<'e>) -> Result<Vec<(String, i32)>, sqlx::Error> {
    sqlx::query_as(
        "WITH RECURSIVE actors (region, partition) AS (
             (SELECT region, partition FROM event_log ORDER BY region, partition LIMIT 1)
             UNION ALL
             SELECT next.region, next.partition FROM actors AS a,
                 LATERAL (SELECT l.region, l.partition FROM event_log AS l
                           WHERE (l.region, l.partition) > (a.region, a.partition)
                           ORDER BY l.region, l.partition LIMIT 1) AS next
         )
         SELECT region, partition FROM actors",
    )
    .fetch_all(db)
    .await
}

/// Whether actor (`region`, `partition`) logged a row at or before `position` after arrival
/// `after`: one that arrived late, out of its log order (the actor's index must be rebuilt).
pub async fn arrived_out_of_order<'e>(
    db: impl PgExecutor<'e>,
    region: &str,
    partition: i32,
    position: i64,
    after: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM event_log
                         WHERE region = $1 AND partition = $2 AND position <= $3
                           AND arrival > $4)",
    )
    .bind(region)
    .bind(partition)
    .bind(position)
    .bind(after)
    .fetch_one(db)
    .await
}
