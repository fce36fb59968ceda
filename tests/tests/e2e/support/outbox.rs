//! Database side of the tests: append events + outbox rows the way the event store does (one
//! transaction, increasing positions, `pg_notify`), and check what the relay marked.

use sqlx::PgPool;

/// A row appended by [`append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub position: i64,
    pub key: String,
    pub payload: Vec<u8>,
}

/// Appends `count` events for keys `model-0 .. model-{keys-1}` (round robin) to `topic`.
pub async fn append(pool: &PgPool, topic: &str, count: i64, keys: i64) -> Vec<Appended> {
    let mut tx = pool.begin().await.unwrap();
    // Serialize appends like the event store does, so positions are commit order.
    sqlx::query("SELECT pg_advisory_xact_lock(42)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let base: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO events (position, event_id, stream, sequence, model_id, event_type, \
                             schema_version, occurred_at, envelope) \
         SELECT $1 + g, gen_random_uuid(), 'model/model-' || ((($1 + g) % $3)), $1 + g, \
                'test/model-' || ((($1 + g) % $3)), 'ModelRegistered', 1, now(), \
                jsonb_build_object('position', $1 + g, 'model', 'test/model-' || (($1 + g) % $3)) \
         FROM generate_series(1, $2) AS g",
    )
    .bind(base)
    .bind(count)
    .bind(keys)
    .execute(&mut *tx)
    .await
    .unwrap();
    let rows: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
        "INSERT INTO outbox (position, topic, message_key, payload) \
         SELECT position, $2, model_id, convert_to(envelope::text, 'UTF8') \
         FROM events WHERE position > $1 ORDER BY position \
         RETURNING position, message_key, payload",
    )
    .bind(base)
    .bind(topic)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    sqlx::query("SELECT pg_notify('outbox', '')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut appended: Vec<Appended> = rows
        .into_iter()
        .map(|(position, key, payload)| Appended {
            position,
            key,
            payload,
        })
        .collect();
    appended.sort_by_key(|a| a.position);
    assert_eq!(appended.len(), usize::try_from(count).unwrap());
    appended
}

/// Rows not yet marked published.
pub async fn unpublished(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until every outbox row is marked published.
pub async fn wait_all_published(pool: &PgPool) {
    super::wait_until("every outbox row marked published", || async {
        match unpublished(pool).await {
            0 => Ok(()),
            left => Err(format!("{left} unpublished")),
        }
    })
    .await;
}
