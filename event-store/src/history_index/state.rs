//! How far the index reaches, and starting it over.

use sqlx::{PgConnection, PgExecutor};

/// Every event logged with an arrival up to this is in the blocks.
pub async fn indexed_through<'e>(db: impl PgExecutor<'e>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT indexed_through FROM history_index_state")
        .fetch_one(db)
        .await
}

/// How far the index reaches against the log: reads use the index only when it holds every
/// logged event, and what a replay instead would cost grows with `logged`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCoverage {
    /// Every event logged with an arrival up to this is in the blocks.
    pub indexed_through: i64,
    /// The last arrival logged (0: nothing), about the number of events a replay reads.
    pub logged: i64,
}

impl LogCoverage {
    /// Whether the index holds every event logged so far (nothing arrived after it).
    pub fn complete(&self) -> bool {
        self.indexed_through >= self.logged
    }
}

/// The index's reach and the log's last arrival, read together.
pub async fn log_coverage<'e>(db: impl PgExecutor<'e>) -> Result<LogCoverage, sqlx::Error> {
    let (indexed_through, logged) = sqlx::query_as(
        "SELECT (SELECT indexed_through FROM history_index_state),
                (SELECT COALESCE(max(arrival), 0) FROM event_log)",
    )
    .fetch_one(db)
    .await?;
    Ok(LogCoverage {
        indexed_through,
        logged,
    })
}

pub async fn set_indexed_through(conn: &mut PgConnection, arrival: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE history_index_state SET indexed_through = $1")
        .bind(arrival)
        .execute(conn)
        .await?;
    Ok(())
}

/// Before an indexer (re)builds: the index reaches nothing until it is caught up again, and
/// only the blocks up to each actor's saved fold are kept (the rest is built again from it).
pub async fn reset(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    set_indexed_through(&mut *conn, 0).await?;
    sqlx::query(
        "DELETE FROM history_blocks AS b
          WHERE NOT EXISTS (SELECT 1 FROM history_folds AS f
                             WHERE f.region = b.region AND f.partition = b.partition
                               AND b.first_position <= f.position)",
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Drops everything indexed for one actor, to build it again from its first event.
pub async fn forget_actor(
    conn: &mut PgConnection,
    region: &str,
    partition: i32,
) -> Result<(), sqlx::Error> {
    for table in ["history_blocks", "history_folds", "history_fold_facts"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE region = $1 AND partition = $2"
        ))
        .bind(region)
        .bind(partition)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
