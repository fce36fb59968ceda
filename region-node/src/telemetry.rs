//! Logging (tracing, as text or JSON lines) and the Prometheus recorder (every metric under the
//! `aigo_` prefix, durations as histograms with buckets, each described).

use std::io::IsTerminal;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::layers::{Layer as _, PrefixLayer};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer as _};

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

/// Keeps what tracing needs until the process ends (with the `otlp` feature: flushes the
/// spans not exported yet when dropped).
#[must_use]
#[derive(Debug)]
pub struct TracingGuard {
    #[cfg(feature = "otlp")]
    _export: Option<crate::otlp::ExportGuard>,
}

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default `info`); with the `otlp`
/// feature and `OTEL_EXPORTER_OTLP_ENDPOINT` set, also exports spans. Call it outside the async
/// runtime. A second initialisation (tests) keeps the first subscriber.
pub fn init_tracing(format: LogFormat) -> TracingGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match format {
        LogFormat::Text => lines.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    let logging = tracing_subscriber::registry().with(filter).with(lines);
    #[cfg(feature = "otlp")]
    match crate::otlp::layer() {
        Ok(Some((export, guard))) => {
            let _ = logging.with(export).try_init();
            return TracingGuard {
                _export: Some(guard),
            };
        }
        Ok(None) => {}
        Err(error) => eprintln!("{error}; spans are not exported"),
    }
    let _ = logging.try_init();
    TracingGuard {
        #[cfg(feature = "otlp")]
        _export: None,
    }
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
