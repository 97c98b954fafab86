//! Logs and traces, set up once at start.
//!
//! Logs go to stdout as text or JSON. Spans go to OpenTelemetry: every service always creates
//! trace and span ids (so W3C trace context propagates whatever the configuration), and exports
//! them over OTLP/HTTP only when `LOGSTREAM_OTLP_ENDPOINT` is set.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::settings::{CommonSettings, LogFormat};

/// OTLP/HTTP path of the traces signal.
const TRACES_PATH: &str = "/v1/traces";

/// Holds the tracer provider; [`Telemetry::shutdown`] exports the spans still buffered.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Flushes and stops span export. Call once, as the service exits.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "span export did not shut down cleanly");
        }
    }
}

/// Installs the global subscriber (logs + spans) and the W3C trace-context propagator.
/// `service` names this process in exported spans (`service.name`).
pub fn init(settings: &CommonSettings, service: &'static str) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_new(&settings.log_filter).map_err(|e| {
        anyhow::anyhow!(
            "invalid LOGSTREAM_LOG / --log-filter {:?}: {e}",
            settings.log_filter
        )
    })?;
    let provider = tracer_provider(settings, service)?;
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let spans = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));

    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let logs = tracing_subscriber::fmt::layer()
        .with_target(true)
        .with_ansi(ansi);
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match settings.log_format {
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
        LogFormat::Text => logs.boxed(),
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .with(filter)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the tracing subscriber: {e}"))?;
    if let Some(endpoint) = &settings.otlp_endpoint {
        tracing::info!(endpoint = %traces_url(endpoint), "exporting spans over OTLP/HTTP");
    }
    Ok(Telemetry { provider })
}

fn tracer_provider(
    settings: &CommonSettings,
    service: &'static str,
) -> anyhow::Result<SdkTracerProvider> {
    let builder = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.trace_sample_ratio,
        ))))
        .with_resource(Resource::builder().with_service_name(service).build());
    let Some(endpoint) = &settings.otlp_endpoint else {
        return Ok(builder.build());
    };
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .build()
        .map_err(|e| anyhow::anyhow!("invalid LOGSTREAM_OTLP_ENDPOINT {endpoint:?}: {e}"))?;
    Ok(builder.with_batch_exporter(exporter).build())
}

/// The endpoint as given when it already names the traces path, else with `/v1/traces` added.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with(TRACES_PATH) {
        base.to_owned()
    } else {
        format!("{base}{TRACES_PATH}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_path_is_added_once() {
        assert_eq!(
            traces_url("http://jaeger:4318"),
            "http://jaeger:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://jaeger:4318/"),
            "http://jaeger:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://x:4318/v1/traces"),
            "http://x:4318/v1/traces"
        );
    }
}
