//! `GET /v1/counts` and `GET /v1/regions/{region}/counts`: served from the merged CRDT view,
//! never by counting rows, with freshness per region and an ETag per projection version.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::RegionId;
use http_problem::PathParams;
use projector::{CountSnapshot, GlobalView, Totals};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::consistency;
use crate::openapi::{
    CacheHeaders, ConsistencyHeader, GatewayTimeout, NotFound, NotModified, Unprocessable,
};
use crate::params::Params;
use crate::problem::QueryError;
use crate::state::QueryState;

/// How fresh one region's numbers are at this node.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegionFreshness {
    pub available: i64,
    /// Position (in the region's event store) and time of the last event folded.
    pub last_event_position: Option<u64>,
    pub last_event_at: Option<DateTime<Utc>>,
    /// Last Kafka offset folded, per partition of the region's topic (`null`: none yet).
    #[schema(value_type = BTreeMap<String, Option<i64>>)]
    pub offsets: BTreeMap<i32, Option<i64>>,
    #[serde(flatten)]
    pub heartbeat: Heartbeat,
}

/// One region's liveness; alone, it is what the stream reports every tick.
#[derive(Debug, Serialize, ToSchema)]
pub struct Heartbeat {
    /// When this node last received a state from the region (changed or not).
    pub last_heard_at: Option<DateTime<Utc>>,
    pub age_ms: Option<i64>,
    /// Not heard from within the configured bound.
    pub stale: bool,
}

/// The stream's `freshness` event: how recently each region was heard from.
#[derive(Debug, Serialize, ToSchema)]
pub struct FreshnessBody {
    pub generated_at: DateTime<Utc>,
    pub regions: BTreeMap<RegionId, Heartbeat>,
}

/// Counts, global or as one region sees them, with each region's freshness.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountsBody {
    #[serde(flatten)]
    pub totals: Totals,
    pub regions: BTreeMap<RegionId, RegionFreshness>,
    /// Projection version at this node; also the ETag.
    pub version: u64,
    pub node_region: RegionId,
    pub generated_at: DateTime<Utc>,
}

/// What the count routes answer: the live counts, or with `?at=` the counts as of an instant.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[expect(dead_code, reason = "documents the answer's two shapes; never built")]
pub enum CountsAnswer {
    Live(CountsBody),
    AsOf(crate::history::at::CountsAt),
}

/// Query parameters of the count routes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CountsQuery {
    /// A consistency token: answer only once the counts include that event.
    #[param(value_type = domain::ConsistencyToken, required = false)]
    pub after: Option<String>,
    /// Answer as of this RFC 3339 instant, by replaying the event log (no ETag, never waits).
    #[param(value_type = chrono::DateTime<chrono::Utc>, required = false)]
    pub at: Option<String>,
}

/// Global counts: the merge of every region's counters, with each region's freshness.
#[utoipa::path(
    get, path = "/v1/counts", tag = "counts", operation_id = "global_counts",
    params(CountsQuery, ConsistencyHeader, CacheHeaders),
    responses(
        (status = 200, description = "The counts (as of `at`, with `?at=`)", body = CountsAnswer, headers(
            ("ETag" = String, description = "Changes with every change of the counts"),
            ("Cache-Control" = String),
        )),
        NotModified, Unprocessable, GatewayTimeout,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn global_counts(
    State(state): State<QueryState>,
    Params(query): Params<CountsQuery>,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    if let Some(at) = &query.at {
        return crate::history::counts_at(&state, at, None).await;
    }
    serve(&state, &headers, query.after.as_deref(), None).await
}

/// One region's view: the same totals, with only that region's availability and freshness.
#[utoipa::path(
    get, path = "/v1/regions/{region}/counts", tag = "counts", operation_id = "region_counts",
    params(("region" = RegionId, Path), CountsQuery, ConsistencyHeader, CacheHeaders),
    responses(
        (status = 200, description = "The counts (as of `at`, with `?at=`)", body = CountsAnswer, headers(
            ("ETag" = String, description = "Changes with every change of the counts"),
            ("Cache-Control" = String),
        )),
        NotModified, NotFound, Unprocessable, GatewayTimeout,
    ),
)]
#[tracing::instrument(skip_all, fields(region = %region))]
pub async fn region_counts(
    State(state): State<QueryState>,
    PathParams(region, _): PathParams<String, QueryError>,
    Params(query): Params<CountsQuery>,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    let region = match RegionId::parse(&region) {
        Ok(region) if state.regions.contains(&region) => region,
        _ => return Err(QueryError::UnknownRegion(region)),
    };
    if let Some(at) = &query.at {
        return crate::history::counts_at(&state, at, Some(&region)).await;
    }
    serve(&state, &headers, query.after.as_deref(), Some(&region)).await
}

