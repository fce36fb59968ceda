//! The catalogue follower refreshes the planner's statistics as its tables grow (the project's
//! PostgreSQL runs without autovacuum; a node catching up on a long topic otherwise kept the
//! plans of an empty table: docs/PERFORMANCE.md, "Planner statistics during catch-up"), and
//! only for the tables that changed by a tenth since their last analyze (a restarted process
//! analyzed every table again, at a cost that grew with them: docs/RELIABILITY.md), by one
//! analyzer at a time per database, and never waiting for a table someone else holds.

use std::time::Duration;

use event_store::GrowthAnalyzer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::node::{ADMIN_TOKEN, TestNode};
use crate::support::wait_until;

/// How many times `table` was analyzed. A fresh transaction each time: statistics views are
/// read once per transaction.
async fn analyze_count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = $1")
        .bind(table)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// How many times each watched table was analyzed, in the order named.
async fn analyzes(pool: &PgPool) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in ["catalogue_models", "catalogue_availability", "event_log"] {
        counts.push(analyze_count(pool, table).await);
    }
    counts
}

/// Adds models `first..=last` to the catalogue and makes the write's statistics visible at
/// once (a backend reports what it changed at most once a second otherwise).
async fn add_models(pool: &PgPool, first: i64, last: i64) {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query(
        "INSERT INTO catalogue_models
             (model_id, provider, home_region, name, lifecycle, status, version, updated_at)
         SELECT 'm-' || g, 'acme', 'eu-west', '{}'::jsonb, 'active', 'operational', 1, now()
           FROM generate_series($1::bigint, $2::bigint) g",
    )
    .bind(first)
    .bind(last)
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&mut *conn)
        .await
        .unwrap();
}

