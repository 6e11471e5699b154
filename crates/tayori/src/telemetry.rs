//! Logging and tracing: human-readable lines on a terminal, JSON lines when deployed, and
//! OpenTelemetry traces over OTLP when an endpoint is configured.
//!
//! Traces are off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set — e.g. `http://datadog-agent:4318` for Datadog's OTLP intake. The other standard
//! variables apply too: `OTEL_SERVICE_NAME` (default `tayori`), `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_RESOURCE_ATTRIBUTES`. Every `tracing` span tayori opens
//! becomes an OpenTelemetry span: one trace per SQS message (`sqs_message` → `handle_event` →
//! `render` → `sender.send`), its `handle_event` span carrying the delivery id.

use std::io::IsTerminal as _;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::SpanExporter;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The environment variables that turn trace export on.
const OTLP_ENDPOINT_VARIABLES: [&str; 2] =
    ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] flushes what is buffered.
#[must_use = "dropping it without shutdown loses the last traces"]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether traces are exported.
    pub fn traces_enabled(&self) -> bool {
        self.tracer_provider.is_some()
    }

    /// Exports the spans still buffered, then stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.tracer_provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("warning: exporting the last traces failed: {error}");
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides the default filter (`info` for tayori's
/// crates, `warn` for libraries). Must run inside the tokio runtime (the trace exporter runs on
/// it).
pub fn init(format: LogFormat) -> Telemetry {
    let filter = || {
        // "tayori" matches every tayori crate: directives match target prefixes.
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,tayori=info"))
    };
    let (tracer_provider, otel_problem) = match tracer_provider() {
        Ok(provider) => (provider, None),
        Err(problem) => (None, Some(problem)),
    };
    let otel = tracer_provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer("tayori")).with_filter(filter())
    });
    // Colour only on a terminal: escape codes in a file or a log shipper's input are noise.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(colour);
    let registry = tracing_subscriber::registry().with(otel);
    // A second call (tests start several apps) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => registry.with(fmt.with_filter(filter())).try_init(),
        LogFormat::Json => {
            registry.with(fmt.json().flatten_event(true).with_filter(filter())).try_init()
        }
    };
    if let Some(problem) = otel_problem {
        tracing::warn!(%problem, "OTLP trace export is configured but could not start; no traces");
    } else if tracer_provider.is_some() {
        tracing::info!("exporting traces over OTLP/HTTP");
    }
    Telemetry { tracer_provider }
}

/// The OTLP tracer provider, when an endpoint is configured.
fn tracer_provider() -> Result<Option<SdkTracerProvider>, String> {
    let configured =
        OTLP_ENDPOINT_VARIABLES.iter().any(|name| std::env::var(name).is_ok_and(|v| !v.is_empty()));
    if !configured {
        return Ok(None);
    }
    // Endpoint, headers and timeout come from the standard OTEL_EXPORTER_OTLP_* variables.
    let exporter = SpanExporter::builder().with_http().build().map_err(|e| e.to_string())?;
    let processor = BatchSpanProcessor::builder(exporter, Tokio).build();
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "tayori".to_owned());
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider =
        SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource).build();
    Ok(Some(provider))
}
