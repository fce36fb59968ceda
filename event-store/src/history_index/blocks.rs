//! Blocks: written by the indexer, read by history queries (the block each instant's prefix
//! ends in, per actor).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

/// One block as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredBlock {
    pub region: String,
    pub partition: i32,
    pub first_position: i64,
    pub last_position: i64,
    pub reach: DateTime<Utc>,
    pub events_before: i64,
    pub counters_before: Vec<u8>,
    pub entries: Vec<u8>,
    pub entry_count: i32,
}

/// Which block: its actor and first position.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::FromRow)]
pub struct BlockKey {
    pub region: String,
    pub partition: i32,
    pub first_position: i64,
}

/// Writes `blocks`, replacing any stored under the same key (a block grows until it is full).
pub async fn upsert_blocks(
    conn: &mut PgConnection,
    blocks: &[StoredBlock],
) -> Result<(), sqlx::Error> {
    if blocks.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&StoredBlock) -> i64| blocks.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO history_blocks (region, partition, first_position, last_position, reach,
                                     events_before, counters_before, entries, entry_count)
         SELECT * FROM UNNEST($1::text[], $2::int[], $3::bigint[], $4::bigint[],
                              $5::timestamptz[], $6::bigint[], $7::bytea[], $8::bytea[],
                              $9::int[])
         ON CONFLICT (region, partition, first_position) DO UPDATE
            SET last_position = excluded.last_position, reach = excluded.reach,
                events_before = excluded.events_before,
                counters_before = excluded.counters_before, entries = excluded.entries,
                entry_count = excluded.entry_count",
    )
    .bind(blocks.iter().map(|b| b.region.clone()).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.partition).collect::<Vec<_>>())
    .bind(column(|b| b.first_position))
    .bind(column(|b| b.last_position))
    .bind(blocks.iter().map(|b| b.reach).collect::<Vec<_>>())
    .bind(column(|b| b.events_before))
    .bind(
        blocks
            .iter()
            .map(|b| b.counters_before.clone())
            .collect::<Vec<_>>(),
    )
    .bind(blocks.iter().map(|b| b.entries.clone()).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.entry_count).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// For each instant of `points` (by index) and each actor (of `only` region, or all): the
/// block that instant's prefix ends in (the first whose reach is after it), or the actor's
/// last block when the whole actor is at or before it.
pub async fn cut_blocks<'e>(
    db: impl PgExecutor<'e>,
    points: &[DateTime<Utc>],
    only: Option<&str>,
) -> Result<Vec<(i64, BlockKey)>, sqlx::Error> {
    let rows: Vec<(i64, String, i32, i64)> = sqlx::query_as(
        // Actors by a skip scan of the primary key: a DISTINCT would read every block.
        "WITH RECURSIVE actors (region, partition) AS (
             (SELECT region, partition FROM history_blocks
               WHERE $2::text IS NULL OR region = $2
               ORDER BY region, partition LIMIT 1)
             UNION ALL
             SELECT next.region, next.partition FROM actors AS a,
                 LATERAL (SELECT b.region, b.partition FROM history_blocks AS b
                           WHERE (b.region, b.partition) > (a.region, a.partition)
                             AND ($2::text IS NULL OR b.region = $2)
                           ORDER BY b.region, b.partition LIMIT 1) AS next),
         points AS (SELECT t, i FROM UNNEST($1::timestamptz[]) WITH ORDINALITY AS p(t, i))
         SELECT p.i - 1, a.region, a.partition, b.first_position
           FROM points AS p CROSS JOIN actors AS a
           CROSS JOIN LATERAL (
               (SELECT first_position FROM history_blocks AS b
                 WHERE b.region = a.region AND b.partition = a.partition AND b.reach > p.t
                 ORDER BY b.reach, b.first_position LIMIT 1)
               UNION ALL
               (SELECT first_position FROM history_blocks AS b
                 WHERE b.region = a.region AND b.partition = a.partition
                 ORDER BY b.first_position DESC LIMIT 1)
               LIMIT 1) AS b",
    )
    .bind(points)
    .bind(only)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(point, region, partition, first_position)| {
            (
                point,
                BlockKey {
                    region,
                    partition,
                    first_position,
                },
            )
        })
        .collect())
}

/// One block of a range: its reach and events, and its counters only where asked for.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RangeBlock {
    pub region: String,
    pub partition: i32,
    pub first_position: i64,
    pub reach: DateTime<Utc>,
    pub events_before: i64,
    /// Only for the first block of each range.
    pub counters_before: Option<Vec<u8>>,
    pub entries: Vec<u8>,
}

/// Every block of each actor from `first` to `last` (both block keys of that actor, `first` at
/// or before `last`), in actor then log order. Reads only those blocks, whatever the index
/// holds.
pub async fn blocks_between<'e>(
    db: impl PgExecutor<'e>,
    ranges: &[(BlockKey, i64)],
) -> Result<Vec<RangeBlock>, sqlx::Error> {
    sqlx::query_as(
        // One primary-key range per actor. As a plain join the planner preferred hashing the
        // ranges against a scan of every block (the soak's `?at=` reads: 11,000 blocks read
        // for 9); `OFFSET 0` keeps the lateral subquery from being flattened into that join.
        "SELECT b.region, b.partition, b.first_position, b.reach, b.events_before,
                CASE WHEN b.first_position = k.first THEN b.counters_before END AS counters_before,
                b.entries
           FROM UNNEST($1::text[], $2::int[], $3::bigint[], $4::bigint[])
                AS k(region, partition, first, last)
          CROSS JOIN LATERAL (
                SELECT h.region, h.partition, h.first_position, h.reach, h.events_before,
                       h.counters_before, h.entries
                  FROM history_blocks AS h
                 WHERE h.region = k.region AND h.partition = k.partition
                   AND h.first_position BETWEEN k.first AND k.last
                OFFSET 0) AS b
          ORDER BY b.region, b.partition, b.first_position",
    )
    .bind(
        ranges
            .iter()
            .map(|(k, _)| k.region.clone())
            .collect::<Vec<_>>(),
    )
    .bind(ranges.iter().map(|(k, _)| k.partition).collect::<Vec<_>>())
    .bind(
        ranges
            .iter()
            .map(|(k, _)| k.first_position)
            .collect::<Vec<_>>(),
    )
    .bind(ranges.iter().map(|(_, last)| *last).collect::<Vec<_>>())
    .fetch_all(db)
    .await
}
