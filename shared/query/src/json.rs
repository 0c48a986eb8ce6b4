//! Tempo's JSON: the protobuf JSON mapping as Tempo's gogo `jsonpb` writes it — lowerCamel
//! names, 64-bit integers as strings, 32-bit ones as numbers, enums by name, bytes as base64,
//! default values left out. (Not OTLP/JSON, which has hex ids and numeric enums.)

use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, Status, span};
use serde_json::{Map, Value, json};

use crate::tempopb::{
    SearchMetrics, SearchResponse, SearchSpan, SpanSet, Trace, TraceByIdResponse,
    TraceSearchMetadata,
};

fn b64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Builds a JSON object leaving out default values, as jsonpb does.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn str(mut self, key: &str, v: &str) -> Self {
        if !v.is_empty() {
            self.0.insert(key.into(), Value::String(v.into()));
        }
        self
    }
    fn u64(mut self, key: &str, v: u64) -> Self {
        if v != 0 {
            self.0.insert(key.into(), Value::String(v.to_string()));
        }
        self
    }
    fn u32(mut self, key: &str, v: u32) -> Self {
        if v != 0 {
            self.0.insert(key.into(), json!(v));
        }
        self
    }
    fn bytes(mut self, key: &str, v: &[u8]) -> Self {
        if !v.is_empty() {
            self.0.insert(key.into(), b64(v));
        }
        self
    }
    fn list(mut self, key: &str, v: Vec<Value>) -> Self {
        if !v.is_empty() {
            self.0.insert(key.into(), Value::Array(v));
        }
        self
    }
    fn value(mut self, key: &str, v: Value) -> Self {
        self.0.insert(key.into(), v);
        self
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// An attribute value.
pub fn any_value(v: &AnyValue) -> Value {
    match &v.value {
        None => json!({}),
        Some(any_value::Value::StringValue(s)) => json!({ "stringValue": s }),
        Some(any_value::Value::BoolValue(b)) => json!({ "boolValue": b }),
        Some(any_value::Value::IntValue(i)) => json!({ "intValue": i.to_string() }),
        Some(any_value::Value::DoubleValue(d)) => {
            // jsonpb writes non-finite doubles as strings.
            let n = serde_json::Number::from_f64(*d)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(non_finite(*d).into()));
            json!({ "doubleValue": n })
        }
        Some(any_value::Value::BytesValue(b)) => json!({ "bytesValue": b64(b) }),
        Some(any_value::Value::ArrayValue(a)) => {
            json!({ "arrayValue": { "values": a.values.iter().map(any_value).collect::<Vec<_>>() } })
        }
        Some(any_value::Value::KvlistValue(kv)) => {
            json!({ "kvlistValue": { "values": attributes(&kv.values) } })
        }
    }
}

fn non_finite(d: f64) -> &'static str {
    if d.is_nan() {
        "NaN"
    } else if d > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// A list of attributes.
pub fn attributes(kvs: &[KeyValue]) -> Vec<Value> {
    kvs.iter()
        .map(|kv| {
            Obj::default()
                .value("key", Value::String(kv.key.clone()))
                .value("value", kv.value.as_ref().map_or(json!({}), any_value))
                .done()
        })
        .collect()
}

const SPAN_KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];

const STATUS_CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

fn status(s: &Status) -> Value {
    let mut o = Obj::default().str("message", &s.message);
    if s.code != 0 {
        let name = usize::try_from(s.code)
            .ok()
            .and_then(|i| STATUS_CODES.get(i).copied());
        o = o.value("code", name.map_or(json!(s.code), |n| json!(n)));
    }
    o.done()
}

fn scope(s: &InstrumentationScope) -> Value {
    Obj::default()
        .str("name", &s.name)
        .str("version", &s.version)
        .list("attributes", attributes(&s.attributes))
        .u32("droppedAttributesCount", s.dropped_attributes_count)
        .done()
}

fn event(e: &span::Event) -> Value {
    Obj::default()
        .u64("timeUnixNano", e.time_unix_nano)
        .str("name", &e.name)
        .list("attributes", attributes(&e.attributes))
        .u32("droppedAttributesCount", e.dropped_attributes_count)
        .done()
}

fn link(l: &span::Link) -> Value {
    Obj::default()
        .bytes("traceId", &l.trace_id)
        .bytes("spanId", &l.span_id)
        .str("traceState", &l.trace_state)
        .list("attributes", attributes(&l.attributes))
        .u32("droppedAttributesCount", l.dropped_attributes_count)
        .u32("flags", l.flags)
        .done()
}

