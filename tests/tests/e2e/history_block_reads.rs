//! A history read fetches the blocks it asks for, not the whole index: `blocks_between` on a
//! large, analyzed `history_blocks` reads a few pages per actor (counted by PostgreSQL for the
//! transaction), so an `?at=` read costs the same with a day of history as with a year.

use chrono::{TimeDelta, Utc};
use event_store::history_index::{BlockKey, StoredBlock, blocks_between, upsert_blocks};
use sqlx::PgPool;

use crate::support::{AP, EU, US};

const PARTITIONS: i32 = 3;
/// Blocks per actor: with nine actors about 1,500 pages of blocks.
const BLOCKS_PER_ACTOR: i64 = 1_200;
const EVENTS_PER_BLOCK: i64 = 64;

/// `count` blocks of one actor, each `EVENTS_PER_BLOCK` positions long, a second apart.
fn actor_blocks(region: &str, partition: i32, count: i64) -> Vec<StoredBlock> {
    let start = Utc::now() - TimeDelta::days(1);
    (0..count)
        .map(|i| StoredBlock {
            region: region.to_owned(),
            partition,
            first_position: 1 + i * EVENTS_PER_BLOCK,
            last_position: (i + 1) * EVENTS_PER_BLOCK,
            reach: start + TimeDelta::seconds(i),
            events_before: i * EVENTS_PER_BLOCK,
            counters_before: i.to_le_bytes().to_vec(),
            // About what 64 encoded events take; below the size PostgreSQL moves out of line.
            entries: (0..900).map(|b| ((b * 7 + i) % 251) as u8).collect(),
            entry_count: EVENTS_PER_BLOCK as i32,
        })
        .collect()
}

/// Heap pages of `history_blocks` this transaction fetched so far.
async fn pages_fetched(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT pg_stat_get_xact_blocks_fetched('history_blocks'::regclass)")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn a_read_of_a_few_blocks_fetches_a_few_pages_of_a_large_index(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    let actors: Vec<(&str, i32)> = [EU, US, AP]
        .into_iter()
        .flat_map(|region| (0..PARTITIONS).map(move |partition| (region, partition)))
        .collect();
    for (region, partition) in &actors {
        for chunk in actor_blocks(region, *partition, BLOCKS_PER_ACTOR).chunks(400) {
            upsert_blocks(&mut conn, chunk).await.unwrap();
        }
    }
    sqlx::query("ANALYZE history_blocks")
        .execute(&mut *conn)
        .await
        .unwrap();
    let table_pages: i64 = sqlx::query_scalar(
        "SELECT pg_relation_size('history_blocks') / current_setting('block_size')::bigint",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();

    // What an `?at=` read asks: per actor, the block its prefix ends in, and for one actor a
    // range of three blocks.
    let last = 1 + (BLOCKS_PER_ACTOR - 1) * EVENTS_PER_BLOCK;
    let ranges: Vec<(BlockKey, i64)> = actors
        .iter()
        .map(|(region, partition)| {
            let first = if (*region, *partition) == (US, 1) {
                last - 2 * EVENTS_PER_BLOCK
            } else {
                last
            };
            let key = BlockKey {
                region: (*region).to_owned(),
                partition: *partition,
                first_position: first,
            };
            (key, last)
        })
        .collect();

    let mut tx = sqlx::Acquire::begin(&mut *conn).await.unwrap();
    let before = pages_fetched(&mut tx).await;
    let blocks = blocks_between(&mut *tx, &ranges).await.unwrap();
    let fetched = pages_fetched(&mut tx).await - before;
    tx.commit().await.unwrap();

    let got: Vec<(String, i32, i64, bool)> = blocks
        .iter()
        .map(|b| {
            let first_of_range = b.counters_before.is_some();
            (
                b.region.clone(),
                b.partition,
                b.first_position,
                first_of_range,
            )
        })
        .collect();
    let mut expected: Vec<(String, i32, i64, bool)> = Vec::new();
    for (key, last) in &ranges {
        for first in (key.first_position..=*last).step_by(EVENTS_PER_BLOCK as usize) {
            let first_of_range = first == key.first_position;
            expected.push((key.region.clone(), key.partition, first, first_of_range));
        }
    }
    expected.sort();
    assert_eq!(got, expected, "the asked blocks, in actor then log order");
    assert_eq!(
        blocks
            .iter()
            .find(|b| b.region == EU)
            .unwrap()
            .counters_before,
        Some((BLOCKS_PER_ACTOR - 1).to_le_bytes().to_vec()),
        "the first block of a range carries its counters"
    );
    assert!(
        table_pages > 1_000,
        "the index is large ({table_pages} pages)"
    );
    assert!(
        fetched <= 4 * i64::try_from(expected.len()).unwrap(),
        "{} blocks read by fetching {fetched} of the table's {table_pages} pages",
        expected.len()
    );
}