/// Keeps autovacuum off the watched tables: an analyze by it meanwhile would reset what the
/// analyzer reads.
async fn without_autovacuum(pool: &PgPool) {
    for table in ["catalogue_models", "catalogue_availability", "event_log"] {
        sqlx::query(&format!(
            "ALTER TABLE {table} SET (autovacuum_enabled = false)"
        ))
        .execute(pool)
        .await
        .unwrap();
    }
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn tables_are_analyzed_as_they_grow_and_only_when_they_changed(pool: PgPool) {
    without_autovacuum(&pool).await;
    let mut analyzer = GrowthAnalyzer::catalogue_and_event_log();
    assert_eq!(analyzes(&pool).await, [0, 0, 0]);

    add_models(&pool, 1, 5_000).await;
    analyzer.wrote(&pool, 4_999).await;
    assert_eq!(
        analyzes(&pool).await,
        [0, 0, 0],
        "below the first threshold"
    );
    analyzer.wrote(&pool, 1).await;
    assert_eq!(
        analyzes(&pool).await,
        [1, 1, 1],
        "5,000 rows: every table never analyzed is"
    );

    add_models(&pool, 5_001, 15_000).await;
    analyzer.wrote(&pool, 9_999).await;
    assert_eq!(
        analyzes(&pool).await,
        [1, 1, 1],
        "the next threshold is twice the first"
    );
    analyzer.wrote(&pool, 1).await;
    assert_eq!(
        analyzes(&pool).await,
        [2, 1, 1],
        "only the table that changed, by twice its size"
    );

    // A restarted process: its first threshold comes again, the tables are already large.
    let mut restarted = GrowthAnalyzer::catalogue_and_event_log();
    add_models(&pool, 15_001, 16_000).await;
    restarted.wrote(&pool, 5_000).await;
    assert_eq!(
        analyzes(&pool).await,
        [2, 1, 1],
        "1,000 rows more on 15,000 analyzed: less than a tenth, nothing to refresh"
    );
    add_models(&pool, 16_001, 17_000).await;
    restarted.wrote(&pool, 5_000).await;
    assert_eq!(
        analyzes(&pool).await,
        [3, 1, 1],
        "2,000 rows changed since the last analyze of 15,000: more than a tenth"
    );
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn an_analyzer_skips_its_turn_while_another_one_of_the_database_analyzes(pool: PgPool) {
    without_autovacuum(&pool).await;
    // Another analyzer (another process, or this one's other writer) at work.
    let mut other = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(GrowthAnalyzer::LOCK)
        .execute(&mut *other)
        .await
        .unwrap();

    let mut analyzer = GrowthAnalyzer::catalogue_and_event_log();
    add_models(&pool, 1, 5_000).await;
    analyzer.wrote(&pool, 5_000).await;
    assert_eq!(
        analyzes(&pool).await,
        [0, 0, 0],
        "the threshold was reached while another analyzer held the lock: no second ANALYZE"
    );

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(GrowthAnalyzer::LOCK)
        .execute(&mut *other)
        .await
        .unwrap();
    analyzer.wrote(&pool, 4_999).await;
    assert_eq!(
        analyzes(&pool).await,
        [0, 0, 0],
        "a skipped turn counts again from zero"
    );
    analyzer.wrote(&pool, 1).await;
    assert_eq!(
        analyzes(&pool).await,
        [1, 1, 1],
        "the lock free, the next turn analyzes (and the threshold was not doubled)"
    );
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn analyze_builds_no_statistics_for_stored_envelopes(pool: PgPool) {
    sqlx::query(
        "INSERT INTO event_log (region, position, partition, kafka_offset, event_id, model_id,
                                stream, sequence, event_type, schema_version, occurred_at,
                                envelope)
         SELECT 'eu-west', g, 0, g, gen_random_uuid(), 'acme/m-' || g, 'model:acme/m-' || g, 1,
                'ModelRegistered', 1, now(), jsonb_build_object('position', g, 'event', 'x')
           FROM generate_series(1, 2000) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE event_log")
        .execute(&pool)
        .await
        .unwrap();
    let analyzed: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_stats WHERE tablename = 'event_log' ORDER BY attname",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        analyzed.iter().any(|column| column == "model_id"),
        "the columns plans filter on have statistics: {analyzed:?}"
    );
    assert!(
        !analyzed.iter().any(|column| column == "envelope"),
        "no statement filters on the envelope, so ANALYZE builds nothing for it: {analyzed:?}"
    );
}

/// Registrations past the append queue's first look at its tables (5,000 events).
const PAST_THE_FIRST_LOOK: usize = 5_100;

/// Imports registrations `first..first + count` on `node` (bounded: an append queue that waits
/// for its analyzer does not answer); how many were created.
async fn import_registrations(node: &TestNode, first: usize, count: usize) -> usize {
    let lines: Vec<String> = (first..first + count)
        .map(|n| {
            let id = format!("acme/m-{n}");
            json!({
                "idempotency_key": format!("register-{id}"),
                "method": "POST",
                "path": "/v1/models",
                "body": { "id": id, "provider": "acme", "name": { "en": id } },
            })
            .to_string()
        })
        .collect();
    let import = reqwest::Client::new()
        .post(format!("{}/v1/imports", node.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(lines.join("\n"))
        .send();
    let response = tokio::time::timeout(Duration::from_secs(120), import)
        .await
        .expect("the import was not answered within 120 s")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|result| result["status"] == 201)
        .count()
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn commands_are_answered_while_a_vacuum_holds_the_analyzed_tables(pool: PgPool) {
    // Only the append queue analyzes `events` here (autovacuum would skip it while held, and
    // could analyze it after).
    sqlx::query("ALTER TABLE events SET (autovacuum_enabled = false)")
        .execute(&pool)
        .await
        .unwrap();
    let node = TestNode::start(pool.clone(), "eu-west").await;
    // The lock a VACUUM (or another session's ANALYZE) holds: writes ignore it, an ANALYZE
    // waits for it. The append queue reaches its first look at 5,000 events and analyzes.
    let mut vacuum = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN SHARE UPDATE EXCLUSIVE MODE")
        .execute(&mut *vacuum)
        .await
        .unwrap();

    let created = import_registrations(&node, 0, PAST_THE_FIRST_LOOK).await;
    assert_eq!(created, PAST_THE_FIRST_LOOK);
    let single = tokio::time::timeout(
        Duration::from_secs(30),
        node.register("acme/after-the-look", "acme"),
    )
    .await
    .expect("a command was not answered within 30 s while the analyzed table was held");
    assert_eq!(single.status, StatusCode::CREATED, "{:?}", single.body);
    assert_eq!(
        analyze_count(&pool, "events").await,
        0,
        "the table was held: its analyze was skipped"
    );

    vacuum.rollback().await.unwrap();
    // A skipped turn counts again from zero: the next look comes 5,000 events later.
    let created = import_registrations(&node, PAST_THE_FIRST_LOOK, 5_000).await;
    assert_eq!(created, 5_000);
    wait_until(
        "events analyzed at the next look, the table free",
        || async {
            let count = analyze_count(&pool, "events").await;
            if count > 0 {
                Ok(())
            } else {
                Err("events not analyzed yet".to_owned())
            }
        },
    )
    .await;
    node.stop().await;
}
