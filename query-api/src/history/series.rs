//! `GET /v1/counts/series?from=&to=&step=`: counts at every step from `from` to `to`.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use tracing::{Instrument, info_span};

use super::at::CountsAt;
use super::log::counts_at_points;
use super::params::{format_instant, parse_instant, parse_step, query_params};
use super::problem::{problem, unavailable};
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
pub async fn counts_series(State(state): State<QueryState>, uri: Uri) -> Response {
    let (from, to, step) = match parse(&uri) {
        Ok(parsed) => parsed,
        Err(detail) => return problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-series", detail),
    };
    let points = match points(from, to, step) {
        Ok(points) => points,
        Err(detail) => return problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-series", detail),
    };
    let span = info_span!("counts_series", %from, %to, step_seconds = step.num_seconds(), points = points.len());
    match counts_at_points(&state.pool, &points, None)
        .instrument(span)
        .await
    {
        Ok(counted) => axum::Json(Series {
            from: format_instant(from),
            to: format_instant(to),
            step_seconds: step.num_seconds(),
            points: counted
                .into_iter()
                .map(|point| CountsAt::new(&state, point, None))
                .collect(),
        })
        .into_response(),
        Err(error) => unavailable(&error),
    }
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
}
