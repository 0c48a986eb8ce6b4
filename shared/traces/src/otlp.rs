//! OTLP traces: `ExportTraceServiceRequest` as protobuf (gRPC and HTTP) or as OTLP/JSON, into
//! the span model. Spans with invalid ids are rejected one by one (OTLP partial success).

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as common;
use prost::Message;

use crate::DecodeError;
use crate::model::{AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanKind};

/// Decoded spans and what was rejected.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Accepted spans.
    pub spans: Vec<Span>,
    /// Spans rejected for invalid ids.
    pub rejected: u64,
    /// Why the first rejected span was rejected.
    pub rejection: Option<String>,
}

/// Decodes a protobuf `ExportTraceServiceRequest`.
pub fn decode_protobuf(body: &[u8]) -> Result<Decoded, DecodeError> {
    let req = ExportTraceServiceRequest::decode(body)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(from_request(req))
}

/// Decodes an OTLP/JSON `ExportTraceServiceRequest` (hex ids, enum numbers).
pub fn decode_json(body: &[u8]) -> Result<Decoded, DecodeError> {
    let req: ExportTraceServiceRequest =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(from_request(req))
}

fn value(v: Option<common::AnyValue>) -> AnyValue {
    use common::any_value::Value;
    match v.and_then(|v| v.value) {
        None => AnyValue::Str(String::new()),
        Some(Value::StringValue(s)) => AnyValue::Str(s),
        Some(Value::BoolValue(b)) => AnyValue::Bool(b),
        Some(Value::IntValue(i)) => AnyValue::Int(i),
        Some(Value::DoubleValue(d)) => AnyValue::Double(d),
        Some(Value::BytesValue(b)) => AnyValue::Bytes(b),
        Some(Value::ArrayValue(a)) => {
            AnyValue::Array(a.values.into_iter().map(|v| value(Some(v))).collect())
        }
        Some(Value::KvlistValue(kv)) => AnyValue::KvList(attributes(kv.values)),
    }
}

fn attributes(kvs: Vec<common::KeyValue>) -> Vec<KeyValue> {
    kvs.into_iter()
        .map(|kv| KeyValue {
            key: kv.key,
            value: value(kv.value),
        })
        .collect()
}

fn id<const N: usize>(bytes: &[u8], field: &'static str) -> Result<[u8; N], String> {
    let arr: [u8; N] = bytes
        .try_into()
        .map_err(|_| format!("{field} must be {N} bytes, got {}", bytes.len()))?;
    if arr.iter().all(|b| *b == 0) {
        return Err(format!("{field} must not be all zeros"));
    }
    Ok(arr)
}

/// Converts an already-decoded request (from gRPC) into spans.
pub fn from_request(req: ExportTraceServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    for rs in req.resource_spans {
        let resource = Arc::new(rs.resource.map_or_else(Resource::default, |r| Resource {
            attributes: attributes(r.attributes),
            dropped_attributes_count: r.dropped_attributes_count,
        }));
        for ss in rs.scope_spans {
            let scope = Arc::new(ss.scope.map_or_else(Scope::default, |s| Scope {
                name: s.name,
                version: s.version,
                attributes: attributes(s.attributes),
                dropped_attributes_count: s.dropped_attributes_count,
            }));
            for span in ss.spans {
                match convert(span, &resource, &scope) {
                    Ok(s) => out.spans.push(s),
                    Err(why) => {
                        out.rejected += 1;
                        out.rejection.get_or_insert(why);
                    }
                }
            }
        }
    }
    out
}

fn convert(
    s: opentelemetry_proto::tonic::trace::v1::Span,
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
) -> Result<Span, String> {
    let parent_span_id = if s.parent_span_id.is_empty() {
        None
    } else {
        Some(id::<8>(&s.parent_span_id, "parent_span_id")?)
    };
    let mut links = Vec::with_capacity(s.links.len());
    for l in s.links {
        links.push(Link {
            trace_id: id::<16>(&l.trace_id, "link trace_id")?,
            span_id: id::<8>(&l.span_id, "link span_id")?,
            trace_state: l.trace_state,
            attributes: attributes(l.attributes),
            dropped_attributes_count: l.dropped_attributes_count,
            flags: l.flags,
        });
    }
    let status = s.status.unwrap_or_default();
    Ok(Span {
        trace_id: id::<16>(&s.trace_id, "trace_id")?,
        span_id: id::<8>(&s.span_id, "span_id")?,
        parent_span_id,
        trace_state: s.trace_state,
        flags: s.flags,
        name: s.name,
        kind: SpanKind::from_i32(s.kind),
        start_unix_nano: s.start_time_unix_nano,
        end_unix_nano: s.end_time_unix_nano,
        attributes: attributes(s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: s
            .events
            .into_iter()
            .map(|e| Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name,
                attributes: attributes(e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: s.dropped_events_count,
        links,
        dropped_links_count: s.dropped_links_count,
        status_code: status.code,
        status_message: status.message,
        resource: resource.clone(),
        scope: scope.clone(),
    })
}

/// The protobuf `ExportTraceServiceResponse` for a request, with partial success when spans were rejected.
pub fn response_protobuf(rejected: u64, message: Option<&str>) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    let resp = ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected as i64,
            error_message: message.unwrap_or_default().to_owned(),
        }),
    };
    resp.encode_to_vec()
}

