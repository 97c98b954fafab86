//! W3C trace context across process boundaries: read from and written to HTTP headers, and
//! carried in the Kafka `traceparent` header, so one request and everything it causes share a
//! trace.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header that carries trace id, parent span id and the sampled flag.
pub const TRACEPARENT: &str = "traceparent";

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// One `traceparent` value as a single-entry carrier.
struct Traceparent<'a>(&'a str);

impl Extractor for Traceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// Makes `span` a child of the trace context in `headers`, when they carry a valid one.
pub fn adopt_http_parent(span: &Span, headers: &HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        // Fails only when the span is disabled; then there is nothing to link.
        let _ = span.set_parent(parent);
    }
}

/// Headers that carry `span`'s trace context to the next service (empty when it has none).
pub fn http_headers(span: &Span) -> HeaderMap {
    let mut headers = HeaderMap::new();
    TraceContextPropagator::new()
        .inject_context(&span.context(), &mut HeaderInjector(&mut headers));
    headers
}

/// `span`'s context as a `traceparent` value, for a Kafka header; `None` when it has none.
pub fn traceparent(span: &Span) -> Option<String> {
    http_headers(span)
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The span context a `traceparent` value names; `None` when the value is not valid.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let context: Context = TraceContextPropagator::new().extract(&Traceparent(value));
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// Makes `span` continue the traces named by `traceparents`: a child of the first valid one,
/// linked to each other valid one (a batch that carries events of several traces).
pub fn continue_traces<'a>(span: &Span, traceparents: impl IntoIterator<Item = &'a str>) {
    let mut contexts = traceparents.into_iter().filter_map(parse_traceparent);
    if let Some(first) = contexts.next() {
        // Fails only when the span is disabled; then there is nothing to link.
        let _ = span.set_parent(Context::new().with_remote_span_context(first));
    }
    for other in contexts {
        span.add_link(other);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_traceparent_only() {
        let ctx = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        assert_eq!(
            ctx.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(ctx.span_id().to_string(), "00f067aa0ba902b7");
        assert!(ctx.is_sampled());
        assert!(parse_traceparent("").is_none());
        assert!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none()
        );
        assert!(parse_traceparent("garbage").is_none());
    }

    #[test]
    fn a_span_without_a_subscriber_has_no_context() {
        assert!(traceparent(&Span::none()).is_none());
        assert!(http_headers(&Span::none()).is_empty());
    }
}
