//! Jaeger Thrift over HTTP (`POST /api/traces`, `application/x-thrift`, binary protocol) into the
//! span model, as the OpenTelemetry Collector's Jaeger receiver maps it: the process's service
//! name and tags become the resource, tags become attributes, logs become events, `CHILD_OF`
//! references give the parent, `FOLLOWS_FROM` references become links, and the `error` tag
//! sets an error status.

use std::sync::Arc;

use crate::DecodeError;
use crate::model::{AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanKind};
use crate::thrift::{TValue, read_struct};

fn invalid(field: &'static str, message: impl Into<String>) -> DecodeError {
    DecodeError::Invalid {
        field,
        message: message.into(),
    }
}

fn tag(t: &TValue) -> Result<KeyValue, DecodeError> {
    let key = t
        .field(1)
        .and_then(TValue::text)
        .ok_or_else(|| invalid("tag.key", "missing"))?;
    let value = match t.field(2).and_then(TValue::int).unwrap_or(0) {
        0 => AnyValue::Str(t.field(3).and_then(TValue::text).unwrap_or_default()),
        1 => AnyValue::Double(match t.field(4) {
            Some(TValue::Double(d)) => *d,
            _ => 0.0,
        }),
        2 => AnyValue::Bool(matches!(t.field(5), Some(TValue::Bool(true)))),
        3 => AnyValue::Int(t.field(6).and_then(TValue::int).unwrap_or(0)),
        4 => AnyValue::Bytes(match t.field(7) {
            Some(TValue::Bytes(b)) => b.clone(),
            _ => vec![],
        }),
        other => return Err(invalid("tag.vType", format!("unknown tag type {other}"))),
    };
    Ok(KeyValue { key, value })
}

fn tags(v: Option<&TValue>) -> Result<Vec<KeyValue>, DecodeError> {
    v.map(|l| l.list().iter().map(tag).collect())
        .unwrap_or_else(|| Ok(Vec::new()))
}

fn trace_id(low: i64, high: i64) -> Result<[u8; 16], DecodeError> {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&high.to_be_bytes());
    id[8..].copy_from_slice(&low.to_be_bytes());
    if id == [0; 16] {
        return Err(invalid("traceId", "must not be zero"));
    }
    Ok(id)
}

fn span_id(v: i64, field: &'static str) -> Result<[u8; 8], DecodeError> {
    if v == 0 {
        return Err(invalid(field, "must not be zero"));
    }
    Ok(v.to_be_bytes())
}

/// Decodes a Thrift binary `Batch`.
pub fn decode_thrift(body: &[u8]) -> Result<Vec<Span>, DecodeError> {
    let batch = read_struct(body)?;
    let process = batch
        .field(1)
        .ok_or_else(|| invalid("process", "missing"))?;
    let service = process.field(1).and_then(TValue::text).unwrap_or_default();
    let mut resource_attrs = vec![KeyValue::str("service.name", &service)];
    resource_attrs.extend(tags(process.field(2))?);
    let resource = Arc::new(Resource {
        attributes: resource_attrs,
        dropped_attributes_count: 0,
    });
    let scope = Arc::new(Scope {
        name: "jaeger".into(),
        ..Scope::default()
    });
    let mut out = Vec::new();
    for s in batch.field(2).map(TValue::list).unwrap_or_default() {
        let int = |id: i16| s.field(id).and_then(TValue::int).unwrap_or(0);
        let tid = trace_id(int(1), int(2))?;
        let mut attributes = tags(s.field(10))?;
        let mut kind = SpanKind::Internal;
        let (mut status_code, mut status_message) = (0, String::new());
        attributes.retain(|kv| match (kv.key.as_str(), &kv.value) {
            ("span.kind", AnyValue::Str(k)) => {
                kind = match k.as_str() {
                    "server" => SpanKind::Server,
                    "client" => SpanKind::Client,
                    "producer" => SpanKind::Producer,
                    "consumer" => SpanKind::Consumer,
                    _ => SpanKind::Internal,
                };
                false
            }
            ("error", AnyValue::Bool(true)) => {
                status_code = 2;
                true
            }
            ("otel.status_description", AnyValue::Str(m)) => {
                status_message = m.clone();
                true
            }
            _ => true,
        });
        let mut parent = match int(4) {
            0 => None,
            p => Some(span_id(p, "parentSpanId")?),
        };
        let mut links = Vec::new();
        for r in s.field(6).map(TValue::list).unwrap_or_default() {
            let rint = |id: i16| r.field(id).and_then(TValue::int).unwrap_or(0);
            let (rt, rs) = (
                trace_id(rint(2), rint(3))?,
                span_id(rint(4), "reference.spanId")?,
            );
            if rint(1) == 0 && rt == tid && parent.is_none() {
                parent = Some(rs);
            } else {
                links.push(Link {
                    trace_id: rt,
                    span_id: rs,
                    trace_state: String::new(),
                    attributes: vec![],
                    dropped_attributes_count: 0,
                    flags: 0,
                });
            }
        }
        let mut events = Vec::new();
        for l in s.field(11).map(TValue::list).unwrap_or_default() {
            let mut fields = tags(l.field(2))?;
            let name = fields
                .iter()
                .position(|kv| kv.key == "event")
                .map(|i| fields.remove(i).value)
                .and_then(|v| match v {
                    AnyValue::Str(s) => Some(s),
                    _ => None,
                });
            events.push(Event {
                time_unix_nano: (l.field(1).and_then(TValue::int).unwrap_or(0).max(0) as u64)
                    .saturating_mul(1000),
                name: name.unwrap_or_default(),
                attributes: fields,
                dropped_attributes_count: 0,
            });
        }
        let start = (int(8).max(0) as u64).saturating_mul(1000);
        out.push(Span {
            trace_id: tid,
            span_id: span_id(int(3), "spanId")?,
            parent_span_id: parent,
            trace_state: String::new(),
            flags: int(7) as u32,
            name: s.field(5).and_then(TValue::text).unwrap_or_default(),
            kind,
            start_unix_nano: start,
            end_unix_nano: start.saturating_add((int(9).max(0) as u64).saturating_mul(1000)),
            attributes,
            dropped_attributes_count: 0,
            events,
            dropped_events_count: 0,
            links,
            dropped_links_count: 0,
            status_code,
            status_message,
            resource: resource.clone(),
            scope: scope.clone(),
        });
    }
    Ok(out)
}

