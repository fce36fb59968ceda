//! `GET /v1/counts?at=<RFC 3339>`: the counts as of an instant, by replay.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::{OperationalStatus, ProviderId, RegionId};
use projector::{ProviderCounts, RegionCounts};
use serde::Serialize;
use tracing::{Instrument, info_span};

use super::log::{PointCounts, counts_at_points};
use super::params::{format_instant, parse_instant};
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
    #[schema(value_type = BTreeMap<String, ProviderCounts>)]
    pub by_provider: BTreeMap<ProviderId, ProviderCounts>,
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
            by_provider: counts.by_provider,
            regions,
            events_replayed: point.events_replayed,
        }
    }
}

/// The counts as of the RFC 3339 instant `raw` (the `at` parameter), from a replay of every
/// event that occurred at or before it: the deployment's, or `only` one region's own view.
pub async fn counts_at(state: &QueryState, raw: &str, only: Option<&RegionId>) -> Response {
    match parse_instant("at", raw) {
        Ok(at) => answer(state, at, only).await,
        Err(detail) => problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-instant", detail),
    }
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
