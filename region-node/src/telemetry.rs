//! Logging (tracing, as text or JSON lines) and the Prometheus recorder (every metric under the
//! `aigo_` prefix, durations as histograms with buckets, each described).

use std::io::IsTerminal;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::layers::{Layer, PrefixLayer};
use tracing_subscriber::EnvFilter;

use crate::metric_catalog;

/// The prefix of every metric the node exports (`aigo_projector_events_folded_total`).
pub const METRIC_PREFIX: &str = "aigo";

/// Buckets of every `*_seconds` histogram: 1 ms to 30 s.
const SECONDS_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colored on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for a log pipeline.
    Json,
}

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}

/// Installs the process-wide Prometheus recorder; `None` if one is already installed.
pub fn init_metrics() -> Option<PrometheusHandle> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &SECONDS_BUCKETS)
        .ok()?
        .build_recorder();
    let handle = recorder.handle();
    let prefixed = PrefixLayer::new(METRIC_PREFIX).layer(recorder);
    metrics::set_global_recorder(prefixed).ok()?;
    metric_catalog::describe();
    Some(handle)
}
