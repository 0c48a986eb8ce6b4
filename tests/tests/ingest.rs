//! Trace ingestion through the real binary: the OpenTelemetry Python SDK over OTLP/HTTP
//! protobuf, OTLP/JSON (plain and gzip), Zipkin v2 JSON; committed blocks read back with
//! `tempest blocks`; bad payloads refused with the protocol's error and nothing written.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use tempest_tests::Tempest;

fn blocks_cli(storage: &Path, tenant: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(tempest_tests::tempest::binary())
        .arg("blocks")
        .arg("--storage")
        .arg(storage)
        .arg("--tenant")
        .arg(tenant)
        .args(args)
        .output()
        .expect("run tempest blocks");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn block_count(storage: &Path, tenant: &str) -> usize {
    let (ok, stdout, stderr) = blocks_cli(storage, tenant, &["list"]);
    assert!(ok, "blocks list failed: {stderr}");
    stdout.lines().count()
}

fn trace_lines(storage: &Path, tenant: &str, trace_id: &str) -> Vec<Value> {
    let (ok, stdout, stderr) = blocks_cli(storage, tenant, &["trace", trace_id]);
    assert!(ok, "blocks trace failed: {stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[tokio::test]
async fn opentelemetry_python_sdk_over_http_grpc_and_zipkin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tempest::start(dir.path(), &[], &[]).await;
    let storage = dir.path().join("traces");
    let check = tempest_tests::clients::export_and_check;
    let (http_trace, _) = check(
        "http",
        format!("http://127.0.0.1:{}/v1/traces", t.otlp_port),
        "team-py",
        &storage,
    )
    .await;
    check(
        "grpc",
        format!("http://127.0.0.1:{}", t.grpc_port),
        "team-grpc",
        &storage,
    )
    .await;
    check(
        "zipkin",
        format!("http://127.0.0.1:{}/api/v2/spans", t.zipkin_port),
        "unused",
        &storage,
    )
    .await;
    // Tenants are apart.
    let (found, _, _) = blocks_cli(&storage, "team-grpc", &["trace", &http_trace]);
    assert!(!found, "a tenant never sees another tenant's trace");
    let spans = trace_lines(&storage, "team-py", &http_trace);
    assert_eq!(spans.len(), 2, "tempest blocks trace prints every span");
}

fn otlp_json(trace: &str, spans: Value) -> Value {
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
        "scopeSpans": [{"scope": {"name": "manual", "version": "1"}, "spans": spans}]
    }], "_trace": trace})
}

#[tokio::test]
async fn otlp_json_zipkin_gzip_and_partial_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tempest::start(dir.path(), &[], &[]).await;
    let http = reqwest::Client::new();
    let otlp = format!("http://127.0.0.1:{}/v1/traces", t.otlp_port);
    let trace = "5b8efff798038103d269b633813fc60c";
    let mut body = otlp_json(
        trace,
        json!([
            {"traceId": trace, "spanId": "eee19b7ec3c1b174", "name": "json-root", "kind": 2, "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712661000000000",
             "attributes": [{"key": "http.request.method", "value": {"stringValue": "POST"}}, {"key": "n", "value": {"intValue": "42"}}]},
            {"traceId": "00000000000000000000000000000000", "spanId": "eee19b7ec3c1b176", "name": "zero trace id"}
        ]),
    );
    body.as_object_mut().expect("object").remove("_trace");
    let resp = http.post(&otlp).json(&body).send().await.expect("send");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    // OTLP partial success: the invalid span alone is rejected, the valid one is stored.
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1", "{text}");
    assert!(
        v["partialSuccess"]["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("trace_id")),
        "{text}"
    );
    // A clean JSON request, gzip-compressed.
    let mut clean = otlp_json(
        trace,
        json!([{"traceId": trace, "spanId": "eee19b7ec3c1b175", "parentSpanId": "eee19b7ec3c1b174", "name": "json-child", "kind": 3,
        "startTimeUnixNano": "1544712660100000000", "endTimeUnixNano": "1544712660200000000"}]),
    );
    clean.as_object_mut().expect("object").remove("_trace");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(clean.to_string().as_bytes()).expect("gzip");
    let resp = http
        .post(&otlp)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.finish().expect("gzip"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.expect("json"), json!({}));
    // Zipkin v2.
    let zipkin = format!("http://127.0.0.1:{}/api/v2/spans", t.zipkin_port);
    let resp = http
        .post(&zipkin)
        .json(&json!([{"traceId": trace, "id": "1111111111111111", "parentId": "eee19b7ec3c1b174", "name": "zipkin-span", "kind": "CLIENT", "timestamp": 1544712660300000u64, "duration": 5000, "localEndpoint": {"serviceName": "zipkin-svc"}, "tags": {"db.system": "redis"}}]))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 202);
    let storage = dir.path().join("traces");
    let spans = trace_lines(&storage, "single-tenant", trace);
    let names: Vec<&str> = spans
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["json-root", "json-child", "zipkin-span"],
        "start-time order"
    );
    let zipkin_span = spans
        .iter()
        .find(|s| s["name"] == "zipkin-span")
        .expect("zipkin span");
    assert_eq!(zipkin_span["service"], "zipkin-svc");
    assert_eq!(zipkin_span["endTimeUnixNano"], "1544712660305000000");
}

