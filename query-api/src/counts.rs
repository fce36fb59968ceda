//! `GET /v1/counts` and `GET /v1/regions/{region}/counts`: served from the merged CRDT view,
//! never by counting rows, with freshness per region and an ETag per projection version.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::{OperationalStatus, RegionId};
use projector::{CountSnapshot, GlobalView, ProviderCounts};
use serde::Serialize;
use serde_json::json;

use crate::health::QueryState;

/// How fresh one region's numbers are at this node.
#[derive(Debug, Serialize)]
pub struct RegionFreshness {
    pub available: i64,
    /// Position (in the region's event store) and time of the last event folded.
    pub last_event_position: Option<u64>,
    pub last_event_at: Option<DateTime<Utc>>,
    /// Last Kafka offset folded, per partition of the region's topic.
    pub offsets: BTreeMap<i32, Option<i64>>,
    /// When this node last received a state from the region (changed or not).
    pub last_heard_at: Option<DateTime<Utc>>,
    pub age_ms: Option<i64>,
    /// Not heard from within the configured bound.
    pub stale: bool,
}

#[derive(Debug, Serialize)]
pub struct CountsBody {
    pub total: i64,
    pub active: i64,
    pub inactive: i64,
    pub retired: i64,
    pub by_status: BTreeMap<OperationalStatus, i64>,
    pub by_provider: BTreeMap<String, ProviderCounts>,
    pub regions: BTreeMap<RegionId, RegionFreshness>,
    /// Projection version at this node; also the ETag.
    pub version: u64,
    pub node_region: RegionId,
    pub generated_at: DateTime<Utc>,
}

pub async fn global_counts(
    State(state): State<QueryState>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = crate::history::counts_at_from_query(&state, &uri).await {
        return answer;
    }
    let (view, version) = state.projection.read().await;
    if not_modified(&headers, version) {
        return not_modified_response(version);
    }
    let body = body(&state, &view, view.totals(), version, None);
    with_etag(body, version)
}

pub async fn region_counts(
    State(state): State<QueryState>,
    Path(region): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let region = match RegionId::parse(&region) {
        Ok(region) if state.regions.contains(&region) => region,
        _ => return unknown_region(&region),
    };
    if let Some(answer) = crate::history::region_counts_at_from_query(&state, &region, &uri).await {
        return answer;
    }
    let (view, version) = state.projection.read().await;
    if not_modified(&headers, version) {
        return not_modified_response(version);
    }
    let counts = view.region_view(&region);
    let body = body(&state, &view, counts, version, Some(&region));
    with_etag(body, version)
}

fn body(
    state: &QueryState,
    view: &GlobalView,
    counts: CountSnapshot,
    version: u64,
    only: Option<&RegionId>,
) -> CountsBody {
    let now = Utc::now();
    let heard = state.projection.heard();
    let regions = state
        .regions
        .iter()
        .filter(|region| only.is_none_or(|only| only == *region))
        .map(|region| {
            let actors: Vec<_> = view
                .actors()
                .filter(|a| a.actor().region == *region)
                .collect();
            let last = actors
                .iter()
                .filter_map(|a| a.watermark().last_event)
                .max_by_key(|mark| mark.occurred_at);
            let last_heard_at = heard.get(region).copied();
            let age_ms = last_heard_at.map(|at| (now - at).num_milliseconds().max(0));
            let freshness = RegionFreshness {
                available: counts.regions.get(region).map_or(0, |r| r.available),
                last_event_position: last.map(|m| m.position),
                last_event_at: last.map(|m| m.occurred_at),
                offsets: actors
                    .iter()
                    .map(|a| (a.actor().partition, a.watermark().offset))
                    .collect(),
                last_heard_at,
                age_ms,
                stale: age_ms.is_none_or(|age| age > state.stale_after.as_millis() as i64),
            };
            (region.clone(), freshness)
        })
        .collect();
    CountsBody {
        total: counts.total,
        active: counts.active,
        inactive: counts.inactive,
        retired: counts.retired,
        by_status: counts.by_status,
        by_provider: counts
            .by_provider
            .into_iter()
            .map(|(p, c)| (p.to_string(), c))
            .collect(),
        regions,
        version,
        node_region: state.region.clone(),
        generated_at: now,
    }
}

fn etag(version: u64) -> String {
    format!("\"counts-{version}\"")
}

fn not_modified(headers: &HeaderMap, version: u64) -> bool {
    let tag = etag(version);
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"))
}

fn not_modified_response(version: u64) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(tag) = HeaderValue::from_str(&etag(version)) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

fn with_etag(body: CountsBody, version: u64) -> Response {
    let mut response = axum::Json(body).into_response();
    let headers = response.headers_mut();
    if let Ok(tag) = HeaderValue::from_str(&etag(version)) {
        headers.insert(header::ETAG, tag);
    }
    // Always revalidate: counts change the moment an event is folded.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn unknown_region(raw: &str) -> Response {
    let body = json!({
        "type": "/problems/unknown-region",
        "title": "Not Found",
        "status": 404,
        "detail": format!("region {raw:?} is not part of this deployment"),
        "code": "unknown-region",
    });
    let mut response = (StatusCode::NOT_FOUND, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}
