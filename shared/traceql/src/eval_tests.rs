//! Evaluator tests over a small hand-built trace.
//!
//! ```text
//! GET /        frontend server   0..100ms  http.method=GET http.status_code=200
//! ├─ auth      frontend internal 5..15ms   user=bob
//! ├─ POST /api api      server   20..80ms  http.status_code=500, status error "boom"
//! │  ├─ cache get api   client   25..27ms  cache.hit=true ratio=0.5
//! │  ├─ SELECT  db      client   30..50ms  db.system=postgresql, status error, 2 events
//! │  └─ INSERT  db      client   55..70ms  db.system=postgresql tags=[a, b]
//! │     └─ audit api    internal 60..65ms  one link
//! └─ render    frontend internal 85..95ms  http.status_code=200.0 (a double)
//! ```
//!
//! The spans are stored shuffled, so results are checked by name and index.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tempest_traces::{AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanKind};

use crate::{SpanSet, parse};

const MS: u64 = 1_000_000;

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value,
    }
}

fn s(v: &str) -> AnyValue {
    AnyValue::Str(v.into())
}

fn resource(service: &str, env: Option<&str>) -> Arc<Resource> {
    let mut attributes = vec![kv("service.name", s(service))];
    if let Some(env) = env {
        attributes.push(kv("deployment.environment", s(env)));
    }
    Arc::new(Resource {
        attributes,
        dropped_attributes_count: 0,
    })
}

struct Def {
    name: &'static str,
    id: u8,
    parent: Option<u8>,
    service: &'static str,
    kind: SpanKind,
    start_ms: u64,
    dur_ms: u64,
    status: i32,
    attrs: Vec<KeyValue>,
}

fn span(d: Def, resources: &[(&str, Arc<Resource>)], js: &Arc<Scope>) -> Span {
    let resource = resources
        .iter()
        .find(|(n, _)| *n == d.service)
        .map(|(_, r)| r.clone())
        .unwrap();
    let mut trace_id = [0u8; 16];
    trace_id[0] = 0xab;
    trace_id[15] = 0x01;
    Span {
        trace_id,
        span_id: [0, 0, 0, 0, 0, 0, 0, d.id],
        parent_span_id: d.parent.map(|p| [0, 0, 0, 0, 0, 0, 0, p]),
        trace_state: String::new(),
        flags: 0,
        name: d.name.into(),
        kind: d.kind,
        start_unix_nano: 1_000 * MS + d.start_ms * MS,
        end_unix_nano: 1_000 * MS + (d.start_ms + d.dur_ms) * MS,
        attributes: d.attrs,
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status_code: d.status,
        status_message: if d.status == 2 && d.name == "POST /api" {
            "boom".into()
        } else {
            String::new()
        },
        resource,
        scope: if d.service == "frontend" {
            js.clone()
        } else {
            Arc::new(Scope::default())
        },
    }
}