#[tokio::test]
async fn bad_payloads_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tempest::start(dir.path(), &[], &[("TEMPEST_TRACES_MAX_BODY_SIZE", "4096")]).await;
    let http = reqwest::Client::new();
    let otlp = format!("http://127.0.0.1:{}/v1/traces", t.otlp_port);
    let zipkin = format!("http://127.0.0.1:{}/api/v2/spans", t.zipkin_port);
    let storage = dir.path().join("traces");
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&vec![b'['; 1 << 20]).expect("gzip");
    let bomb = bomb.finish().expect("gzip");
    // (what, URL, headers, body, expected status)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        (
            "random bytes as protobuf",
            &otlp,
            vec![("content-type", "application/x-protobuf")],
            vec![0xff, 0xff, 0xff, 0x01, 0x02],
            400,
        ),
        (
            "truncated protobuf",
            &otlp,
            vec![("content-type", "application/x-protobuf")],
            vec![0x0a, 0x10, 0x0a],
            400,
        ),
        (
            "malformed JSON",
            &otlp,
            vec![("content-type", "application/json")],
            b"{\"resourceSpans\": [".to_vec(),
            400,
        ),
        (
            "unknown content type",
            &otlp,
            vec![("content-type", "text/csv")],
            b"a,b".to_vec(),
            415,
        ),
        (
            "unknown content encoding",
            &otlp,
            vec![
                ("content-type", "application/json"),
                ("content-encoding", "br"),
            ],
            b"{}".to_vec(),
            415,
        ),
        (
            "gzip that is not gzip",
            &otlp,
            vec![
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            b"plain".to_vec(),
            400,
        ),
        (
            "gzip bomb",
            &otlp,
            vec![
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            bomb,
            413,
        ),
        (
            "oversize body",
            &otlp,
            vec![("content-type", "application/json")],
            vec![b' '; 10_000],
            413,
        ),
        (
            "tenant with a path",
            &otlp,
            vec![
                ("content-type", "application/json"),
                ("x-scope-orgid", "../other"),
            ],
            b"{}".to_vec(),
            400,
        ),
        (
            "zipkin malformed",
            &zipkin,
            vec![("content-type", "application/json")],
            b"[{\"traceId\":".to_vec(),
            400,
        ),
        (
            "zipkin bad trace id",
            &zipkin,
            vec![("content-type", "application/json")],
            br#"[{"traceId":"xyz","id":"1111111111111111"}]"#.to_vec(),
            400,
        ),
        (
            "zipkin thrift",
            &zipkin,
            vec![("content-type", "application/x-thrift")],
            vec![1, 2, 3],
            415,
        ),
    ];
    for (what, url, headers, body, status) in cases {
        let mut req = http.post(url).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.expect("send");
        assert_eq!(
            resp.status().as_u16(),
            status,
            "{what}: {:?}",
            resp.text().await
        );
    }
    assert!(
        !storage.join("single-tenant").exists() || block_count(&storage, "single-tenant") == 0,
        "nothing written by refused requests"
    );
    assert!(!t.log_text().contains("panicked"));
}

#[tokio::test]
async fn blocks_are_readable_with_duckdb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tempest::start(dir.path(), &[], &[]).await;
    tempest_tests::clients::otel_export(
        "http",
        format!("http://127.0.0.1:{}/v1/traces", t.otlp_port),
        "duck",
    )
    .await;
    tempest_tests::clients::otel_export(
        "grpc",
        format!("http://127.0.0.1:{}", t.grpc_port),
        "duck",
    )
    .await;
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/.venv/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/read_blocks.py");
    let out = Command::new(python)
        .arg(script)
        .arg(dir.path().join("traces/duck"))
        .output()
        .expect("run duckdb script");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["spans"], 4);
    assert_eq!(v["traces"], 2);
    assert_eq!(v["services"], json!(["py-checkout"]));
    assert_eq!(v["errors"], json!(["SELECT orders", "SELECT orders"]));
    assert_eq!(v["methods"], json!(["GET", "GET"]));
    assert_eq!(v["retries"], json!(["[1,2,3]", "[1,2,3]"]));
}

