//! The catalogue follower refreshes the planner's statistics as its tables grow (the project's
//! PostgreSQL runs without autovacuum; a node catching up on a long topic otherwise kept the
//! plans of an empty table: docs/PERFORMANCE.md, "Planner statistics during catch-up").

use event_store::GrowthAnalyzer;
use sqlx::PgPool;

/// How many times each table was analyzed by hand, in the order named.
async fn analyzes(pool: &PgPool) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in ["catalogue_models", "catalogue_availability", "event_log"] {
        // A fresh transaction each time: statistics views are read once per transaction.
        let count: i64 =
            sqlx::query_scalar("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = $1")
                .bind(table)
                .fetch_one(pool)
                .await
                .unwrap();
        counts.push(count);
    }
    counts
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn tables_are_analyzed_each_time_the_rows_written_double(pool: PgPool) {
    let mut analyzer = GrowthAnalyzer::catalogue_and_event_log();
    assert_eq!(analyzes(&pool).await, [0, 0, 0]);

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
        "5,000 rows: the first analyze"
    );

    analyzer.wrote(&pool, 9_999).await;
    assert_eq!(
        analyzes(&pool).await,
        [1, 1, 1],
        "the next threshold is twice the first"
    );
    analyzer.wrote(&pool, 1).await;
    assert_eq!(analyzes(&pool).await, [2, 2, 2]);

    analyzer.wrote(&pool, 19_999).await;
    assert_eq!(analyzes(&pool).await, [2, 2, 2]);
    analyzer.wrote(&pool, 50_000).await;
    assert_eq!(
        analyzes(&pool).await,
        [3, 3, 3],
        "one analyze however far past it"
    );
}
