//! Tempest's own spans. Each building-block call records a span through the OpenTelemetry API
//! with the ids Tempest already propagates (so the `traceparent` an app receives names a span
//! that exists), under whatever tracer provider the host installed: the local host exports
//! them with `opentelemetry-otlp` into its own ingest; with no provider they cost nothing.

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue, global};
use tempest_core::TraceContext;

/// A started span; ended by `end` (or when dropped).
pub struct HopSpan(global::BoxedSpan);

fn span_context(tc: &TraceContext, remote: bool) -> Option<SpanContext> {
    let trace_id = TraceId::from_hex(&tc.trace_id).ok()?;
    let span_id = SpanId::from_hex(&tc.span_id).ok()?;
    let state = tc
        .tracestate
        .as_deref()
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(tc.flags),
        remote,
        state,
    ))
}

/// Starts span `name` whose own ids are `own`, as a child of `parent` (the caller's context)
/// when there is one.
pub fn start(
    name: String,
    kind: SpanKind,
    own: &TraceContext,
    parent: Option<&TraceContext>,
    attributes: Vec<KeyValue>,
) -> HopSpan {
    let tracer = global::tracer("tempest");
    let parent_cx = parent
        .and_then(|p| span_context(p, true))
        .map(|sc| Context::new().with_remote_span_context(sc))
        .unwrap_or_default();
    let mut builder = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes);
    if let Some(sc) = span_context(own, false) {
        builder = builder
            .with_trace_id(sc.trace_id())
            .with_span_id(sc.span_id());
    }
    HopSpan(builder.start_with_context(&tracer, &parent_cx))
}

impl HopSpan {
    /// Adds an attribute.
    pub fn set(&mut self, kv: KeyValue) {
        self.0.set_attribute(kv);
    }

    /// Marks the span failed.
    pub fn fail(&mut self, message: String) {
        self.0.set_status(Status::error(message));
    }

    /// Ends the span now.
    pub fn end(mut self) {
        self.0.end();
    }
}
