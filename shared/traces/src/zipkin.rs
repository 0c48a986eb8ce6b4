//! Zipkin v2 JSON (`POST /api/v2/spans`) into the span model, following the OpenTelemetry
//! Collector's Zipkin receiver: `localEndpoint.serviceName` becomes the resource's
//! `service.name`, tags become string attributes, annotations become events, the `error` tag
//! sets an error status, and the remote endpoint is kept as `net.peer.*` / `peer.service`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::DecodeError;
use crate::model::{Event, KeyValue, Resource, Scope, Span, SpanKind};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    service_name: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    port: Option<u16>,
}

#[derive(Deserialize)]
struct Annotation {
    timestamp: u64,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZipkinSpan {
    trace_id: String,
    id: String,
    parent_id: Option<String>,
    name: Option<String>,
    kind: Option<String>,
    timestamp: Option<u64>,
    duration: Option<u64>,
    local_endpoint: Option<Endpoint>,
    remote_endpoint: Option<Endpoint>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    annotations: Vec<Annotation>,
    debug: Option<bool>,
    shared: Option<bool>,
}

fn hex_id<const N: usize>(s: &str, field: &'static str) -> Result<[u8; N], DecodeError> {
    let invalid = |message: String| DecodeError::Invalid { field, message };
    // Zipkin allows 64-bit trace ids; they are left-padded to 128 bits as the collector does.
    let s = s.trim();
    if s.is_empty() || s.len() > N * 2 {
        return Err(invalid(format!("{s:?} is not a {}-hex-digit id", N * 2)));
    }
    let padded = format!("{s:0>width$}", width = N * 2);
    let mut out = [0u8; N];
    for (i, chunk) in padded.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(chunk).map_err(|_| invalid("not hex".into()))?;
        out[i] = u8::from_str_radix(hex, 16).map_err(|_| invalid(format!("{s:?} is not hex")))?;
    }
    if out.iter().all(|b| *b == 0) {
        return Err(invalid("must not be all zeros".into()));
    }
    Ok(out)
}

/// Decodes a Zipkin v2 JSON array of spans.
pub fn decode_json(body: &[u8]) -> Result<Vec<Span>, DecodeError> {
    let spans: Vec<ZipkinSpan> =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let scope = Arc::new(Scope {
        name: "zipkin".into(),
        ..Scope::default()
    });
    let mut resources: BTreeMap<String, Arc<Resource>> = BTreeMap::new();
    let mut out = Vec::with_capacity(spans.len());
    for z in spans {
        let service = z
            .local_endpoint
            .as_ref()
            .and_then(|e| e.service_name.clone())
            .unwrap_or_else(|| "unknown_service".into());
        let resource = resources
            .entry(service.clone())
            .or_insert_with(|| {
                Arc::new(Resource {
                    attributes: vec![KeyValue::str("service.name", &service)],
                    dropped_attributes_count: 0,
                })
            })
            .clone();
        let start = z.timestamp.unwrap_or(0).saturating_mul(1000);
        let mut attributes: Vec<KeyValue> = Vec::new();
        let mut status_code = 0;
        let mut status_message = String::new();
        for (k, v) in z.tags {
            if k == "error" {
                status_code = 2;
                status_message = v.clone();
            }
            attributes.push(KeyValue::str(&k, &v));
        }
        if let Some(local) = &z.local_endpoint {
            if let Some(ip) = local.ipv4.as_deref().or(local.ipv6.as_deref()) {
                attributes.push(KeyValue::str("net.host.ip", ip));
            }
            if let Some(port) = local.port {
                attributes.push(KeyValue {
                    key: "net.host.port".into(),
                    value: crate::AnyValue::Int(i64::from(port)),
                });
            }
        }
        if let Some(remote) = &z.remote_endpoint {
            if let Some(name) = &remote.service_name {
                attributes.push(KeyValue::str("peer.service", name));
            }
            if let Some(ip) = remote.ipv4.as_deref().or(remote.ipv6.as_deref()) {
                attributes.push(KeyValue::str("net.peer.ip", ip));
            }
            if let Some(port) = remote.port {
                attributes.push(KeyValue {
                    key: "net.peer.port".into(),
                    value: crate::AnyValue::Int(i64::from(port)),
                });
            }
        }
        if z.debug == Some(true) {
            attributes.push(KeyValue {
                key: "zipkin.debug".into(),
                value: crate::AnyValue::Bool(true),
            });
        }
        if z.shared == Some(true) {
            attributes.push(KeyValue {
                key: "zipkin.shared".into(),
                value: crate::AnyValue::Bool(true),
            });
        }
        let kind = match z.kind.as_deref() {
            Some("SERVER") => SpanKind::Server,
            Some("CLIENT") => SpanKind::Client,
            Some("PRODUCER") => SpanKind::Producer,
            Some("CONSUMER") => SpanKind::Consumer,
            None => SpanKind::Internal,
            Some(other) => {
                return Err(DecodeError::Invalid {
                    field: "kind",
                    message: format!("unknown span kind {other:?}"),
                });
            }
        };
        out.push(Span {
            trace_id: hex_id::<16>(&z.trace_id, "traceId")?,
            span_id: hex_id::<8>(&z.id, "id")?,
            parent_span_id: z
                .parent_id
                .as_deref()
                .filter(|p| !p.is_empty())
                .map(|p| hex_id::<8>(p, "parentId"))
                .transpose()?,
            trace_state: String::new(),
            flags: 0,
            name: z.name.unwrap_or_default(),
            kind,
            start_unix_nano: start,
            end_unix_nano: start.saturating_add(z.duration.unwrap_or(0).saturating_mul(1000)),
            attributes,
            dropped_attributes_count: 0,
            events: z
                .annotations
                .into_iter()
                .map(|a| Event {
                    time_unix_nano: a.timestamp.saturating_mul(1000),
                    name: a.value,
                    attributes: vec![],
                    dropped_attributes_count: 0,
                })
                .collect(),
            dropped_events_count: 0,
            links: vec![],
            dropped_links_count: 0,
            status_code,
            status_message,
            resource,
            scope: scope.clone(),
        });
    }
    Ok(out)
}

