//! `aigo-bench history`: the latency of history reads on a running node, as a client sees it:
//! `GET /v1/counts?at=` at random instants and a 721-point series (30 days at 1 h).

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::load::percentile;

/// What to measure.
#[derive(Debug, Clone)]
pub struct HistoryPlan<'a> {
    pub target: &'a str,
    /// `?at=` instants are drawn uniformly from `from..to` (Unix seconds).
    pub from: i64,
    pub to: i64,
    pub at_runs: usize,
    pub series_runs: usize,
}

/// Median and p99 of one kind of read.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub runs: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct HistoryReport {
    pub at: Latency,
    pub series: Latency,
    /// `events_replayed` of the last series point: the log's size as the node counts it.
    pub events_at_end: u64,
}

pub async fn run(plan: &HistoryPlan<'_>) -> anyhow::Result<HistoryReport> {
    ensure!(plan.from < plan.to, "--from must be before --to");
    let client = reqwest::Client::new();
    let bar = ProgressBar::new((plan.at_runs + plan.series_runs) as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} reads {per_sec} eta {eta}")
            .context("progress template")?,
    );
    // A fixed sequence of instants, the same for every node measured with the same plan.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let span = u64::try_from(plan.to - plan.from).unwrap_or(1).max(1);
    let mut at_times = Vec::with_capacity(plan.at_runs);
    for _ in 0..plan.at_runs {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let at = plan.from + i64::try_from((state >> 11) % span).unwrap_or(0);
        let url = format!("{}/v1/counts?at={}", plan.target, rfc3339(at));
        at_times.push(timed(&client, &url).await?.0);
        bar.inc(1);
    }
    let series_from = plan.to - 30 * 86_400;
    let url = format!(
        "{}/v1/counts/series?from={}&to={}&step=1h",
        plan.target,
        rfc3339(series_from),
        rfc3339(plan.to)
    );
    let mut series_times = Vec::with_capacity(plan.series_runs);
    let mut events_at_end = 0;
    for _ in 0..plan.series_runs {
        let (took, body) = timed(&client, &url).await?;
        let points = body
            .get("points")
            .and_then(serde_json::Value::as_array)
            .context("no points in the series")?;
        ensure!(points.len() == 721, "{} points, not 721", points.len());
        events_at_end = points
            .last()
            .and_then(|p| p.get("events_replayed"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        series_times.push(took);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(HistoryReport {
        at: latency(at_times),
        series: latency(series_times),
        events_at_end,
    })
}

async fn timed(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<(Duration, serde_json::Value)> {
    let sent = Instant::now();
    let response = client.get(url).send().await.context(url.to_owned())?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.context(url.to_owned())?;
    let took = sent.elapsed();
    ensure!(status.is_success(), "{url}: {status} {body}");
    Ok((took, body))
}

fn latency(mut times: Vec<Duration>) -> Latency {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Latency {
        runs: times.len(),
        p50_ms: ms(percentile(&times, 0.50)),
        p99_ms: ms(percentile(&times, 0.99)),
        max_ms: ms(times.last().copied().unwrap_or_default()),
    }
}

/// Unix seconds as an RFC 3339 instant (UTC), without a date library.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_892_800), "2025-12-05T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3_661), "2000-02-29T01:01:01Z");
    }
}
