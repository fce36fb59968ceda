//! `GET /v1/counts/series?from=&to=&step=`: counts at every step from `from` to `to`.

use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use tracing::{Instrument, info_span};

use super::at::CountsAt;
use super::params::{format_instant, parse_instant, parse_step, query_params};
use super::source::counts_at_instants;
use crate::problem::QueryError;
use crate::state::QueryState;

/// At most this many points per series (30 days at 1 h is 721).
pub const MAX_POINTS: usize = 2000;

#[derive(Debug, Serialize)]
pub struct Series {
    pub from: String,
    pub to: String,
    pub step_seconds: i64,
    /// At `from`, `from + step`, ... up to and including `to` when it falls on a step.
    pub points: Vec<CountsAt>,
}

/// Counts at each step from `from` to `to`, each equal to `GET /v1/counts?at=` that instant.
#[utoipa::path(
    get, path = "/v1/counts/series", tag = "history", operation_id = "counts_series",
    params(
        ("from" = chrono::DateTime<chrono::Utc>, Query, description = "RFC 3339 start"),
        ("to" = chrono::DateTime<chrono::Utc>, Query, description = "RFC 3339 end, after `from`"),
        ("step" = String, Query, description = "`15m`, `1h`, `1d` or seconds; at most 2000 points"),
    ),
    responses(
        (status = 200, description = "One point per step", body = Object),
        crate::openapi::Unprocessable, crate::openapi::Unavailable,
    ),
)]
pub async fn counts_series(
    State(state): State<QueryState>,
    uri: Uri,
) -> Result<Response, QueryError> {
    let (from, to, step) = parse(&uri).map_err(QueryError::InvalidSeries)?;
    let points = points(from, to, step).map_err(QueryError::InvalidSeries)?;
    let _slot = state.history.enter()?;
    let span = info_span!("counts_series", %from, %to, step_seconds = step.num_seconds(), points = points.len());
    let counted = counts_at_instants(&state, &points, None)
        .instrument(span)
        .await?;
    Ok(axum::Json(Series {
        from: format_instant(from),
        to: format_instant(to),
        step_seconds: step.num_seconds(),
        points: counted
            .into_iter()
            .map(|point| CountsAt::new(&state, point, None))
            .collect(),
    })
    .into_response())
}

fn parse(uri: &Uri) -> Result<(DateTime<Utc>, DateTime<Utc>, TimeDelta), String> {
    let params = query_params(uri).ok_or("the query string is not form-encoded")?;
    let required = |name: &str| {
        params.get(name).ok_or_else(|| {
            format!("{name} is required (from=, to= as RFC 3339 instants, step= such as 1h)")
        })
    };
    let from = parse_instant("from", required("from")?)?;
    let to = parse_instant("to", required("to")?)?;
    let step = parse_step(required("step")?)?;
    if from >= to {
        return Err(format!(
            "from ({}) must be before to ({})",
            format_instant(from),
            format_instant(to)
        ));
    }
    Ok((from, to, step))
}

/// `from`, `from + step`, ... `<= to`; refused beyond [`MAX_POINTS`].
fn points(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: TimeDelta,
) -> Result<Vec<DateTime<Utc>>, String> {
    let span = (to - from).num_seconds();
    let step_seconds = step.num_seconds().max(1);
    let count = span / step_seconds + 1;
    if count > MAX_POINTS as i64 {
        return Err(format!(
            "{count} points requested ({span} s at a step of {step_seconds} s); at most {MAX_POINTS}: use a larger step or a shorter range"
        ));
    }
    let mut points = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut at = from;
    while at <= to {
        points.push(at);
        match at.checked_add_signed(step) {
            Some(next) => at = next,
            None => break,
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(raw: &str) -> DateTime<Utc> {
        parse_instant("at", raw).unwrap()
    }

    #[test]
    fn thirty_days_hourly_is_721_points() {
        let p = points(
            at("2026-10-01T00:00:00Z"),
            at("2026-10-31T00:00:00Z"),
            TimeDelta::hours(1),
        )
        .unwrap();
        assert_eq!(p.len(), 721);
        assert_eq!(p.last().copied(), Some(at("2026-10-31T00:00:00Z")));
    }

    #[test]
    fn too_many_points_are_refused() {
        let error = points(
            at("2026-01-01T00:00:00Z"),
            at("2026-12-31T00:00:00Z"),
            TimeDelta::hours(1),
        )
        .unwrap_err();
        assert!(error.contains("at most 2000"), "{error}");
    }

    #[test]
    fn a_step_longer_than_the_range_gives_one_point() {
        let p = points(
            at("2026-10-01T00:00:00Z"),
            at("2026-10-01T00:30:00Z"),
            TimeDelta::hours(1),
        )
        .unwrap();
        assert_eq!(p, vec![at("2026-10-01T00:00:00Z")]);
    }

    /// A node whose database is unreachable and whose one history slot is `gate`'s.
    fn state(gate: crate::history::HistoryGate) -> QueryState {
        let region = domain::RegionId::parse("eu-west").unwrap();
        QueryState {
            pool: sqlx::postgres::PgPoolOptions::new()
                .acquire_timeout(std::time::Duration::from_millis(100))
                .connect_lazy("postgres://nobody@127.0.0.1:1/none")
                .unwrap(),
            metrics: None,
            projection: projector::Projection::new(),
            feed: projector::ChangeFeed::new(),
            region: region.clone(),
            regions: vec![region],
            partitions: 3,
            stale_after: std::time::Duration::from_secs(5),
            read_wait: std::time::Duration::from_secs(1),
            hub: crate::stream::hub::StreamHub::new(1),
            stream_tick: std::time::Duration::from_secs(1),
            health: crate::readiness::TaskHealth::new(),
            history: gate,
        }
    }

    #[tokio::test]
    async fn a_series_beyond_the_history_slots_is_refused_with_retry_after() {
        let gate = crate::history::HistoryGate::new(1);
        let held = gate.enter().unwrap();
        let uri: Uri =
            "/v1/counts/series?from=2026-10-01T00:00:00Z&to=2026-10-02T00:00:00Z&step=1h"
                .parse()
                .unwrap();
        let refused = counts_series(State(state(gate.clone())), uri.clone())
            .await
            .unwrap_err();
        assert!(matches!(refused, QueryError::Busy(1)), "{refused:?}");
        let response = refused.into_response();
        assert_eq!(
            response.status(),
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(
            response
                .headers()
                .contains_key(axum::http::header::RETRY_AFTER)
        );
        // With the slot free, the read goes on to the (unreachable) database instead.
        drop(held);
        let failed = counts_series(State(state(gate)), uri).await.unwrap_err();
        assert!(matches!(failed, QueryError::LogUnavailable), "{failed:?}");
    }
}
