//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_problem::Problem;
use serde_json::json;

use crate::openapi::{Health, NotReady, Readiness};
use crate::state::QueryState;

/// The process is up and serving HTTP.
#[utoipa::path(
    get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "Alive", body = Health)),
)]
pub async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready when the database answers, its migrations have been applied, the projector has
/// caught up with its partitions (until then counts would be behind) and no background task
/// is failing. Otherwise 503 with a problem document listing every reason.
#[utoipa::path(
    get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: every reason, one per failing part",
            body = NotReady, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds"))),
    ),
)]
pub async fn readyz(State(state): State<QueryState>) -> Response {
    let mut reasons = Vec::new();
    let migrated: Result<Option<i64>, _> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&state.pool)
            .await;
    let schema_version = match migrated {
        Ok(Some(version)) => Some(version),
        Ok(None) => {
            reasons.push("database: migrations not applied".to_owned());
            None
        }
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            reasons.push("database: unavailable".to_owned());
            None
        }
    };
    if !state.projection.is_caught_up() {
        reasons.push("projector: catching up with its partitions".to_owned());
    }
    reasons.extend(state.health.reasons());
    match schema_version {
        Some(version) if reasons.is_empty() => axum::Json(json!({
            "status": "ready",
            "schema_version": version,
        }))
        .into_response(),
        _ => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            reasons.join("; "),
        )
        .with("reasons", json!(reasons))
        .retry_after(2)
        .into_response(),
    }
}

/// Prometheus text exposition of every metric this process records.
#[utoipa::path(
    get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String)),
)]
pub async fn metrics(State(state): State<QueryState>) -> impl IntoResponse {
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