#[tokio::test]
async fn jaeger_thrift_exporter_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tempest::start(dir.path(), &[], &[]).await;
    let python =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/.venv-jaeger/bin/python");
    assert!(
        python.exists(),
        "the Jaeger exporter venv is missing: scripts/test creates it"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/jaeger_export.py");
    let url = format!("http://127.0.0.1:{}/api/traces", t.jaeger_port);
    let out =
        tokio::task::spawn_blocking(move || Command::new(python).arg(script).arg(url).output())
            .await
            .expect("join")
            .expect("run python");
    assert!(
        out.status.success(),
        "Jaeger exporter failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        t.log_text()
    );
    let trace_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let spans = trace_lines(&dir.path().join("traces"), "single-tenant", &trace_id);
    assert_eq!(spans.len(), 2, "{spans:?}");
    let root = spans
        .iter()
        .find(|s| s["name"] == "checkout")
        .expect("root");
    let child = spans.iter().find(|s| s["name"] == "charge").expect("child");
    assert_eq!(root["service"], "jaeger-py");
    assert_eq!(root["kind"], 2);
    assert_eq!(child["kind"], 3);
    assert_eq!(child["parentSpanId"], root["spanId"]);
    // Bad Thrift is refused and writes nothing.
    let http = reqwest::Client::new();
    let before = block_count(&dir.path().join("traces"), "single-tenant");
    for body in [
        vec![12u8, 0, 1, 11, 0x7f, 0xff, 0xff, 0xff],
        vec![0xde, 0xad, 0xbe, 0xef],
        vec![],
    ] {
        let resp = http
            .post(format!("http://127.0.0.1:{}/api/traces", t.jaeger_port))
            .header("content-type", "application/x-thrift")
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 400);
    }
    assert_eq!(
        block_count(&dir.path().join("traces"), "single-tenant"),
        before
    );
}

#[tokio::test]
async fn only_allowed_tenants_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tempest::start(
        dir.path(),
        &[],
        &[
            ("TEMPEST_ALLOWED_TENANTS", "team-a, team-c"),
            ("TEMPEST_SELF_TELEMETRY", "false"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let trace = "5b8efff798038103d269b633813fc60c";
    let body = otlp_json(
        trace,
        json!([{"traceId": trace, "spanId": "eee19b7ec3c1b174", "name": "op",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000"}]),
    );
    let send = |tenant: Option<&'static str>| {
        let mut req = http
            .post(format!("http://127.0.0.1:{}/v1/traces", t.otlp_port))
            .json(&body);
        if let Some(tenant) = tenant {
            req = req.header("X-Scope-OrgID", tenant);
        }
        req.send()
    };
    // Another tenant, or none (Tempo's single-tenant), is refused and nothing is written.
    for tenant in [Some("team-b"), None] {
        let resp = send(tenant).await.expect("send");
        assert_eq!(resp.status(), 403, "{tenant:?}");
        assert!(resp.text().await.expect("body").contains("not allowed"));
    }
    assert!(!dir.path().join("traces/team-b").exists());
    // An invalid id is still the receiver's 400.
    assert_eq!(send(Some("../x")).await.expect("send").status(), 400);
    assert_eq!(send(Some("team-a")).await.expect("send").status(), 200);
    // The query API and Zipkin answer the same way.
    let search = |tenant: &'static str| {
        http.get(format!("http://127.0.0.1:{}/api/search", t.query_port))
            .header("X-Scope-OrgID", tenant)
            .send()
    };
    assert_eq!(search("team-b").await.expect("search").status(), 403);
    assert_eq!(search("team-a").await.expect("search").status(), 200);
    let zipkin = http
        .post(format!("http://127.0.0.1:{}/api/v2/spans", t.zipkin_port))
        .header("X-Scope-OrgID", "team-b")
        .json(&json!([]))
        .send()
        .await
        .expect("zipkin");
    assert_eq!(zipkin.status(), 403);
    // An OTLP/gRPC call from another tenant gets gRPC's PERMISSION_DENIED.
    let grpc = http
        .post(format!(
            "http://127.0.0.1:{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            t.grpc_port
        ))
        .header("content-type", "application/grpc")
        .header("x-scope-orgid", "team-b")
        .body(Vec::new())
        .send()
        .await
        .expect("grpc");
    assert_eq!(grpc.headers()["grpc-status"], "7");
}
