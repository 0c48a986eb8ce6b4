//! Push-down never changes a search's answer: for every supported query of the TraceQL corpus
//! (and a few aimed at the storage layout), searching blocks — statistics, column scans, counts
//! combined across blocks and jobs, rows read only for candidates — returns exactly what
//! evaluating the query on every whole trace returns. The data is built to make that hard:
//! traces split over several blocks, a block written twice, row groups of a few spans (so
//! traces straddle them), dedicated attributes also stored with other types, repeated keys,
//! array values, and a non-string `service.name`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use tempest_blocks::index::BlockIndex;
use tempest_blocks::reader;
use tempest_blocks::store::Location;
use tempest_blocks::writer::write_block_with;
use tempest_core::TenantId;
use tempest_query::search::{self, JobRunner, LocalJobs, SearchRequest};
use tempest_query::tempopb::{SearchMetrics, TraceSearchMetadata};
use tempest_query::trace_by_id::dedupe;
use tempest_query::worker::{self, InvokedJobs, Invoker};
use tempest_traces::{AnyValue, KeyValue, Resource, Scope, Span, SpanKind};

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn resources() -> Vec<Arc<Resource>> {
    let res = |attrs: Vec<KeyValue>| {
        Arc::new(Resource {
            attributes: attrs,
            dropped_attributes_count: 0,
        })
    };
    let env = |e: &str| KeyValue::str("deployment.environment", e);
    vec![
        res(vec![
            KeyValue::str("service.name", "frontend"),
            env("production"),
            KeyValue::str("cloud.region", "eu-west-1"),
            KeyValue::str("service.namespace", "ecommerce"),
        ]),
        res(vec![
            KeyValue::str("service.name", "productcatalogservice"),
            env("staging"),
        ]),
        res(vec![
            KeyValue::str("service.name", "checkout"),
            env("prod-2"),
        ]),
        // A repeated service.name, and one that is not a string.
        res(vec![
            KeyValue::str("service.name", "frontend"),
            KeyValue::str("service.name", "shadow"),
        ]),
        res(vec![KeyValue {
            key: "service.name".into(),
            value: AnyValue::Int(7),
        }]),
        res(vec![env("production")]),
    ]
}

fn attributes(rng: &mut Rng) -> Vec<KeyValue> {
    let mut out = Vec::new();
    let values = [
        AnyValue::Str("bar".into()),
        AnyValue::Str("baz".into()),
        AnyValue::Int(1),
        AnyValue::Int(2),
        AnyValue::Double(2.0),
        AnyValue::Bool(true),
        AnyValue::Array(vec![AnyValue::Str("bar".into()), AnyValue::Str("x".into())]),
    ];
    for key in ["a", "b", "c", "foo", "attr", "value", "exception.message"] {
        if rng.below(3) == 0 {
            out.push(KeyValue {
                key: key.into(),
                value: rng.pick(&values).clone(),
            });
        }
    }
    let code = match rng.below(10) {
        0 => AnyValue::Double(500.0),
        1 => AnyValue::Str("200".into()),
        _ => AnyValue::Int(*rng.pick(&[200, 201, 204, 302, 404, 500, 503])),
    };
    if rng.below(4) != 0 {
        out.push(KeyValue {
            key: "http.status_code".into(),
            value: code,
        });
    }
    match rng.below(8) {
        0 => {}
        1 => {
            // Repeated key: the second stays in the generic list.
            out.push(KeyValue::str("http.method", "GET"));
            out.push(KeyValue::str("http.method", "DELETE"));
        }
        2 => out.push(KeyValue {
            key: "http.method".into(),
            value: AnyValue::Array(vec![AnyValue::Str("POST".into())]),
        }),
        _ => out.push(KeyValue::str(
            "http.method",
            rng.pick::<&str>(&["GET", "POST", "DELETE"]),
        )),
    }
    if rng.below(3) == 0 {
        out.push(KeyValue::str(
            "http.url",
            rng.pick::<&str>(&["http://shop/api/orders", "https://shop/cart"]),
        ));
    }
    if rng.below(5) == 0 {
        out.push(KeyValue::str(
            "db.system",
            rng.pick::<&str>(&["postgresql", "redis"]),
        ));
    }
    out
}

