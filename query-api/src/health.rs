use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::time::Duration;

use domain::RegionId;
use metrics_exporter_prometheus::PrometheusHandle;
use projector::runtime::projection::Projection;
use serde_json::json;
use sqlx::PgPool;

/// What the read routes share.
#[derive(Debug, Clone)]
pub struct QueryState {
    pub pool: PgPool,
    pub metrics: Option<PrometheusHandle>,
    pub projection: Projection,
    /// This node's region.
    pub region: RegionId,
    /// Every region of the deployment, this one included.
    pub regions: Vec<RegionId>,
    /// A region not heard from for longer is reported `stale`.
    pub stale_after: Duration,
}

pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/counts", get(crate::counts::global_counts))
        .route(
            "/v1/regions/{region}/counts",
            get(crate::counts::region_counts),
        )
        .route("/v1/counts/series", get(crate::history::counts_series))
        .route("/v1/models/{*rest}", get(crate::history::models_get))
        .with_state(state)
}

/// The process is up and serving HTTP.
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready when the database answers and its migrations have been applied.
async fn readyz(State(state): State<QueryState>) -> impl IntoResponse {
    let migrated: Result<Option<i64>, _> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&state.pool)
            .await;
    match migrated {
        Ok(Some(version)) => (
            StatusCode::OK,
            axum::Json(json!({ "status": "ready", "schema_version": version })),
        ),
        Ok(None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "not ready", "reason": "migrations not applied" })),
        ),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "status": "not ready", "reason": "database unavailable" })),
            )
        }
    }
}

/// Prometheus text exposition of every metric this process records.
async fn metrics(State(state): State<QueryState>) -> impl IntoResponse {
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
