//! The read side's pool: its own connections on the node's database, and a statement timeout
//! PostgreSQL enforces on every read, while the write side's pool has none.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use region_node::{Settings, database};
use sqlx::PgPool;

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn reads_longer_than_the_timeout_are_cancelled_and_writes_are_not(writes: PgPool) {
    let mut settings = Settings::load(None).unwrap();
    settings.database.read_statement_timeout = Duration::from_millis(300);
    settings.database.read_max_connections = 2;
    let reads = database::read_pool(&writes, &settings.database);

    let shown: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&reads)
        .await
        .unwrap();
    assert_eq!(shown, "300ms");
    let error = sqlx::query("SELECT pg_sleep(2)")
        .execute(&reads)
        .await
        .unwrap_err();
    let code = error.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("57014"), "{error}");
    // The read pool is still usable after a cancelled read.
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&reads)
        .await
        .unwrap();
    assert_eq!(one, 1);

    // The same statement on the write side's pool runs to its end.
    let shown: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&writes)
        .await
        .unwrap();
    assert_eq!(shown, "0");
    sqlx::query("SELECT pg_sleep(0.5)")
        .execute(&writes)
        .await
        .unwrap();
    reads.close().await;
}