/// Traces of 1–12 spans in a tree, with varied names, kinds, statuses and durations.
fn traces(rng: &mut Rng, n: usize) -> Vec<Vec<Span>> {
    let resources = resources();
    let scopes = [
        Arc::new(Scope::default()),
        Arc::new(Scope {
            name: "io.opentelemetry.http".into(),
            version: "1.2.0".into(),
            ..Scope::default()
        }),
    ];
    let names = [
        "GET",
        "POST",
        "foo",
        "POST /api/orders",
        "GET /api/products/{id}",
        "SELECT orders",
    ];
    let base = 1_700_000_000_000_000_000u64;
    (0..n)
        .map(|t| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&rng.next().to_be_bytes());
            id[8..].copy_from_slice(&(t as u64).to_be_bytes());
            let start = base + rng.below(600) * 1_000_000_000;
            let count = 1 + rng.below(12) as usize;
            let mut spans: Vec<Span> = Vec::new();
            for i in 0..count {
                let parent = (i > 0).then(|| spans[rng.below(i as u64) as usize].span_id);
                let mut span_id = [0u8; 8];
                span_id[..4].copy_from_slice(&(t as u32).to_be_bytes());
                span_id[4..].copy_from_slice(&(i as u32 + 1).to_be_bytes());
                let begin = start + rng.below(1_000_000_000);
                let duration = match rng.below(10) {
                    0 => 2_000_000_000 + rng.below(8_000_000_000),
                    _ => rng.below(300_000_000),
                };
                spans.push(Span {
                    trace_id: id,
                    span_id,
                    parent_span_id: parent,
                    name: (*rng.pick(&names)).into(),
                    kind: *rng.pick(&[
                        SpanKind::Server,
                        SpanKind::Client,
                        SpanKind::Internal,
                        SpanKind::Producer,
                    ]),
                    start_unix_nano: begin,
                    end_unix_nano: begin + duration,
                    attributes: attributes(rng),
                    status_code: *rng.pick(&[0, 0, 1, 2]),
                    status_message: if rng.below(5) == 0 {
                        "boom".into()
                    } else {
                        String::new()
                    },
                    resource: rng.pick(&resources).clone(),
                    scope: rng.pick(&scopes).clone(),
                    ..Span::default()
                });
            }
            spans
        })
        .collect()
}

struct Corpus {
    index: Arc<BlockIndex>,
    tenant: TenantId,
    /// Every trace, whole, spans each once.
    whole: Vec<Vec<Span>>,
}

/// Writes the traces as blocks: most spans go to one of several small blocks (so one trace is
/// often in two or three), the rest to a block with 7-span row groups; one block is written
/// twice under another id (its spans then exist twice, as while compaction runs).
async fn corpus() -> Corpus {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let all = traces(&mut rng, 160);
    let loc = Location::open("memory://").expect("memory store");
    let tenant = TenantId::parse(Some("pushdown")).expect("tenant");
    let mut blocks: Vec<Vec<Span>> = vec![Vec::new(); 6];
    for trace in &all {
        for span in trace {
            blocks[rng.below(6) as usize].push(span.clone());
        }
    }
    for (i, spans) in blocks.into_iter().enumerate() {
        let rows = if i == 5 { 7 } else { 64 * 1024 };
        if i == 2 {
            // The same spans again, as a different block (one more span changes its id).
            let mut again = spans.clone();
            again.push(all[0][0].clone());
            write_block_with(&loc, &tenant, again, rows)
                .await
                .expect("write");
        }
        write_block_with(&loc, &tenant, spans, rows)
            .await
            .expect("write");
    }
    // The reference is what the blocks hold, read back whole: storage keeps a repeated key's
    // values but not their order, and the evaluator sees the first.
    let mut whole: BTreeMap<[u8; 16], Vec<Span>> = BTreeMap::new();
    for meta in reader::list_blocks(&loc, &tenant).await.expect("list") {
        for span in reader::read_spans(&loc, &meta).await.expect("read") {
            whole.entry(span.trace_id).or_default().push(span);
        }
    }
    assert_eq!(whole.len(), all.len());
    Corpus {
        index: Arc::new(BlockIndex::new(loc)),
        tenant,
        whole: whole.into_values().map(dedupe).collect(),
    }
}

