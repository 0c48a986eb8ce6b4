//! Fuzz-style tests for every decoder: truncated, bit-flipped, random and oversized payloads
//! give an error or a valid decode, never a panic.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tempest_traces::{jaeger, otlp, zipkin};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn valid_protobuf() -> Vec<u8> {
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "op".into(),
        attributes: vec![KeyValue {
            key: "k".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("v".into())),
            }),
        }],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                spans: vec![span.clone(), span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

const ZIPKIN: &[u8] = br#"[{"traceId":"5af7183fb1d4cf5f","id":"6b221d5bc9e6496c","name":"get","kind":"SERVER","timestamp":1,"duration":2,"localEndpoint":{"serviceName":"s"},"tags":{"a":"b"},"annotations":[{"timestamp":1,"value":"x"}]}]"#;
const OTLP_JSON: &[u8] = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"n","attributes":[{"key":"i","value":{"intValue":"5"}}]}]}]}]}"#;

/// Every way of breaking `valid` that we try, fed to `decode`; it must return, not panic.
fn hammer(valid: &[u8], decode: impl Fn(&[u8]) -> bool) {
    assert!(decode(valid), "the valid payload decodes");
    for cut in 0..valid.len() {
        decode(&valid[..cut]);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2_000 {
        let mut b = valid.to_vec();
        for _ in 0..(rng.next() % 4 + 1) {
            let i = (rng.next() as usize) % b.len();
            b[i] ^= 1 << (rng.next() % 8);
        }
        decode(&b);
        let n = (rng.next() % 512) as usize;
        decode(&rng.bytes(n));
    }
    decode(&vec![0xff; 1 << 20]);
    decode(&[]);
}

#[test]
fn otlp_protobuf_never_panics() {
    hammer(&valid_protobuf(), |b| {
        otlp::decode_protobuf(b).is_ok_and(|d| d.spans.len() == 2)
    });
}

#[test]
fn otlp_json_never_panics() {
    hammer(OTLP_JSON, |b| {
        otlp::decode_json(b).is_ok_and(|d| d.spans.len() == 1)
    });
}

#[test]
fn zipkin_never_panics() {
    hammer(ZIPKIN, |b| {
        zipkin::decode_json(b).is_ok_and(|s| s.len() == 1)
    });
}

#[test]
fn jaeger_thrift_never_panics() {
    // A Batch with a process and one span, written with the binary protocol by hand.
    let mut b = vec![
        12, 0, 1, 11, 0, 1, 0, 0, 0, 1, b's', 0, 15, 0, 2, 12, 0, 0, 0, 1,
    ];
    for (id, v) in [(1i16, 1i64), (2, 2), (3, 3)] {
        b.push(10);
        b.extend_from_slice(&id.to_be_bytes());
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(&[11, 0, 5, 0, 0, 0, 2, b'o', b'p', 0, 0]);
    hammer(&b, |p| jaeger::decode_thrift(p).is_ok_and(|s| s.len() == 1));
}