fn trace() -> Vec<Span> {
    let resources = [
        ("frontend", resource("frontend", Some("prod"))),
        ("api", resource("api", Some("prod"))),
        ("db", resource("db", None)),
    ];
    let js = Arc::new(Scope {
        name: "otel-js".into(),
        version: "1.2".into(),
        attributes: vec![kv("lang", s("js"))],
        dropped_attributes_count: 0,
    });
    let d = |name, id, parent, service, kind, start_ms, dur_ms, status, attrs| Def {
        name,
        id,
        parent,
        service,
        kind,
        start_ms,
        dur_ms,
        status,
        attrs,
    };
    use SpanKind::*;
    let defs = vec![
        d(
            "SELECT",
            5,
            Some(3),
            "db",
            Client,
            30,
            20,
            2,
            vec![kv("db.system", s("postgresql"))],
        ),
        d(
            "GET /",
            1,
            None,
            "frontend",
            Server,
            0,
            100,
            0,
            vec![
                kv("http.method", s("GET")),
                kv("http.status_code", AnyValue::Int(200)),
            ],
        ),
        d(
            "INSERT",
            6,
            Some(3),
            "db",
            Client,
            55,
            15,
            0,
            vec![
                kv("db.system", s("postgresql")),
                kv("tags", AnyValue::Array(vec![s("a"), s("b")])),
            ],
        ),
        d(
            "auth",
            2,
            Some(1),
            "frontend",
            Internal,
            5,
            10,
            0,
            vec![kv("user", s("bob"))],
        ),
        d("audit", 7, Some(6), "api", Internal, 60, 5, 1, vec![]),
        d(
            "POST /api",
            3,
            Some(1),
            "api",
            Server,
            20,
            60,
            2,
            vec![
                kv("http.method", s("POST")),
                kv("http.status_code", AnyValue::Int(500)),
            ],
        ),
        d(
            "render",
            8,
            Some(1),
            "frontend",
            Internal,
            85,
            10,
            0,
            vec![kv("http.status_code", AnyValue::Double(200.0))],
        ),
        d(
            "cache get",
            4,
            Some(3),
            "api",
            Client,
            25,
            2,
            0,
            vec![
                kv("cache.hit", AnyValue::Bool(true)),
                kv("ratio", AnyValue::Double(0.5)),
            ],
        ),
    ];
    let mut spans: Vec<Span> = defs.into_iter().map(|d| span(d, &resources, &js)).collect();
    for sp in &mut spans {
        if sp.name == "SELECT" {
            sp.events = vec![
                Event {
                    time_unix_nano: sp.start_unix_nano + 2 * MS,
                    name: "exception".into(),
                    attributes: vec![kv("exception.message", s("timeout"))],
                    dropped_attributes_count: 0,
                },
                Event {
                    time_unix_nano: sp.start_unix_nano + 10 * MS,
                    name: "log".into(),
                    attributes: vec![kv("msg", s("hi"))],
                    dropped_attributes_count: 0,
                },
            ];
        }
        if sp.name == "audit" {
            sp.links = vec![Link {
                trace_id: [0xff; 16],
                span_id: [0, 0, 0, 0, 0, 0, 0, 0x2a],
                trace_state: String::new(),
                attributes: vec![kv("kind", s("follows"))],
                dropped_attributes_count: 0,
                flags: 0,
            }];
        }
    }
    spans
}

fn run(q: &str) -> Vec<SpanSet> {
    let query = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    query.eval(&trace())
}

/// Names of the spans of each result spanset.
fn names(q: &str) -> Vec<Vec<&'static str>> {
    let t = trace();
    let names: Vec<&'static str> = t
        .iter()
        .map(|s| -> &'static str { Box::leak(s.name.clone().into_boxed_str()) })
        .collect();
    run(q)
        .iter()
        .map(|ss| ss.spans.iter().map(|m| names[m.index]).collect())
        .collect()
}

/// Names of the spans of the single result spanset (empty when there is none).
fn one(q: &str) -> Vec<&'static str> {
    let mut sets = names(q);
    assert!(sets.len() <= 1, "{q}: {sets:?}");
    sets.pop().unwrap_or_default()
}

const ALL: [&str; 8] = [
    "GET /",
    "auth",
    "POST /api",
    "cache get",
    "SELECT",
    "INSERT",
    "audit",
    "render",
];

#[test]
fn query_is_shareable() {
    fn assert_send_sync_clone<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync_clone::<crate::Query>();
    assert_send_sync_clone::<crate::ParseError>();
}

#[test]
fn empty_filter_and_order() {
    assert_eq!(one("{ }"), ALL);
    assert_eq!(one("{ true }"), ALL);
    assert!(run("{ false }").is_empty());
    assert!(parse("{ }").unwrap().eval(&[]).is_empty());
    // indices point into the (shuffled) slice
    let t = trace();
    for ss in run("{ }") {
        for m in ss.spans {
            assert!(ALL.contains(&t[m.index].name.as_str()));
        }
    }
}

