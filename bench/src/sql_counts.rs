//! The replaced platform's way of answering counts, as a baseline for `GET /v1/counts`: a
//! `models` table (one row per model, indexed on `is_active` and `provider`) counted with SQL
//! on every request. `aigo-bench sql-counts-fill` creates and fills the table;
//! `aigo-bench sql-counts-server` answers `GET /v1/counts` from it (scripts/bench-sql-counts.sh).
//!
//! The rows are the catalogue that `fill_events --shape catalogue` writes as events: model `i`
//! is `synth/model-{i}`, its provider `provider-NN` with `NN = floor(40 h³)` for a hash `h` of
//! `i` (40 providers, skewed), degraded if `i % 50 = 7`, in outage if `i % 500 = 3`, active
//! unless `i % 5 = 0`, none retired. Both sides therefore answer the same numbers.
//!
//! Each request runs one query, the cheapest form SQL has for this answer: a single scan with
//! `GROUPING SETS ((provider), (status))` (a platform issuing one query per figure scans more).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

/// The replaced platform's table, and the indexes it had.
const SCHEMA: &[&str] = &[
    "DROP TABLE IF EXISTS models",
    "CREATE TABLE models (
        id text PRIMARY KEY,
        provider text NOT NULL,
        home_region text NOT NULL,
        name text NOT NULL,
        description text,
        status text NOT NULL,
        is_active boolean NOT NULL,
        retired boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )",
];

/// Rows `0..$1`, the same catalogue as `fill_events --shape catalogue` (the provider hash uses
/// the same float operations in the same order).
const FILL: &str = "
    INSERT INTO models (id, provider, home_region, name, status, is_active)
    SELECT 'synth/model-' || i,
           'provider-' || lpad(least(floor(40 * (h * h * h)), 39)::int::text, 2, '0'),
           'synth',
           'Model ' || i,
           CASE WHEN i % 500 = 3 THEN 'outage' WHEN i % 50 = 7 THEN 'degraded'
                ELSE 'operational' END,
           i % 5 <> 0
    FROM (SELECT i, ((i * 2654435761) % 4294967296)::float8 / 4294967296.0 AS h
          FROM generate_series(0::bigint, $1 - 1) AS i) AS numbered";

const INDEXES: &[&str] = &[
    "CREATE INDEX models_is_active ON models (is_active)",
    "CREATE INDEX models_provider ON models (provider)",
    "VACUUM ANALYZE models",
];

/// What every request runs: one scan, two groupings.
const COUNTS: &str = "
    SELECT GROUPING(provider) = 0 AS per_provider, provider, status,
           count(*) FILTER (WHERE NOT retired) AS total,
           count(*) FILTER (WHERE is_active AND NOT retired) AS active,
           count(*) FILTER (WHERE retired) AS retired
    FROM models
    GROUP BY GROUPING SETS ((provider), (status))";

/// What filling took and how the table turned out.
#[derive(Debug, Serialize)]
pub struct FillReport {
    pub rows: i64,
    pub insert_s: f64,
    pub indexes_s: f64,
    /// `pg_total_relation_size('models')`: table, indexes and TOAST.
    pub total_bytes: i64,
    /// The plan of the per-request query (`EXPLAIN`).
    pub plan: Vec<String>,
}

/// Creates (or re-creates) the `models` table with `models` rows, its indexes and statistics.
pub async fn fill(database_url: &str, models: u64) -> anyhow::Result<FillReport> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(database_url)
        .await
        .context("connecting to the database")?;
    for statement in SCHEMA {
        sqlx::query(statement).execute(&pool).await?;
    }
    let started = Instant::now();
    let rows = i64::try_from(models).context("too many models")?;
    sqlx::query(FILL)
        .bind(rows)
        .execute(&pool)
        .await
        .context("filling models")?;
    let insert_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for statement in INDEXES {
        sqlx::query(statement).execute(&pool).await?;
    }
    let indexes_s = started.elapsed().as_secs_f64();
    let (rows, total_bytes): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM models), pg_total_relation_size('models')")
            .fetch_one(&pool)
            .await?;
    let plan = sqlx::query_scalar(&format!("EXPLAIN {COUNTS}"))
        .fetch_all(&pool)
        .await?;
    pool.close().await;
    Ok(FillReport {
        rows,
        insert_s,
        indexes_s,
        total_bytes,
        plan,
    })
}

/// Per-provider counts, as in `/v1/counts`.
#[derive(Debug, Default, Serialize)]
pub struct ProviderCounts {
    pub total: i64,
    pub active: i64,
}

/// The answer: the count fields of `/v1/counts` (no regions, no freshness: the table has
/// neither), plus how long the query took.
#[derive(Debug, Default, Serialize)]
pub struct SqlCounts {
    pub total: i64,
    pub active: i64,
    pub inactive: i64,
    pub retired: i64,
    pub by_status: BTreeMap<String, i64>,
    pub by_provider: BTreeMap<String, ProviderCounts>,
    pub query_ms: f64,
}

/// Counts the table: one query, run on a pooled connection.
pub async fn count(pool: &PgPool) -> Result<SqlCounts, sqlx::Error> {
    let started = Instant::now();
    let rows = sqlx::query(COUNTS).fetch_all(pool).await?;
    let mut counts = SqlCounts::default();
    for row in rows {
        let (total, active, retired): (i64, i64, i64) = (
            row.try_get("total")?,
            row.try_get("active")?,
            row.try_get("retired")?,
        );
        if row.try_get("per_provider")? {
            let provider: String = row.try_get("provider")?;
            counts
                .by_provider
                .insert(provider, ProviderCounts { total, active });
        } else {
            // Each model is in exactly one status group: the status rows sum to the totals.
            let status: String = row.try_get("status")?;
            counts.total += total;
            counts.active += active;
            counts.retired += retired;
            counts.by_status.insert(status, total);
        }
    }
    counts.inactive = counts.total - counts.active;
    counts.query_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(counts)
}

async fn counts_handler(
    State(pool): State<PgPool>,
) -> Result<Json<SqlCounts>, (StatusCode, String)> {
    count(&pool)
        .await
        .map(Json)
        .map_err(|error| (StatusCode::SERVICE_UNAVAILABLE, error.to_string()))
}

/// Serves `GET /v1/counts` (and `GET /readyz`) on `listen` until SIGTERM or Ctrl-C, with at most
/// `pool` database connections (requests beyond wait for one, as on the replaced platform).
pub async fn serve(database_url: &str, listen: SocketAddr, pool: u32) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(pool.max(1))
        .acquire_timeout(Duration::from_secs(60))
        .connect(database_url)
        .await
        .context("connecting to the database")?;
    let app = axum::Router::new()
        .route("/v1/counts", get(counts_handler))
        .route("/readyz", get(|| async { "ready" }))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .context("serving")?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