fn span(s: &Span) -> Value {
    let mut o = Obj::default()
        .bytes("traceId", &s.trace_id)
        .bytes("spanId", &s.span_id)
        .str("traceState", &s.trace_state)
        .bytes("parentSpanId", &s.parent_span_id)
        .u32("flags", s.flags)
        .str("name", &s.name);
    if s.kind != 0 {
        let name = usize::try_from(s.kind)
            .ok()
            .and_then(|i| SPAN_KINDS.get(i).copied());
        o = o.value("kind", name.map_or(json!(s.kind), |n| json!(n)));
    }
    o = o
        .u64("startTimeUnixNano", s.start_time_unix_nano)
        .u64("endTimeUnixNano", s.end_time_unix_nano)
        .list("attributes", attributes(&s.attributes))
        .u32("droppedAttributesCount", s.dropped_attributes_count)
        .list("events", s.events.iter().map(event).collect())
        .u32("droppedEventsCount", s.dropped_events_count)
        .list("links", s.links.iter().map(link).collect())
        .u32("droppedLinksCount", s.dropped_links_count);
    // A set message field is written even when empty (Tempo's sample shows `"status":{}`).
    if let Some(st) = &s.status {
        o = o.value("status", status(st));
    }
    o.done()
}

fn resource_spans(rs: &ResourceSpans) -> Value {
    let mut o = Obj::default();
    if let Some(r) = &rs.resource {
        o = o.value(
            "resource",
            Obj::default()
                .list("attributes", attributes(&r.attributes))
                .u32("droppedAttributesCount", r.dropped_attributes_count)
                .done(),
        );
    }
    let scopes = rs
        .scope_spans
        .iter()
        .map(|ss| {
            let mut s = Obj::default();
            if let Some(sc) = &ss.scope {
                s = s.value("scope", scope(sc));
            }
            s.list("spans", ss.spans.iter().map(span).collect())
                .str("schemaUrl", &ss.schema_url)
                .done()
        })
        .collect();
    o.list("scopeSpans", scopes)
        .str("schemaUrl", &rs.schema_url)
        .done()
}

/// `tempopb.Trace` (`/api/traces/{id}`).
pub fn trace(t: &Trace) -> Value {
    Obj::default()
        .list(
            "resourceSpans",
            t.resource_spans.iter().map(resource_spans).collect(),
        )
        .done()
}

/// `tempopb.TraceByIDResponse` (`/api/v2/traces/{id}`).
pub fn trace_by_id(r: &TraceByIdResponse) -> Value {
    let mut o = Obj::default();
    if let Some(t) = &r.trace {
        o = o.value("trace", trace(t));
    }
    if let Some(m) = &r.metrics {
        o = o.value(
            "metrics",
            Obj::default()
                .u64("inspectedBytes", m.inspected_bytes)
                .done(),
        );
    }
    if r.status == 1 {
        o = o.value("status", json!("PARTIAL"));
    }
    o.str("message", &r.message).done()
}

fn search_span(s: &SearchSpan) -> Value {
    Obj::default()
        .str("spanID", &s.span_id)
        .str("name", &s.name)
        .u64("startTimeUnixNano", s.start_time_unix_nano)
        .u64("durationNanos", s.duration_nanos)
        .list("attributes", attributes(&s.attributes))
        .done()
}

fn span_set(s: &SpanSet) -> Value {
    Obj::default()
        .list("spans", s.spans.iter().map(search_span).collect())
        .u32("matched", s.matched)
        .list("attributes", attributes(&s.attributes))
        .done()
}

fn trace_metadata(t: &TraceSearchMetadata) -> Value {
    let mut o = Obj::default()
        .str("traceID", &t.trace_id)
        .str("rootServiceName", &t.root_service_name)
        .str("rootTraceName", &t.root_trace_name)
        .u64("startTimeUnixNano", t.start_time_unix_nano);
    // Grafana reads durationMs as a number; a sub-millisecond trace is 0 and Tempo omits it.
    o = o.u32("durationMs", t.duration_ms);
    if let Some(s) = &t.span_set {
        o = o.value("spanSet", span_set(s));
    }
    o.list("spanSets", t.span_sets.iter().map(span_set).collect())
        .done()
}

fn search_metrics(m: &SearchMetrics) -> Value {
    Obj::default()
        .u32("inspectedTraces", m.inspected_traces)
        .u64("inspectedBytes", m.inspected_bytes)
        .u32("totalBlocks", m.total_blocks)
        .u32("completedJobs", m.completed_jobs)
        .u32("totalJobs", m.total_jobs)
        .u64("totalBlockBytes", m.total_block_bytes)
        .u64("inspectedSpans", m.inspected_spans)
        .done()
}

/// `tempopb.SearchResponse` (`/api/search`). `traces` is always present, empty or not, as Tempo
/// writes it.
pub fn search(r: &SearchResponse) -> Value {
    let traces: Vec<Value> = r.traces.iter().map(trace_metadata).collect();
    let mut o = Obj::default().value("traces", Value::Array(traces));
    if let Some(m) = &r.metrics {
        o = o.value("metrics", search_metrics(m));
    }
    o.done()
}