fn request(q: &str) -> SearchRequest {
    SearchRequest {
        query: tempest_traceql::parse(q).expect("parse"),
        limit: 100_000,
        spss: 3,
        range: None,
        min_duration: None,
        max_duration: None,
    }
}

fn by_id(traces: Vec<TraceSearchMetadata>) -> BTreeMap<String, TraceSearchMetadata> {
    traces
        .into_iter()
        .map(|t| (t.trace_id.clone(), t))
        .collect()
}

/// Searches with jobs of at most `job_bytes` bytes, run by `runner` (in-process tasks when
/// `None`).
async fn search(
    c: &Corpus,
    req: &SearchRequest,
    job_bytes: u64,
    runner: Option<Arc<dyn JobRunner>>,
) -> BTreeMap<String, TraceSearchMetadata> {
    let blocks = c
        .index
        .blocks(&c.tenant)
        .await
        .expect("index")
        .iter()
        .map(|b| b.meta.clone())
        .collect();
    let jobs = search::plan(&c.tenant, blocks, job_bytes);
    let runner = runner.unwrap_or_else(|| Arc::new(LocalJobs::new(c.index.clone())));
    let resp = search::run_jobs(jobs, runner, req, SearchMetrics::default())
        .await
        .expect("search");
    by_id(resp.traces)
}

fn queries() -> Vec<String> {
    let corpus = include_str!("../../traceql/tests/corpus.txt");
    let mut out: Vec<String> = corpus
        .lines()
        .filter_map(|l| l.strip_prefix("ok "))
        .filter(|q| tempest_traceql::parse(q).is_ok())
        .map(str::to_owned)
        .collect();
    out.extend(
        [
            r#"{ span.http.status_code = 500 }"#,
            r#"{ span.http.status_code = 500.0 }"#,
            r#"{ span.http.status_code = "200" }"#,
            r#"{ span.http.status_code >= 500 } | count() > 1"#,
            r#"{ span.http.method = "DELETE" }"#,
            r#"{ span.http.method = "POST" }"#,
            r#"{ span.http.method =~ "DEL.*" }"#,
            r#"{ span.http.method != nil }"#,
            r#"{ resource.service.name = "shadow" }"#,
            r#"{ resource.service.name = 7 }"#,
            r#"{ .service.name = "frontend" } >> { span.db.system = "redis" }"#,
            r#"{ .a = "bar" }"#,
            r#"{ span.a = "x" }"#,
            r#"{ name = "SELECT orders" } | count() > 1"#,
            r#"{ name = "GET" } && { name = "POST" } && { status = error }"#,
            r#"{ kind = producer && duration > 2s } | count() >= 2"#,
            r#"{ statusMessage = "boom" } !>> { resource.deployment.environment = "staging" }"#,
            r#"{ instrumentation:name = "io.opentelemetry.http" && span.http.url =~ "https.*" }"#,
            r#"{ false }"#,
            r#"{ } | count() > 10"#,
        ]
        .map(str::to_owned),
    );
    out
}