async fn serve(
    state: &QueryState,
    headers: &HeaderMap,
    after: Option<&str>,
    only: Option<&RegionId>,
) -> Result<Response, QueryError> {
    if let Some(token) = consistency::requested(headers, after)? {
        consistency::until_counted(state, &token).await?;
    }
    let answer = state
        .projection
        .with_view(|view, version| {
            if not_modified(headers, version) {
                not_modified_response(version)
            } else {
                with_etag(render(state, view, version, only), version)
            }
        })
        .await;
    Ok(answer)
}

/// The counts body for the whole deployment, or for one region's view.
pub(crate) fn render(
    state: &QueryState,
    view: &GlobalView,
    version: u64,
    only: Option<&RegionId>,
) -> CountsBody {
    let counts = match only {
        Some(region) => view.region_view(region),
        None => view.totals(),
    };
    body(state, view, counts, version, only)
}

/// How recently each region was heard from, without counts: the stream's regular tick.
pub(crate) fn freshness(state: &QueryState, only: Option<&RegionId>) -> FreshnessBody {
    let now = Utc::now();
    FreshnessBody {
        generated_at: now,
        regions: heartbeats(state, only, now).collect(),
    }
}

/// Every region's (or only `only`'s) liveness as of `now`.
fn heartbeats<'a>(
    state: &'a QueryState,
    only: Option<&'a RegionId>,
    now: DateTime<Utc>,
) -> impl Iterator<Item = (RegionId, Heartbeat)> + 'a {
    let heard = state.projection.heard();
    let bound = i64::try_from(state.stale_after.as_millis()).unwrap_or(i64::MAX);
    state
        .regions
        .iter()
        .filter(move |region| only.is_none_or(|only| only == *region))
        .map(move |region| {
            let last_heard_at = heard.get(region).copied();
            let age_ms = last_heard_at.map(|at| (now - at).num_milliseconds().max(0));
            let heartbeat = Heartbeat {
                last_heard_at,
                age_ms,
                stale: age_ms.is_none_or(|age| age > bound),
            };
            (region.clone(), heartbeat)
        })
}

fn body(
    state: &QueryState,
    view: &GlobalView,
    counts: CountSnapshot,
    version: u64,
    only: Option<&RegionId>,
) -> CountsBody {
    let now = Utc::now();
    let (totals, counted) = counts.split();
    let regions = heartbeats(state, only, now)
        .map(|(region, heartbeat)| {
            let actors: Vec<_> = view
                .actors()
                .filter(|a| a.actor().region == region)
                .collect();
            let last = actors
                .iter()
                .filter_map(|a| a.watermark().last_event)
                .max_by_key(|mark| mark.occurred_at);
            let freshness = RegionFreshness {
                available: counted.get(&region).map_or(0, |r| r.available),
                last_event_position: last.map(|m| m.position),
                last_event_at: last.map(|m| m.occurred_at),
                offsets: actors
                    .iter()
                    .map(|a| (a.actor().partition, a.watermark().offset))
                    .collect(),
                heartbeat,
            };
            (region, freshness)
        })
        .collect();
    CountsBody {
        totals,
        regions,
        version,
        node_region: state.region.clone(),
        generated_at: now,
    }
}

/// Weak: the counts are the same for one version, but the freshness fields (`age_ms`,
/// `generated_at`) move under it, so the bytes are not.
fn etag(version: u64) -> String {
    format!("W/\"counts-{version}\"")
}

/// `If-None-Match` compares weakly (RFC 9110 §13.1.2): `W/` on either side is ignored.
fn not_modified(headers: &HeaderMap, version: u64) -> bool {
    let tag = etag(version);
    let opaque = tag.trim_start_matches("W/");
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim())
                .any(|t| t == "*" || t.trim_start_matches("W/") == opaque)
        })
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
