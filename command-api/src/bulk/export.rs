//! `GET /v1/exports`: the catalogue as import lines (register, status, lifecycle, serve), read
//! from one snapshot, so that importing them rebuilds the same catalogue and counts elsewhere.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use domain::{Lifecycle, OperationalStatus};
use event_store::catalogue::{self, CatalogueRow, ModelFilter};
use futures::StreamExt;
use serde_json::{Value, json};
use sqlx::{Postgres, Transaction};

use crate::auth::Principal;
use crate::problem::ApiError;
use crate::routes::CommandState;

/// Models read per page of the snapshot.
const PAGE: i64 = 2000;

/// Export the catalogue as import lines.
#[utoipa::path(
    get, path = "/v1/exports", tag = "commands", operation_id = "export",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Import lines (NDJSON), model by model in id order: its \
            registration with its home region, status, lifecycle, then the regions serving it. \
            Import them into each region's node: each takes the lines its region owns.",
            body = super::ImportLine, content_type = "application/x-ndjson"),
        crate::openapi::Unauthorized, crate::openapi::Unavailable,
    ),
)]
pub(crate) async fn export(State(state): State<CommandState>, _principal: Principal) -> Response {
    let snapshot = match snapshot(&state).await {
        Ok(tx) => tx,
        Err(error) => {
            tracing::warn!(%error, "export: the catalogue is unavailable");
            return ApiError::Unavailable.into_response();
        }
    };
    metrics::counter!("export_requests_total").increment(1);
    // Fused: the body may be polled once more after its end.
    let pages = futures::stream::unfold(Some((snapshot, None)), next_page).fuse();
    let mut response = Response::new(Body::from_stream(pages));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// A read-only transaction that sees one state of the catalogue for the whole export.
async fn snapshot(state: &CommandState) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = state.service.store().pool().begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

type Cursor = Option<(Transaction<'static, Postgres>, Option<domain::ModelId>)>;

/// The lines of the next page of models. A failure mid-export ends the body early with an
/// error, so the client sees a broken transfer rather than a short but valid-looking file.
async fn next_page(cursor: Cursor) -> Option<(Result<Bytes, std::io::Error>, Cursor)> {
    let (mut tx, after) = cursor?;
    let filter = ModelFilter {
        after,
        ..ModelFilter::default()
    };
    let rows = match catalogue::list(&mut *tx, &filter, PAGE).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, "export stopped: the catalogue became unavailable");
            return Some((Err(std::io::Error::other(error)), None));
        }
    };
    let last = rows
        .last()
        .and_then(|row| domain::ModelId::parse(&row.model_id).ok())?;
    let mut out = BytesMut::new();
    for row in &rows {
        for line in model_lines(row) {
            put_line(&mut out, &line);
        }
    }
    for row in &rows {
        for line in serve_lines(row) {
            put_line(&mut out, &line);
        }
    }
    Some((Ok(out.freeze()), Some((tx, Some(last)))))
}

fn put_line(out: &mut BytesMut, line: &Value) {
    if let Ok(bytes) = serde_json::to_vec(line) {
        out.put_slice(&bytes);
        out.put_u8(b'\n');
    }
}

/// A line's key names the model, the operation and the row's version, so re-exporting an
/// unchanged catalogue gives the same keys (an exact re-import) and a changed one new keys.
fn key(row: &CatalogueRow, operation: &str) -> String {
    format!("export:{}:{operation}:v{}", row.model_id, row.version)
}

/// Registration with the current names, then status and lifecycle as they stand.
pub(crate) fn model_lines(row: &CatalogueRow) -> Vec<Value> {
    let mut body = json!({
        "id": row.model_id,
        "provider": row.provider,
        "name": row.name.0,
        "home_region": row.home_region,
    });
    if let (Some(description), Some(fields)) = (&row.description, body.as_object_mut()) {
        fields.insert("description".into(), json!(description.0));
    }
    let mut lines = vec![json!({
        "idempotency_key": key(row, "register"),
        "method": "POST",
        "path": "/v1/models",
        "body": body,
    })];
    if row.status != OperationalStatus::Operational.as_str() {
        lines.push(json!({
            "idempotency_key": key(row, "status"),
            "method": "PUT",
            "path": format!("/v1/models/{}/status", row.model_id),
            "body": { "status": row.status },
        }));
    }
    let lifecycle = if row.lifecycle == Lifecycle::Active.as_str() {
        Some("activate")
    } else if row.lifecycle == Lifecycle::Retired.as_str() {
        Some("retire")
    } else {
        None
    };
    if let Some(action) = lifecycle {
        lines.push(json!({
            "idempotency_key": key(row, action),
            "method": "POST",
            "path": format!("/v1/models/{}/{action}", row.model_id),
        }));
    }
    lines
}

/// One line per region serving the model (none for a retired one: it cannot be served).
pub(crate) fn serve_lines(row: &CatalogueRow) -> Vec<Value> {
    if row.lifecycle == Lifecycle::Retired.as_str() {
        return Vec::new();
    }
    row.available_in
        .iter()
        .map(|region| {
            json!({
                "idempotency_key": key(row, &format!("serve:{region}")),
                "method": "PUT",
                "path": format!("/v1/regions/{region}/models/{}", row.model_id),
            })
        })
        .collect()
}
