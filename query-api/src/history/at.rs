//! `GET /v1/counts?at=<RFC 3339>`: the counts as of an instant, by replay.

use std::collections::BTreeMap;

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::{OperationalStatus, RegionId};
use projector::{ProviderCounts, RegionCounts};
use serde::Serialize;
use tracing::{Instrument, info_span};

use super::log::{PointCounts, counts_at_points};
use super::params::{format_instant, parse_instant, query_params};
use super::problem::{problem, unavailable};
use crate::state::QueryState;

/// Counts as of `at`: the `?at=` answer, and one point of a series.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CountsAt {
    #[schema(value_type = DateTime<Utc>)]
    pub at: String,
    pub total: i64,
    pub active: i64,
    pub inactive: i64,
    pub retired: i64,
    #[schema(value_type = BTreeMap<OperationalStatus, i64>)]
    pub by_status: BTreeMap<OperationalStatus, i64>,
    pub by_provider: BTreeMap<String, ProviderCounts>,
    /// Every region of the deployment (and any other the log mentions), 0 when it serves none.
    #[schema(value_type = BTreeMap<String, RegionCounts>)]
    pub regions: BTreeMap<RegionId, RegionCounts>,
    /// Events folded to get here (every region, whatever their outcome).
    pub events_replayed: u64,
}

impl CountsAt {
    /// `only`: a region's own view, which lists that region alone.
    pub(crate) fn new(state: &QueryState, point: PointCounts, only: Option<&RegionId>) -> Self {
        let counts = point.counts;
        let mut regions: BTreeMap<RegionId, RegionCounts> = match only {
            Some(region) => BTreeMap::from([(region.clone(), RegionCounts::default())]),
            None => state
                .regions
                .iter()
                .map(|r| (r.clone(), RegionCounts::default()))
                .collect(),
        };
        regions.extend(
            counts
                .regions
                .into_iter()
                .filter(|(region, _)| only.is_none_or(|only| only == region)),
        );
        Self {
            at: format_instant(point.at),
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
            events_replayed: point.events_replayed,
        }
    }
}

/// The `?at=` branch of `GET /v1/counts`: `None` when the query has no `at`.
pub async fn counts_at_from_query(state: &QueryState, uri: &Uri) -> Option<Response> {
    at_from_query(state, uri, None).await
}

/// The `?at=` branch of `GET /v1/regions/{region}/counts` (`region` already validated).
pub async fn region_counts_at_from_query(
    state: &QueryState,
    region: &RegionId,
    uri: &Uri,
) -> Option<Response> {
    at_from_query(state, uri, Some(region)).await
}

async fn at_from_query(state: &QueryState, uri: &Uri, only: Option<&RegionId>) -> Option<Response> {
    let raw = query_params(uri)?.remove("at")?;
    Some(match parse_instant("at", &raw) {
        Ok(at) => answer(state, at, only).await,
        Err(detail) => problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-instant", detail),
    })
}

/// The counts as of `at`, from a replay of every event that occurred at or before it.
pub async fn counts_at(state: &QueryState, at: DateTime<Utc>) -> Response {
    answer(state, at, None).await
}

/// One region's view as of `at`: the replay of that region's events only.
pub async fn region_counts_at(
    state: &QueryState,
    region: &RegionId,
    at: DateTime<Utc>,
) -> Response {
    answer(state, at, Some(region)).await
}

async fn answer(state: &QueryState, at: DateTime<Utc>, only: Option<&RegionId>) -> Response {
    let span = info_span!("counts_at", %at, region = only.map(RegionId::as_str));
    match counts_at_points(&state.pool, &[at], only)
        .instrument(span)
        .await
    {
        Ok(mut points) => match points.pop() {
            Some(point) => axum::Json(CountsAt::new(state, point, only)).into_response(),
            None => problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", "no counts"),
        },
        Err(error) => unavailable(&error),
    }
}
