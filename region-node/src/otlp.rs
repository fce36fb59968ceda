//! Optional trace export (cargo feature `otlp`): when `OTEL_EXPORTER_OTLP_ENDPOINT` is set,
//! every tracing span (requests, fold batches, ...) also goes to that OpenTelemetry collector
//! over OTLP/HTTP (protobuf), batched on a thread of its own. The standard `OTEL_*` variables
//! (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, ...) apply.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::SpanExporter;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The service name spans carry unless `OTEL_SERVICE_NAME` says otherwise.
const SERVICE_NAME: &str = "aigo-region-node";

/// Flushes the spans not yet exported when dropped (at the end of `main`).
#[derive(Debug)]
pub struct ExportGuard(SdkTracerProvider);

impl Drop for ExportGuard {
    fn drop(&mut self) {
        if let Err(error) = self.0.shutdown() {
            eprintln!("OTLP trace export: final flush failed: {error}");
        }
    }
}

/// The export layer and its guard, or `None` when no endpoint is configured. Must be called
/// outside the async runtime (the exporter's HTTP client is a blocking one).
pub fn layer<S>() -> Result<Option<(impl Layer<S>, ExportGuard)>, String>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        return Ok(None);
    }
    let exporter = SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("OTLP trace export: {e}"))?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| SERVICE_NAME.to_owned());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    let tracer = provider.tracer("region-node");
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Ok(Some((layer, ExportGuard(provider))))
}