fn tag_text(v: &crate::AnyValue) -> String {
    match v {
        crate::AnyValue::Str(s) => s.clone(),
        crate::AnyValue::Bool(b) => b.to_string(),
        crate::AnyValue::Int(i) => i.to_string(),
        crate::AnyValue::Double(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// Encodes spans as Zipkin v2 JSON (tags as strings, as Zipkin requires).
pub fn encode_json(spans: &[Span]) -> Vec<u8> {
    let items: Vec<serde_json::Value> = spans
        .iter()
        .map(|s| {
            let tags: BTreeMap<String, String> = s.attributes.iter().map(|kv| (kv.key.clone(), tag_text(&kv.value))).collect();
            let mut v = serde_json::json!({
                "traceId": tempest_core::hex::encode(&s.trace_id),
                "id": tempest_core::hex::encode(&s.span_id),
                "name": s.name,
                "timestamp": s.start_unix_nano / 1000,
                "duration": s.duration_nano() / 1000,
                "localEndpoint": {"serviceName": s.resource.service_name().unwrap_or("unknown_service")},
                "tags": tags,
            });
            if let Some(p) = &s.parent_span_id {
                v["parentId"] = tempest_core::hex::encode(p).into();
            }
            let kind = match s.kind {
                SpanKind::Server => Some("SERVER"),
                SpanKind::Client => Some("CLIENT"),
                SpanKind::Producer => Some("PRODUCER"),
                SpanKind::Consumer => Some("CONSUMER"),
                _ => None,
            };
            if let Some(k) = kind {
                v["kind"] = k.into();
            }
            v
        })
        .collect();
    serde_json::to_vec(&items).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_zipkin_span() {
        let body = br#"[{"traceId":"5af7183fb1d4cf5f","id":"6b221d5bc9e6496c","parentId":"5af7183fb1d4cf5f","name":"get /api","kind":"SERVER","timestamp":1556604172355737,"duration":1431,"localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.1","port":3306},"remoteEndpoint":{"ipv4":"172.19.0.2","port":58648},"tags":{"http.method":"GET","error":"boom"},"annotations":[{"timestamp":1556604172355800,"value":"ws"}]}]"#;
        let spans = decode_json(body).expect("decode");
        let s = &spans[0];
        assert_eq!(s.trace_id[..8], [0u8; 8]);
        assert_eq!(s.trace_id[8], 0x5a);
        assert_eq!(s.kind, SpanKind::Server);
        assert_eq!(s.start_unix_nano, 1_556_604_172_355_737_000);
        assert_eq!(s.duration_nano(), 1_431_000);
        assert_eq!(s.resource.service_name(), Some("backend"));
        assert_eq!(s.status_code, 2);
        assert_eq!(s.events[0].name, "ws");
        assert!(s.attributes.iter().any(|a| a.key == "http.method"));
    }

    #[test]
    fn rejects_bad_ids_and_kinds() {
        for bad in [
            r#"[{"traceId":"zz","id":"6b221d5bc9e6496c"}]"#,
            r#"[{"traceId":"5af7183fb1d4cf5f","id":"0000000000000000"}]"#,
            r#"[{"traceId":"5af7183fb1d4cf5f","id":"6b221d5bc9e6496c","kind":"SIDEWAYS"}]"#,
            r#"[{"traceId":"5af7183fb1d4cf5f5af7183fb1d4cf5f00","id":"6b221d5bc9e6496c"}]"#,
            r#"{"traceId":"5af7183fb1d4cf5f"}"#,
            "[",
        ] {
            assert!(decode_json(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