/// The OTLP/JSON `ExportTraceServiceResponse`.
pub fn response_json(rejected: u64, message: Option<&str>) -> serde_json::Value {
    if rejected == 0 {
        return serde_json::json!({});
    }
    serde_json::json!({"partialSuccess": {"rejectedSpans": rejected.to_string(), "errorMessage": message.unwrap_or_default()}})
}

/// An attribute value as OTLP protobuf.
pub fn to_any(v: &AnyValue) -> common::AnyValue {
    use common::any_value::Value;
    let value = match v {
        AnyValue::Str(s) => Value::StringValue(s.clone()),
        AnyValue::Bool(b) => Value::BoolValue(*b),
        AnyValue::Int(i) => Value::IntValue(*i),
        AnyValue::Double(d) => Value::DoubleValue(*d),
        AnyValue::Bytes(b) => Value::BytesValue(b.clone()),
        AnyValue::Array(items) => Value::ArrayValue(common::ArrayValue {
            values: items.iter().map(to_any).collect(),
        }),
        AnyValue::KvList(kvs) => Value::KvlistValue(common::KeyValueList {
            values: to_kvs(kvs),
        }),
    };
    common::AnyValue { value: Some(value) }
}

/// Attributes as OTLP protobuf.
pub fn to_kvs(kvs: &[KeyValue]) -> Vec<common::KeyValue> {
    kvs.iter()
        .map(|kv| common::KeyValue {
            key: kv.key.clone(),
            value: Some(to_any(&kv.value)),
        })
        .collect()
}

/// Encodes spans as an OTLP request, one `ResourceSpans` per distinct resource and one
/// `ScopeSpans` per distinct scope within it (the inverse of the decoders; also the body of
/// Tempo's trace-by-ID responses, whose `Trace` is OTLP's `TracesData`). Equal resources and
/// scopes group together even when they are separate copies (spans read from several blocks).
pub fn encode_request(spans: &[Span]) -> ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::resource::v1::Resource as PResource;
    use opentelemetry_proto::tonic::trace::v1 as t;
    let mut out: Vec<t::ResourceSpans> = Vec::new();
    let mut keys: Vec<(&Arc<Resource>, Vec<&Arc<Scope>>)> = Vec::new();
    for s in spans {
        let same_resource = |k: &&Arc<Resource>| Arc::ptr_eq(k, &s.resource) || ***k == *s.resource;
        let ri = match keys.iter().position(|(k, _)| same_resource(k)) {
            Some(i) => i,
            None => {
                keys.push((&s.resource, Vec::new()));
                out.push(t::ResourceSpans {
                    resource: Some(PResource {
                        attributes: to_kvs(&s.resource.attributes),
                        dropped_attributes_count: s.resource.dropped_attributes_count,
                        entity_refs: vec![],
                    }),
                    scope_spans: vec![],
                    schema_url: String::new(),
                });
                keys.len() - 1
            }
        };
        let si = match keys[ri]
            .1
            .iter()
            .position(|k| Arc::ptr_eq(k, &s.scope) || ***k == *s.scope)
        {
            Some(i) => i,
            None => {
                keys[ri].1.push(&s.scope);
                out[ri].scope_spans.push(t::ScopeSpans {
                    scope: Some(common::InstrumentationScope {
                        name: s.scope.name.clone(),
                        version: s.scope.version.clone(),
                        attributes: to_kvs(&s.scope.attributes),
                        dropped_attributes_count: s.scope.dropped_attributes_count,
                    }),
                    spans: vec![],
                    schema_url: String::new(),
                });
                keys[ri].1.len() - 1
            }
        };
        out[ri].scope_spans[si].spans.push(t::Span {
            trace_id: s.trace_id.to_vec(),
            span_id: s.span_id.to_vec(),
            trace_state: s.trace_state.clone(),
            parent_span_id: s.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
            flags: s.flags,
            name: s.name.clone(),
            kind: s.kind as i32,
            start_time_unix_nano: s.start_unix_nano,
            end_time_unix_nano: s.end_unix_nano,
            attributes: to_kvs(&s.attributes),
            dropped_attributes_count: s.dropped_attributes_count,
            events: s
                .events
                .iter()
                .map(|e| t::span::Event {
                    time_unix_nano: e.time_unix_nano,
                    name: e.name.clone(),
                    attributes: to_kvs(&e.attributes),
                    dropped_attributes_count: e.dropped_attributes_count,
                })
                .collect(),
            dropped_events_count: s.dropped_events_count,
            links: s
                .links
                .iter()
                .map(|l| t::span::Link {
                    trace_id: l.trace_id.to_vec(),
                    span_id: l.span_id.to_vec(),
                    trace_state: l.trace_state.clone(),
                    attributes: to_kvs(&l.attributes),
                    dropped_attributes_count: l.dropped_attributes_count,
                    flags: l.flags,
                })
                .collect(),
            dropped_links_count: s.dropped_links_count,
            status: Some(t::Status {
                message: s.status_message.clone(),
                code: s.status_code,
            }),
        });
    }
    ExportTraceServiceRequest {
        resource_spans: out,
    }
}