/// Thrift binary-protocol writer for the few shapes a Jaeger `Batch` needs.
struct Writer(Vec<u8>);

impl Writer {
    fn field(&mut self, ty: u8, id: i16) {
        self.0.push(ty);
        self.0.extend_from_slice(&id.to_be_bytes());
    }
    fn i64(&mut self, id: i16, v: i64) {
        self.field(10, id);
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, id: i16, v: i32) {
        self.field(8, id);
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, id: i16, v: &[u8]) {
        self.field(11, id);
        self.0.extend_from_slice(&(v.len() as i32).to_be_bytes());
        self.0.extend_from_slice(v);
    }
    fn list_of_structs(&mut self, id: i16, n: usize) {
        self.field(15, id);
        self.0.push(12);
        self.0.extend_from_slice(&(n as i32).to_be_bytes());
    }
    fn stop(&mut self) {
        self.0.push(0);
    }
    fn tag(&mut self, kv: &KeyValue) {
        self.bytes(1, kv.key.as_bytes());
        match &kv.value {
            AnyValue::Bool(b) => {
                self.i32(2, 2);
                self.field(2, 5);
                self.0.push(u8::from(*b));
            }
            AnyValue::Int(i) => {
                self.i32(2, 3);
                self.i64(6, *i);
            }
            AnyValue::Double(d) => {
                self.i32(2, 1);
                self.field(4, 4);
                self.0.extend_from_slice(&d.to_bits().to_be_bytes());
            }
            AnyValue::Bytes(b) => {
                self.i32(2, 4);
                self.bytes(7, b);
            }
            AnyValue::Str(s) => {
                self.i32(2, 0);
                self.bytes(3, s.as_bytes());
            }
            other => {
                self.i32(2, 0);
                self.bytes(3, format!("{other:?}").as_bytes());
            }
        }
        self.stop();
    }
    fn tags(&mut self, id: i16, kvs: &[KeyValue]) {
        self.list_of_structs(id, kvs.len());
        for kv in kvs {
            self.tag(kv);
        }
    }
}