#[test]
fn attribute_comparisons() {
    assert_eq!(
        one(r#"{ resource.service.name = "db" }"#),
        ["SELECT", "INSERT"]
    );
    // an int attribute compares numerically with a float attribute / literal
    assert_eq!(one("{ span.http.status_code = 200 }"), ["GET /", "render"]);
    assert_eq!(
        one("{ span.http.status_code = 200.0 }"),
        ["GET /", "render"]
    );
    // a string never equals an int
    assert!(run(r#"{ span.http.status_code = "200" }"#).is_empty());
    assert_eq!(one("{ .http.status_code >= 500 }"), ["POST /api"]);
    assert_eq!(one("{ span.http.status_code != 200 }"), ["POST /api"]);
    // unscoped: span attribute, falling back to the resource
    assert_eq!(
        one(r#"{ .deployment.environment = "prod" }"#),
        ["GET /", "auth", "POST /api", "cache get", "audit", "render"]
    );
    assert!(run(r#"{ span.deployment.environment = "prod" }"#).is_empty());
    assert_eq!(one(r#"{ span.http.method =~ "P.*" }"#), ["POST /api"]);
    // regexes are fully anchored
    assert!(run(r#"{ name =~ "SEL" }"#).is_empty());
    assert_eq!(one(r#"{ name =~ "SEL.*|INS.*" }"#), ["SELECT", "INSERT"]);
    assert_eq!(
        one(r#"{ name !~ ".*T.*" }"#),
        ["auth", "cache get", "audit", "render"]
    );
    // != and !~ need the attribute to exist
    assert_eq!(one(r#"{ span.http.method !~ "G.*" }"#), ["POST /api"]);
    assert_eq!(one("{ span.user != nil }"), ["auth"]);
    assert_eq!(one("{ span.user = nil }").len(), 7);
    assert_eq!(
        one("{ span.ratio > 0.4 && span.cache.hit = true }"),
        ["cache get"]
    );
    assert_eq!(one("{ span.cache.hit }"), ["cache get"]);
    assert_eq!(one("{ !span.cache.hit }"), Vec::<&str>::new());
    assert_eq!(one(r#"{ span.user >= "b" }"#), ["auth"]);
    // arrays: = matches any element, != matches when no element is equal
    assert_eq!(one(r#"{ span.tags = "b" }"#), ["INSERT"]);
    assert!(run(r#"{ span.tags != "a" }"#).is_empty());
    assert_eq!(one(r#"{ span.tags != "c" }"#), ["INSERT"]);
    assert_eq!(one(r#"{ span.tags =~ "b|z" }"#), ["INSERT"]);
    // arithmetic
    assert_eq!(one("{ span.http.status_code * 2 = 1000 }"), ["POST /api"]);
    assert_eq!(one("{ duration * 2 > 150ms }"), ["GET /"]);
    assert_eq!(
        one("{ (span.http.status_code + 50) / 50 = 11 }"),
        ["POST /api"]
    );
    assert_eq!(one("{ -span.http.status_code < -300 }"), ["POST /api"]);
    // operator precedence as Tempo: (a || b) && c
    assert_eq!(
        one(r#"{ name = "auth" || name = "render" && kind = internal }"#),
        ["auth", "render"]
    );
    assert_eq!(
        one(r#"{ name = "GET /" || name = "render" && kind = internal }"#),
        ["render"]
    );
}

#[test]
fn intrinsics() {
    assert_eq!(one("{ status = error }"), ["POST /api", "SELECT"]);
    assert_eq!(one("{ span:status = ok }"), ["audit"]);
    assert_eq!(one("{ status = unset }").len(), 5);
    assert_eq!(one(r#"{ statusMessage = "boom" }"#), ["POST /api"]);
    assert_eq!(one("{ kind = client }"), ["cache get", "SELECT", "INSERT"]);
    assert_eq!(one("{ span:kind = server }"), ["GET /", "POST /api"]);
    assert_eq!(one("{ duration > 50ms }"), ["GET /", "POST /api"]);
    assert_eq!(one("{ span:duration <= 2ms }"), ["cache get"]);
    assert_eq!(one(r#"{ name = "auth" }"#), ["auth"]);
    assert_eq!(one(r#"{ span:name = "auth" }"#), ["auth"]);
    assert_eq!(
        one(r#"{ rootName = "GET /" && trace:rootService = "frontend" }"#),
        ALL
    );
    assert_eq!(one(r#"{ rootServiceName = "frontend" }"#), ALL);
    assert_eq!(one(r#"{ trace:rootName = "GET /" }"#), ALL);
    assert_eq!(one("{ traceDuration = 100ms }"), ALL);
    assert_eq!(one("{ trace:duration > 99ms }"), ALL);
    assert_eq!(
        one(r#"{ trace:id = "ab000000000000000000000000000001" }"#),
        ALL
    );
    assert_eq!(one(r#"{ span:id = "0000000000000005" }"#), ["SELECT"]);
    // short or uppercase hex literals are normalized like Tempo decodes them
    assert_eq!(one(r#"{ span:id = "5" }"#), ["SELECT"]);
    assert_eq!(one(r#"{ "5" = span:id }"#), ["SELECT"]);
    assert_eq!(
        one(r#"{ trace:id = "AB000000000000000000000000000001" }"#),
        ALL
    );
    assert_eq!(one(r#"{ span:id =~ "0+5" }"#), ["SELECT"]);
    assert_eq!(
        one(r#"{ span:parentID = "0000000000000003" }"#),
        ["cache get", "SELECT", "INSERT"]
    );
    assert_eq!(one("{ span:parentID != nil }").len(), 7);
    assert!(parse("{ span:parentID = nil }").is_err());
    assert_eq!(one(r#"{ event:name = "exception" }"#), ["SELECT"]);
    // event fields bind to the same event
    assert_eq!(
        one(r#"{ event:name = "exception" && event.exception.message = "timeout" }"#),
        ["SELECT"]
    );
    assert!(run(r#"{ event:name = "log" && event.exception.message = "timeout" }"#).is_empty());
    assert_eq!(
        one(r#"{ event:name = "log" && event.msg = "hi" }"#),
        ["SELECT"]
    );
    assert_eq!(one("{ event:timeSinceStart > 5ms }"), ["SELECT"]);
    // event fields are tested per event: SELECT's "log" event has no exception.message
    assert_eq!(one("{ event.exception.message = nil }").len(), 8);
    assert_eq!(one("{ event.exception.message != nil }"), ["SELECT"]);
    assert_eq!(
        one(r#"{ link:traceID = "ffffffffffffffffffffffffffffffff" }"#),
        ["audit"]
    );
    assert_eq!(one(r#"{ link:spanID = "000000000000002a" }"#), ["audit"]);
    assert_eq!(one(r#"{ link.kind = "follows" }"#), ["audit"]);
    assert_eq!(
        one(r#"{ instrumentation:name = "otel-js" && instrumentation:version = "1.2" }"#),
        ["GET /", "auth", "render"]
    );
    assert_eq!(
        one(r#"{ instrumentation.lang = "js" }"#),
        ["GET /", "auth", "render"]
    );
    assert_eq!(one("{ instrumentation:name != nil }").len(), 3);
}

#[test]
fn spanset_operators() {
    assert_eq!(
        one(r#"{ resource.service.name = "db" } && { name = "auth" }"#),
        ["auth", "SELECT", "INSERT"]
    );
    assert!(run(r#"{ name = "nope" } && { name = "auth" }"#).is_empty());
    assert_eq!(one(r#"{ name = "nope" } || { name = "auth" }"#), ["auth"]);
    assert_eq!(
        one(r#"{ name = "auth" } || { name = "render" }"#),
        ["auth", "render"]
    );
    assert_eq!(
        one(r#"{ name = "POST /api" } > { }"#),
        ["cache get", "SELECT", "INSERT"]
    );
    assert_eq!(
        one(r#"{ name = "POST /api" } >> { }"#),
        ["cache get", "SELECT", "INSERT", "audit"]
    );
    assert_eq!(one(r#"{ name = "audit" } < { }"#), ["INSERT"]);
    assert_eq!(
        one(r#"{ name = "audit" } << { }"#),
        ["GET /", "POST /api", "INSERT"]
    );
    assert_eq!(one(r#"{ name = "SELECT" } ~ { }"#), ["cache get", "INSERT"]);
    // leaves
    assert_eq!(
        one("{ } !< { }"),
        ["auth", "cache get", "SELECT", "audit", "render"]
    );
    assert_eq!(
        one(r#"{ resource.service.name = "frontend" } !> { }"#),
        ["GET /", "cache get", "SELECT", "INSERT", "audit"]
    );
    // the last error of a cascade
    assert_eq!(one("{ status = error } !< { status = error }"), ["SELECT"]);
    assert_eq!(one(r#"{ name = "GET /" } !>> { }"#), ["GET /"]);
    assert_eq!(
        one(r#"{ name = "audit" } !<< { }"#),
        ["auth", "cache get", "SELECT", "audit", "render"]
    );
    assert_eq!(
        one(r#"{ name = "SELECT" } !~ { kind = client }"#),
        ["SELECT"]
    );
    // an empty left side: nothing is related, so every right span qualifies
    assert_eq!(one(r#"{ name = "nope" } !> { kind = client }"#).len(), 3);
    assert!(run(r#"{ name = "nope" } > { kind = client }"#).is_empty());
    assert!(run(r#"{ kind = client } > { name = "nope" }"#).is_empty());
    // union forms return both sides
    assert_eq!(
        one(r#"{ name = "POST /api" } &> { kind = client }"#),
        ["POST /api", "cache get", "SELECT", "INSERT"]
    );
    assert_eq!(one(r#"{ name = "audit" } &< { }"#), ["INSERT", "audit"]);
    assert_eq!(
        one("{ status = error } &>> { status = error }"),
        ["POST /api", "SELECT"]
    );
    assert_eq!(
        one(r#"{ name = "audit" } &<< { resource.service.name = "frontend" }"#),
        ["GET /", "audit"]
    );
    assert_eq!(
        one(r#"{ name = "auth" } &~ { name = "render" }"#),
        ["auth", "render"]
    );
    // parentheses and precedence
    assert_eq!(
        one(r#"({ name = "auth" } || { name = "render" }) && { status = error }"#),
        ["auth", "POST /api", "SELECT", "render"]
    );
    assert_eq!(
        one(r#"{ name = "GET /" } > { name = "POST /api" } > { kind = client }"#),
        ["cache get", "SELECT", "INSERT"]
    );
    assert!(run(r#"{ name = "GET /" } > ({ name = "auth" } > { })"#).is_empty());
    assert_eq!(
        one(r#"{ name = "GET /" } >> ({ name = "INSERT" } > { })"#),
        ["audit"]
    );
}

fn attrs(ss: &SpanSet) -> Vec<(String, AnyValue)> {
    ss.attributes
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect()
}

#[test]
fn pipelines_and_aggregates() {
    let r = run("{ } | count() > 7");
    assert_eq!(r.len(), 1);
    assert_eq!(attrs(&r[0]), [("count()".to_string(), AnyValue::Int(8))]);
    assert!(run("{ } | count() > 8").is_empty());
    assert_eq!(one("count() = 8"), ALL);

    let r = run("{ status = error } | by(resource.service.name)");
    assert_eq!(
        names("{ status = error } | by(resource.service.name)"),
        [["POST /api"], ["SELECT"]]
    );
    assert_eq!(
        attrs(&r[0]),
        [("by(resource.service.name)".to_string(), s("api"))]
    );
    assert_eq!(
        attrs(&r[1]),
        [("by(resource.service.name)".to_string(), s("db"))]
    );

    let q = "{ } | by(resource.service.name) | count() > 2";
    assert_eq!(
        names(q),
        [
            vec!["GET /", "auth", "render"],
            vec!["POST /api", "cache get", "audit"]
        ]
    );
    assert_eq!(
        attrs(&run(q)[0]),
        [
            ("by(resource.service.name)".to_string(), s("frontend")),
            ("count()".to_string(), AnyValue::Int(3))
        ]
    );
    assert_eq!(
        names("{ } | by(resource.service.name, kind) | count() > 1"),
        [vec!["auth", "render"], vec!["SELECT", "INSERT"]]
    );

    // avg of durations is a duration, shown Go-style
    let r = run("{ kind = client } | avg(duration) > 10ms");
    assert_eq!(
        attrs(&r[0]),
        [("avg(duration)".to_string(), s("12.333333ms"))]
    );
    assert!(run("{ kind = client } | avg(duration) > 13ms").is_empty());
    assert_eq!(one("{ kind = client } | max(duration) = 20ms").len(), 3);
    assert_eq!(one("{ kind = client } | min(duration) < 3ms").len(), 3);
    assert_eq!(one("{ kind = client } | sum(duration) = 37ms").len(), 3);
    // the first value's type wins (Tempo): the double 200.0 is skipped
    assert_eq!(one("{ } | sum(span.http.status_code) = 700").len(), 8);
    assert_eq!(one("{ } | max(span.http.status_code) >= 500").len(), 8);
    assert_eq!(one("{ } | avg(span.http.status_code) = 350").len(), 8);
    // no values: no spanset
    assert!(run("{ } | max(span.nope) > 0").is_empty());

    // coalesce undoes by()
    let r = run("{ } | by(resource.service.name) | coalesce()");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].spans.len(), 8);
    assert!(r[0].attributes.is_empty());

    // pipelines starting with something else than a filter work on the whole trace
    assert_eq!(names("by(kind) | count() > 2").len(), 2);
    assert_eq!(
        one("{ } | { kind = client } | { name = \"SELECT\" }"),
        ["SELECT"]
    );
    assert_eq!(
        one(r#"({ name = "SELECT" } | count() = 1) && ({ status = error } | count() = 2)"#),
        ["POST /api", "SELECT"]
    );
    assert!(run(r#"({ name = "SELECT" } | count() = 2) && { status = error }"#).is_empty());
    assert_eq!(
        one(r#"({ kind = client } && { kind = server }) | count() = 5"#).len(),
        5
    );
}

fn span_attrs(q: &str, name: &str) -> Vec<(String, AnyValue)> {
    let t = trace();
    for ss in run(q) {
        for m in ss.spans {
            if t[m.index].name == name {
                return m
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), kv.value.clone()))
                    .collect();
            }
        }
    }
    panic!("{name} not in the results of {q}");
}

#[test]
fn matched_span_attributes() {
    // scope prefixes dropped; name and duration not repeated
    assert_eq!(
        span_attrs(
            r#"{ resource.service.name = "db" && name = "SELECT" && duration > 1ms }"#,
            "SELECT"
        ),
        [("service.name".to_string(), s("db"))]
    );
    assert_eq!(
        span_attrs(
            r#"{ status = error && span.http.status_code > 0 } | select(resource.service.name, span.nope)"#,
            "POST /api"
        ),
        [
            ("status".to_string(), s("error")),
            ("http.status_code".to_string(), AnyValue::Int(500)),
            ("service.name".to_string(), s("api")),
        ]
    );
    assert_eq!(
        span_attrs(
            r#"{ name = "auth" } | select(span:parentID, kind, statusMessage, trace:id, span:id, rootName)"#,
            "auth"
        ),
        [
            ("span:parentID".to_string(), s("0000000000000001")),
            ("kind".to_string(), s("internal")),
            ("statusMessage".to_string(), s("")),
        ]
    );
    assert_eq!(
        span_attrs(
            r#"{ event:name = "log" } | select(event.exception.message, event:timeSinceStart)"#,
            "SELECT"
        ),
        [
            ("event:name".to_string(), s("exception")),
            ("exception.message".to_string(), s("timeout")),
            ("event:timeSinceStart".to_string(), s("2ms")),
        ]
    );
    assert_eq!(
        span_attrs(
            "{ } | by(span.db.system) | select(link.kind, span.tags)",
            "INSERT"
        ),
        [
            ("db.system".to_string(), s("postgresql")),
            ("tags".to_string(), AnyValue::Array(vec![s("a"), s("b")])),
        ]
    );
    assert_eq!(
        span_attrs("{ } | select(link.kind, link:spanID)", "audit"),
        [
            ("kind".to_string(), s("follows")),
            ("link:spanID".to_string(), s("000000000000002a")),
        ]
    );
    assert_eq!(
        span_attrs("{ .ratio > 0 } | avg(span.ratio) > 0", "cache get"),
        [("ratio".to_string(), AnyValue::Double(0.5))]
    );
}

#[test]
fn tree_edge_cases() {
    // two roots are siblings (Tempo gives roots the same nested-set parent); an orphan whose
    // parent is missing has neither parent nor siblings
    let mut t = trace();
    let mut second_root = t[0].clone();
    second_root.span_id = [9; 8];
    second_root.parent_span_id = None;
    second_root.name = "second root".into();
    let mut orphan = t[0].clone();
    orphan.span_id = [8; 8];
    orphan.parent_span_id = Some([7; 8]);
    orphan.name = "orphan".into();
    t.push(second_root);
    t.push(orphan);
    let q = parse(r#"{ name = "second root" } ~ { }"#).unwrap();
    let got: Vec<&str> = q.eval(&t)[0]
        .spans
        .iter()
        .map(|m| t[m.index].name.as_str())
        .collect();
    assert_eq!(got, ["GET /"]);
    let q = parse(r#"{ } ~ { name = "orphan" }"#).unwrap();
    assert!(q.eval(&t).is_empty());
    let q = parse(r#"{ } > { name = "orphan" }"#).unwrap();
    assert!(q.eval(&t).is_empty());
    let q = parse(r#"{ } !> { name = "orphan" }"#).unwrap();
    assert_eq!(q.eval(&t).len(), 1);

    // a parent cycle must not hang or panic
    let mut cyc = trace();
    for sp in &mut cyc {
        if sp.name == "GET /" {
            sp.parent_span_id = Some([0, 0, 0, 0, 0, 0, 0, 7]);
        }
    }
    for q in [
        "{ } >> { }",
        "{ } << { }",
        "{ } &>> { }",
        "{ } ~ { }",
        "{ rootName != nil }",
    ] {
        let _ = parse(q).unwrap().eval(&cyc);
    }
}
