//! SQL on the `outbox` table. Nothing here touches Kafka.

use sqlx::PgPool;

/// An outbox row awaiting publication.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxRow {
    pub position: i64,
    pub topic: String,
    pub message_key: String,
    pub payload: Vec<u8>,
}

/// The oldest `limit` unpublished rows, in position (= commit) order.
pub async fn fetch_unpublished(pool: &PgPool, limit: u32) -> Result<Vec<OutboxRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT position, topic, message_key, payload FROM outbox \
         WHERE published_at IS NULL ORDER BY position LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
}

/// Marks rows published; returns how many were still unpublished. Notifies
/// [`RELAYED_CHANNEL`](crate::RELAYED_CHANNEL) in the same statement: the rows are on their
/// topic, and the region's idle projectors start reading again.
pub async fn mark_published(pool: &PgPool, positions: &[i64]) -> Result<u64, sqlx::Error> {
    if positions.is_empty() {
        return Ok(0);
    }
    let done: i64 = sqlx::query_scalar(
        "WITH done AS (UPDATE outbox SET published_at = now() \
                        WHERE position = ANY($1) AND published_at IS NULL RETURNING 1) \
         SELECT (SELECT count(*) FROM done), pg_notify($2, '')",
    )
    .bind(positions)
    .bind(crate::RELAYED_CHANNEL)
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(done).unwrap_or(0))
}

/// Marks every published row of `topic` unpublished again, so the relay sends the topic's
/// whole history once more, in position order, before anything appended later; returns how
/// many. Notifies [`OUTBOX_CHANNEL`](crate::OUTBOX_CHANNEL) in the same statement, so a
/// running relay starts at once.
pub async fn mark_unpublished(pool: &PgPool, topic: &str) -> Result<u64, sqlx::Error> {
    let marked: i64 = sqlx::query_scalar(
        "WITH again AS (UPDATE outbox SET published_at = NULL
                         WHERE topic = $1 AND published_at IS NOT NULL RETURNING 1)
         SELECT (SELECT count(*) FROM again), pg_notify($2, '')",
    )
    .bind(topic)
    .bind(crate::OUTBOX_CHANNEL)
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(marked).unwrap_or(0))
}

/// True if any row of `topic` was published.
pub(crate) async fn has_published(pool: &PgPool, topic: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE topic = $1 AND published_at IS NOT NULL)",
    )
    .bind(topic)
    .fetch_one(pool)
    .await
}

/// Number of unpublished rows (served by the partial index `outbox_unpublished`).
pub async fn pending_rows(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
}

/// Topics that have unpublished rows.
pub(crate) async fn unpublished_topics(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT topic FROM outbox WHERE published_at IS NULL")
        .fetch_all(pool)
        .await
}

/// Unpublished rows of `topic` at or below `max_position`: (position, key), in position order.
pub(crate) async fn unpublished_keys(
    pool: &PgPool,
    topic: &str,
    max_position: i64,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT position, message_key FROM outbox \
         WHERE published_at IS NULL AND topic = $1 AND position <= $2 ORDER BY position",
    )
    .bind(topic)
    .bind(max_position)
    .fetch_all(pool)
    .await
}