/// Encodes spans as Jaeger Thrift `Batch`es (binary protocol), one per service, each ready to
/// `POST /api/traces`.
pub fn encode_thrift(spans: &[Span]) -> Vec<Vec<u8>> {
    let mut services: Vec<(&str, Vec<&Span>)> = Vec::new();
    for s in spans {
        let name = s.resource.service_name().unwrap_or("unknown_service");
        match services.iter_mut().find(|(n, _)| *n == name) {
            Some((_, list)) => list.push(s),
            None => services.push((name, vec![s])),
        }
    }
    services
        .into_iter()
        .map(|(service, spans)| {
            let mut w = Writer(Vec::new());
            w.field(12, 1);
            w.bytes(1, service.as_bytes());
            w.stop();
            w.list_of_structs(2, spans.len());
            for s in spans {
                let high = i64::from_be_bytes(s.trace_id[..8].try_into().unwrap_or_default());
                let low = i64::from_be_bytes(s.trace_id[8..].try_into().unwrap_or_default());
                w.i64(1, low);
                w.i64(2, high);
                w.i64(3, i64::from_be_bytes(s.span_id));
                w.i64(4, s.parent_span_id.map_or(0, i64::from_be_bytes));
                w.bytes(5, s.name.as_bytes());
                w.i32(7, s.flags as i32);
                w.i64(8, (s.start_unix_nano / 1000) as i64);
                w.i64(9, (s.duration_nano() / 1000) as i64);
                let mut tags = s.attributes.clone();
                let kind = match s.kind {
                    SpanKind::Server => Some("server"),
                    SpanKind::Client => Some("client"),
                    SpanKind::Producer => Some("producer"),
                    SpanKind::Consumer => Some("consumer"),
                    _ => None,
                };
                if let Some(k) = kind {
                    tags.push(KeyValue::str("span.kind", k));
                }
                if s.status_code == 2 {
                    tags.push(KeyValue {
                        key: "error".into(),
                        value: AnyValue::Bool(true),
                    });
                }
                w.tags(10, &tags);
                w.list_of_structs(11, s.events.len());
                for e in &s.events {
                    w.i64(1, (e.time_unix_nano / 1000) as i64);
                    let mut fields = vec![KeyValue::str("event", &e.name)];
                    fields.extend(e.attributes.iter().cloned());
                    w.tags(2, &fields);
                    w.stop();
                }
                w.stop();
            }
            w.stop();
            w.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal binary-protocol writer for the test payloads.
    struct W(Vec<u8>);
    impl W {
        fn field(&mut self, ty: u8, id: i16) -> &mut Self {
            self.0.push(ty);
            self.0.extend_from_slice(&id.to_be_bytes());
            self
        }
        fn i64(&mut self, v: i64) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i32(&mut self, v: i32) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn str(&mut self, s: &str) -> &mut Self {
            self.i32(s.len() as i32);
            self.0.extend_from_slice(s.as_bytes());
            self
        }
        fn stop(&mut self) -> &mut Self {
            self.0.push(0);
            self
        }
    }

    fn batch() -> Vec<u8> {
        let mut w = W(Vec::new());
        w.field(12, 1).field(11, 1).str("jaeger-svc").stop();
        w.field(15, 2).0.push(12);
        w.i32(1);
        w.field(10, 1)
            .i64(0x22)
            .field(10, 2)
            .i64(0x11)
            .field(10, 3)
            .i64(0x33)
            .field(10, 4)
            .i64(0x44)
            .field(11, 5)
            .str("op");
        w.field(8, 7)
            .i32(1)
            .field(10, 8)
            .i64(1_000_000)
            .field(10, 9)
            .i64(250);
        w.field(15, 10).0.push(12);
        w.i32(1)
            .field(11, 1)
            .str("span.kind")
            .field(8, 2)
            .i32(0)
            .field(11, 3)
            .str("server")
            .stop();
        w.stop();
        w.stop();
        w.0
    }

    #[test]
    fn decodes_a_batch() {
        let spans = decode_thrift(&batch()).expect("decode");
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(s.trace_id[7], 0x11);
        assert_eq!(s.trace_id[15], 0x22);
        assert_eq!(s.parent_span_id, Some(0x44i64.to_be_bytes()));
        assert_eq!(s.kind, SpanKind::Server);
        assert_eq!(s.duration_nano(), 250_000);
        assert_eq!(s.resource.service_name(), Some("jaeger-svc"));
    }

    #[test]
    fn encoder_round_trips_through_the_decoder() {
        let original = decode_thrift(&batch()).expect("decode");
        let encoded = encode_thrift(&original);
        assert_eq!(encoded.len(), 1);
        let back = decode_thrift(&encoded[0]).expect("decode encoded");
        assert_eq!(back.len(), 1);
        let (a, b) = (&original[0], &back[0]);
        assert_eq!(
            (a.trace_id, a.span_id, a.parent_span_id, &a.name, a.kind),
            (b.trace_id, b.span_id, b.parent_span_id, &b.name, b.kind)
        );
        assert_eq!(
            (a.start_unix_nano, a.end_unix_nano),
            (b.start_unix_nano, b.end_unix_nano)
        );
    }

    #[test]
    fn hostile_payloads_are_errors() {
        let good = batch();
        for cut in 0..good.len() {
            assert!(decode_thrift(&good[..cut]).is_err(), "truncated at {cut}");
        }
        // A list claiming two billion elements.
        assert!(decode_thrift(&[15, 0, 2, 12, 0x7f, 0xff, 0xff, 0xff, 0]).is_err());
        // Deep nesting.
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(&[12, 0, 1]);
        }
        assert!(decode_thrift(&deep).is_err());
        assert!(decode_thrift(&[99]).is_err());
    }
}
