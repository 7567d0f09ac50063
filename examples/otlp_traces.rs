//! The axum example's traces over OTLP/HTTP (its feature `otlp`): spans
//! exported through `tracing-opentelemetry`, and the current trace for
//! `MonitorConfig::trace_context`.

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Exports `tracing`'s spans over OTLP/HTTP to `endpoint` (the full URL,
/// `…/v1/traces`) through `tracing-opentelemetry`, as this process's
/// subscriber, beside `terminal` (a layer that logs, or none). The
/// provider it returns flushes what is left when shut down.
pub(crate) fn trace_to_otlp_beside<L>(
    endpoint: &str,
    terminal: L,
) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, Error>
where
    L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync,
{
    use opentelemetry::trace::TracerProvider;
    use opentelemetry_otlp::WithExportConfig;
    use tracing_subscriber::prelude::*;

    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("axum-example")
                .build(),
        )
        .build();
    let tracer = provider.tracer("axum-example");
    tracing_subscriber::registry()
        .with(terminal)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()?;
    Ok(provider)
}

/// [`trace_to_otlp_beside`] with nothing logged.
#[allow(dead_code)]
pub(crate) fn trace_to_otlp(endpoint: &str) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, Error> {
    trace_to_otlp_beside(endpoint, tracing_subscriber::layer::Identity::new())
}

/// The trace of the current `tracing` span, as OpenTelemetry knows it:
/// what `MonitorConfig::trace_context` shows the server.
pub(crate) fn current_trace() -> Option<db_monitor::TraceParent> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let context = tracing::Span::current().context();
    let span = context.span();
    let span = span.span_context();
    db_monitor::TraceParent::new(span.trace_id().to_bytes(), span.span_id().to_bytes(), span.is_sampled())
}
