//! Parsing never panics: every prefix and suffix of every corpus query, mutated queries, random
//! token soup and byte noise. Whatever parses is also evaluated on a small trace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tempest_traces::{AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanKind};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn corpus_queries() -> Vec<String> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus.txt")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("ok ").or_else(|| l.strip_prefix("no ")))
        .map(str::to_string)
        .collect()
}

fn small_trace() -> Vec<Span> {
    let resource = Arc::new(Resource {
        attributes: vec![KeyValue::str("service.name", "svc")],
        dropped_attributes_count: 0,
    });
    let scope = Arc::new(Scope {
        name: "lib".into(),
        version: "1".into(),
        attributes: vec![],
        dropped_attributes_count: 0,
    });
    let mk = |id: u8, parent: Option<u8>, name: &str, attrs: Vec<KeyValue>| Span {
        trace_id: [1; 16],
        span_id: [id; 8],
        parent_span_id: parent.map(|p| [p; 8]),
        trace_state: String::new(),
        flags: 0,
        name: name.into(),
        kind: SpanKind::Server,
        start_unix_nano: u64::from(id) * 1_000,
        end_unix_nano: u64::from(id) * 1_000 + 500,
        attributes: attrs,
        dropped_attributes_count: 0,
        events: vec![Event {
            time_unix_nano: 0,
            name: "e".into(),
            attributes: vec![KeyValue::str("a", "x")],
            dropped_attributes_count: 0,
        }],
        dropped_events_count: 0,
        links: vec![Link {
            trace_id: [2; 16],
            span_id: [3; 8],
            trace_state: String::new(),
            attributes: vec![],
            dropped_attributes_count: 0,
            flags: 0,
        }],
        dropped_links_count: 0,
        status_code: i32::from(id % 3),
        status_message: String::new(),
        resource: resource.clone(),
        scope: scope.clone(),
    };
    vec![
        mk(1, None, "root", vec![KeyValue::str("a", "1")]),
        mk(
            2,
            Some(1),
            "child",
            vec![KeyValue {
                key: "a".into(),
                value: AnyValue::Int(i64::MIN),
            }],
        ),
        mk(
            3,
            Some(2),
            "leaf",
            vec![
                KeyValue {
                    key: "a".into(),
                    value: AnyValue::Double(f64::NAN),
                },
                KeyValue {
                    key: "b".into(),
                    value: AnyValue::Array(vec![AnyValue::Int(0), AnyValue::Str("s".into())]),
                },
            ],
        ),
        mk(4, Some(9), "orphan", vec![]),
    ]
}

fn check(input: &str, trace: &[Span], parsed: &mut usize) {
    let result = catch_unwind(AssertUnwindSafe(|| {
        if let Ok(q) = tempest_traceql::parse(input) {
            let _ = q.eval(trace);
            let _ = q.to_string();
            true
        } else {
            false
        }
    }));
    match result {
        Ok(true) => *parsed += 1,
        Ok(false) => {}
        Err(_) => panic!("panicked on input {input:?}"),
    }
}

const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    " ",
    ".a",
    ".",
    "span.x",
    "resource.service.name",
    "event.a",
    "link.",
    "=",
    "!=",
    "=~",
    "!~",
    "<",
    ">",
    "<=",
    ">=",
    "&&",
    "||",
    ">>",
    "<<",
    "~",
    "!>",
    "!<<",
    "&>",
    "&>>",
    "&~",
    "!",
    "-",
    "+",
    "*",
    "/",
    "^",
    "%",
    "|",
    ",",
    "count()",
    "count(",
    "avg(",
    "max(",
    "by(",
    "select(",
    "coalesce()",
    "nil",
    "true",
    "1",
    "0",
    "1.5",
    "2ms",
    "1.5s",
    "9999999999999999999",
    "\"str\"",
    "`raw`",
    "\"",
    "`",
    "\\",
    "/*",
    "*/",
    "//",
    "\n",
    "status",
    "error",
    "ok",
    "kind",
    "server",
    "name",
    "duration",
    "span:name",
    "span:",
    "trace:id",
    "event:name",
    "µ",
    "µs",
    "é",
    "&",
    "$",
    "[",
    "0x",
    "1e",
    "with",
    "rate()",
    "\"[\"",
    "\"(a+)+\"",
    "minInt",
    "parent.",
];

#[test]
fn parsing_never_panics() {
    let trace = small_trace();
    let queries = corpus_queries();
    let mut inputs = 0usize;
    let mut parsed = 0usize;

    // every prefix and suffix of every corpus query
    for q in &queries {
        for (i, _) in q.char_indices().chain(std::iter::once((q.len(), ' '))) {
            check(&q[..i], &trace, &mut parsed);
            check(&q[i..], &trace, &mut parsed);
            inputs += 2;
        }
    }

    let mut rng = Rng(0x5eed_1234_abcd_ef01);

    // mutated corpus queries
    for _ in 0..20_000 {
        let q = &queries[rng.below(queries.len())];
        let mut chars: Vec<char> = q.chars().collect();
        for _ in 0..1 + rng.below(3) {
            let frag: Vec<char> = FRAGMENTS[rng.below(FRAGMENTS.len())].chars().collect();
            let at = rng.below(chars.len() + 1);
            match rng.below(3) {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 => {
                    chars.splice(at..at, frag);
                }
                _ if at < chars.len() => {
                    chars.splice(at..at + 1, frag);
                }
                _ => chars.extend(frag),
            }
        }
        let s: String = chars.into_iter().collect();
        check(&s, &trace, &mut parsed);
        inputs += 1;
    }

    // token soup
    for _ in 0..20_000 {
        let n = 1 + rng.below(20);
        let s: String = (0..n)
            .map(|_| FRAGMENTS[rng.below(FRAGMENTS.len())])
            .collect();
        check(&s, &trace, &mut parsed);
        inputs += 1;
    }

    // byte noise
    for _ in 0..10_000 {
        let n = rng.below(40);
        let bytes: Vec<u8> = (0..n).map(|_| (rng.next() & 0xff) as u8).collect();
        check(&String::from_utf8_lossy(&bytes), &trace, &mut parsed);
        inputs += 1;
    }

    println!("no panic on {inputs} inputs ({parsed} parsed and evaluated)");
    assert!(
        parsed > 1_000,
        "the generators should produce valid queries too"
    );
}
