//! `GET /v1/counts?at=<RFC 3339>`: the counts as of an instant, from the history index or a
//! replay.

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};
use domain::RegionId;
use projector::{RegionCounts, Totals};
use serde::Serialize;
use tracing::{Instrument, info_span};

use super::log::PointCounts;
use super::params::{format_instant, parse_instant};
use super::source::counts_at_instants;
use crate::problem::QueryError;
use crate::state::QueryState;

/// Counts as of `at`: the `?at=` answer, and one point of a series.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CountsAt {
    #[schema(value_type = chrono::DateTime<chrono::Utc>)]
    pub at: String,
    #[serde(flatten)]
    pub totals: Totals,
    /// Every region of the deployment (and any other the log mentions), 0 when it serves none.
    #[schema(value_type = BTreeMap<String, RegionCounts>)]
    pub regions: BTreeMap<RegionId, RegionCounts>,
    /// Events folded to get here (every region, whatever their outcome).
    pub events_replayed: u64,
}

impl CountsAt {
    /// `only`: a region's own view, which lists that region alone.
    pub(crate) fn new(state: &QueryState, point: PointCounts, only: Option<&RegionId>) -> Self {
        let (totals, counted) = point.counts.split();
        let mut regions: BTreeMap<RegionId, RegionCounts> = match only {
            Some(region) => BTreeMap::from([(region.clone(), RegionCounts::default())]),
            None => state
                .regions
                .iter()
                .map(|r| (r.clone(), RegionCounts::default()))
                .collect(),
        };
        regions.extend(
            counted
                .into_iter()
                .filter(|(region, _)| only.is_none_or(|only| only == region)),
        );
        Self {
            at: format_instant(point.at),
            totals,
            regions,
            events_replayed: point.events_replayed,
        }
    }
}

/// The counts as of the RFC 3339 instant `raw` (the `at` parameter): each actor's log up to its
/// first event after the instant, the deployment's or `only` one region's own view.
pub async fn counts_at(
    state: &QueryState,
    raw: &str,
    only: Option<&RegionId>,
) -> Result<Response, QueryError> {
    let at = parse_instant("at", raw).map_err(QueryError::InvalidInstant)?;
    let _slot = state.history.enter()?;
    let span = info_span!("counts_at", %at, region = only.map(RegionId::as_str));
    let mut points = counts_at_instants(state, &[at], only)
        .instrument(span)
        .await?;
    let point = points.pop().ok_or(QueryError::Internal("no counts"))?;
    Ok(axum::Json(CountsAt::new(state, point, only)).into_response())
}