/// Runs every query both ways with jobs of at most `job_bytes` bytes; with `through_worker`,
/// each job goes through the search-worker's JSON contract.
async fn agree(job_bytes: u64, through_worker: bool) {
    let c = corpus().await;
    let runner: Option<Arc<dyn JobRunner>> = through_worker.then(|| {
        Arc::new(InvokedJobs::new(Arc::new(InProcess(c.index.clone())))) as Arc<dyn JobRunner>
    });
    let queries = queries();
    assert!(queries.len() > 200, "corpus too small: {}", queries.len());
    let mut matched_somewhere = 0;
    for q in &queries {
        let req = request(q);
        let want = by_id(
            c.whole
                .iter()
                .filter_map(|t| search::evaluate(t, &req))
                .collect(),
        );
        if !want.is_empty() {
            matched_somewhere += 1;
        }
        let got = search(&c, &req, job_bytes, runner.clone()).await;
        let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
        let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{q}: {} missing {missing:?}, {} extra {extra:?}",
            missing.len(),
            extra.len()
        );
        assert_eq!(got, want, "{q}: same traces, different results");
    }
    // The data is not so sparse that every query trivially finds nothing.
    assert!(
        matched_somewhere * 2 > queries.len(),
        "only {matched_somewhere} of {} queries match any trace",
        queries.len()
    );
}

#[tokio::test]
async fn one_job_over_every_block_agrees_with_evaluating_every_trace() {
    agree(u64::MAX, false).await;
}

/// Each block its own job: a trace's counts then come partly from blocks of other jobs.
#[tokio::test]
async fn one_job_per_block_agrees_with_evaluating_every_trace() {
    agree(1, false).await;
}

/// Calls the search-worker function in this process, through its JSON contract.
struct InProcess(Arc<BlockIndex>);

#[tempest_query::async_trait]
impl Invoker for InProcess {
    async fn invoke(&self, payload: Vec<u8>) -> Result<Vec<u8>, String> {
        let answer = worker::handle(&self.0, &payload)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::to_vec(&answer).map_err(|e| e.to_string())
    }
}

/// Jobs sent as JSON (the query re-parsed from its canonical text) and answered as JSON give
/// the same results.
#[tokio::test]
async fn jobs_through_the_search_worker_contract_agree_with_evaluating_every_trace() {
    agree(1, true).await;
}

/// Filters that no row group's statistics admit read no column at all: the search inspects no
/// span, while a query the statistics cannot rule out scans every row.
#[tokio::test]
async fn statistics_skip_what_cannot_match() {
    let c = corpus().await;
    let total: u64 = c
        .index
        .blocks(&c.tenant)
        .await
        .expect("index")
        .iter()
        .map(|b| b.meta.span_count)
        .sum();
    let blocks = || async {
        c.index
            .blocks(&c.tenant)
            .await
            .expect("index")
            .iter()
            .map(|b| b.meta.clone())
            .collect::<Vec<_>>()
    };
    for (q, skips_all) in [
        (r#"{ name = "zzz" }"#, true),
        (r#"{ duration > 1h }"#, true),
        (r#"{ span.http.route = "/nope" }"#, true),
        (r#"{ span.http.url = "aaa" && kind = server }"#, true),
        // Some blocks also hold non-string or repeated service names: those are scanned.
        (r#"{ resource.service.name = "aaa" }"#, false),
        (r#"{ name = "GET" } | count() > 1"#, false),
    ] {
        let runner = Arc::new(LocalJobs::new(c.index.clone()));
        let resp = search::run_jobs(
            search::plan(&c.tenant, blocks().await, u64::MAX),
            runner,
            &request(q),
            SearchMetrics::default(),
        )
        .await
        .expect("search");
        let metrics = resp.metrics.expect("metrics");
        if skips_all {
            assert_eq!(metrics.inspected_spans, 0, "{q}");
            assert!(resp.traces.is_empty(), "{q}");
        } else {
            assert!(
                metrics.inspected_spans > total / 2 && metrics.inspected_spans <= total,
                "{q}: {} of {total}",
                metrics.inspected_spans
            );
        }
    }
}
