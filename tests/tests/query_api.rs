//! The Tempo query API as Grafana's Tempo data source calls it, end to end: spans sent by the
//! OpenTelemetry Python SDK, then found by ID (JSON and protobuf, v1 and v2) and by TraceQL
//! search, with tag names and values for the editor — on local disk and on moto's S3. Expected
//! shapes follow Tempo's API docs (../shared/reference/tempo.md §1): base64 ids, enum names,
//! 64-bit integers as strings, `durationMs` a number, 404 with an empty body.

use base64::Engine as _;
use prost::Message;
use serde_json::Value;
use tempest_tests::Tempest;

const TENANT: &str = "team-q";

fn b64_of_hex(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `tempopb.TraceByIDResponse`, written here from Tempo's tempo.proto (field 1 is the trace,
/// whose wire format is OTLP's TracesData).
#[derive(Clone, PartialEq, prost::Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<opentelemetry_proto::tonic::trace::v1::TracesData>,
    #[prost(int32, tag = "3")]
    status: i32,
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str, accept: &str, tenant: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Accept", accept);
        if let Some(t) = tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        req.send().await.expect("query API request")
    }

    async fn json(&self, path: &str) -> Value {
        let resp = self.get(path, "application/json", Some(TENANT)).await;
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.expect("JSON body")
    }

    async fn search(&self, q: &str) -> Value {
        let url = format!("/api/search?q={}&limit=20&spss=3", urlencode(q));
        self.json(&url).await
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];

/// Checks Tempo's JSON for one span against what the SDK exported.
fn check_span(got: &Value, want: &Value) {
    let s = |v: &Value| v.as_str().expect("string").to_owned();
    assert_eq!(got["traceId"], b64_of_hex(&s(&want["traceId"])).as_str());
    assert_eq!(got["spanId"], b64_of_hex(&s(&want["spanId"])).as_str());
    match want["parentSpanId"].as_str() {
        Some(p) => assert_eq!(got["parentSpanId"], b64_of_hex(p).as_str()),
        None => assert!(got.get("parentSpanId").is_none(), "{got}"),
    }
    assert_eq!(got["name"], want["name"]);
    let kind = want["kind"].as_u64().expect("kind") as usize;
    assert_eq!(got["kind"], KINDS[kind]);
    // 64-bit integers are strings in Tempo's JSON.
    assert_eq!(
        got["startTimeUnixNano"],
        want["start"].as_u64().expect("start").to_string().as_str()
    );
    assert_eq!(
        got["endTimeUnixNano"],
        want["end"].as_u64().expect("end").to_string().as_str()
    );
    let attrs: Vec<(String, Value)> = got["attributes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|kv| (s(&kv["key"]), kv["value"].clone()))
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in want["attributes"].as_object().expect("attributes") {
        let (_, value) = attrs
            .iter()
            .find(|(key, _)| key == k)
            .unwrap_or_else(|| panic!("attribute {k} missing from {got}"));
        let expected = match v {
            Value::String(x) => serde_json::json!({ "stringValue": x }),
            Value::Bool(b) => serde_json::json!({ "boolValue": b }),
            Value::Number(n) if n.is_i64() => serde_json::json!({ "intValue": n.to_string() }),
            Value::Number(n) => serde_json::json!({ "doubleValue": n }),
            Value::Array(items) => serde_json::json!({ "arrayValue": { "values": items
                .iter()
                .map(|i| serde_json::json!({ "intValue": i.to_string() }))
                .collect::<Vec<_>>() } }),
            other => panic!("unexpected attribute {other}"),
        };
        assert_eq!(value, &expected, "attribute {k}");
    }
    let code = want["status"]["code"].as_u64().expect("status code");
    if code == 2 {
        assert_eq!(got["status"]["code"], "STATUS_CODE_ERROR");
        assert_eq!(got["status"]["message"], want["status"]["message"]);
    } else {
        assert!(got["status"].get("code").is_none(), "{got}");
    }
    for (g, w) in got["events"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .zip(want["events"].as_array().expect("events"))
    {
        assert_eq!(g["name"], w["name"]);
        assert_eq!(
            g["timeUnixNano"],
            w["time"].as_u64().expect("time").to_string().as_str()
        );
    }
}

/// Every span of a Tempo JSON trace, with its resource's service.name and its scope name.
fn spans_of(trace: &Value) -> Vec<(Value, String, String)> {
    let mut out = Vec::new();
    for rs in trace["resourceSpans"].as_array().expect("resourceSpans") {
        let service = rs["resource"]["attributes"]
            .as_array()
            .expect("resource attributes")
            .iter()
            .find(|kv| kv["key"] == "service.name")
            .and_then(|kv| kv["value"]["stringValue"].as_str())
            .expect("service.name")
            .to_owned();
        for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
            let scope = ss["scope"]["name"].as_str().unwrap_or_default().to_owned();
            for span in ss["spans"].as_array().expect("spans") {
                out.push((span.clone(), service.clone(), scope.clone()));
            }
        }
    }
    out
}

/// Runs the scenario against blocks in `storage` (the data folder's when `None`); with
/// `worker`, every search job goes to a second Tempest's `search-worker` over HTTP.
async fn scenario(storage: Option<&str>, worker: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let traces = storage
        .map(str::to_owned)
        .unwrap_or_else(|| dir.path().join("traces").display().to_string());
    let args = ["--traces-storage", traces.as_str()];
    let worker_dir = tempfile::tempdir().expect("tempdir");
    let worker = match worker {
        true => Some(Tempest::start(worker_dir.path(), &args, &[]).await),
        false => None,
    };
    let worker_url = worker
        .as_ref()
        .map(|w| format!("http://127.0.0.1:{}/tempest/search-worker", w.query_port));
    let envs: Vec<(&str, &str)> = worker_url
        .as_deref()
        .map(|u| vec![("TEMPEST_SEARCH_WORKER_URL", u)])
        .unwrap_or_default();
    let t = Tempest::start(dir.path(), &args, &envs).await;
    let (trace_id, described) = tempest_tests::clients::otel_export(
        "http",
        format!("http://127.0.0.1:{}/v1/traces", t.otlp_port),
        TENANT,
    )
    .await;
    assert_eq!(described.len(), 2);
    let api = Api {
        base: format!("http://127.0.0.1:{}", t.query_port),
        http: reqwest::Client::new(),
    };

    // The data source's health check and version probe.
    let echo = api.get("/api/echo", "*/*", None).await;
    assert_eq!(echo.status(), 200);
    assert_eq!(echo.text().await.expect("body"), "echo");
    assert_eq!(api.get("/ready", "*/*", None).await.status(), 200);
    let info = api.json("/api/status/buildinfo").await;
    assert!(
        info["version"].as_str().is_some_and(|v| v.starts_with('2')),
        "{info}"
    );

    // Trace by ID, JSON, v2 then v1.
    let v2 = api.json(&format!("/api/v2/traces/{trace_id}")).await;
    let spans = spans_of(&v2["trace"]);
    assert_eq!(spans.len(), 2, "{v2}");
    for want in &described {
        let (got, service, scope) = spans
            .iter()
            .find(|(s, _, _)| {
                s["spanId"] == b64_of_hex(want["spanId"].as_str().expect("id")).as_str()
            })
            .unwrap_or_else(|| panic!("span {} missing from {v2}", want["spanId"]));
        check_span(got, want);
        assert_eq!(service, "py-checkout");
        assert_eq!(scope, "tempest-test");
    }
    let v1 = api.json(&format!("/api/traces/{trace_id}")).await;
    assert_eq!(spans_of(&v1).len(), 2, "{v1}");

    // Protobuf, as Grafana asks for it: v2 is TraceByIDResponse, v1 is the bare Trace.
    let resp = api
        .get(
            &format!("/api/v2/traces/{trace_id}"),
            "application/protobuf",
            Some(TENANT),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/protobuf");
    let decoded = TraceByIdResponse::decode(resp.bytes().await.expect("body")).expect("protobuf");
    assert_eq!(decoded.status, 0);
    let ids: Vec<String> = decoded
        .trace
        .expect("trace")
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.span_id.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let mut want_ids: Vec<String> = described
        .iter()
        .map(|d| d["spanId"].as_str().expect("id").to_owned())
        .collect();
    let mut got_ids = ids;
    got_ids.sort();
    want_ids.sort();
    assert_eq!(got_ids, want_ids);
    let resp = api
        .get(
            &format!("/api/traces/{trace_id}"),
            "application/protobuf",
            Some(TENANT),
        )
        .await;
    let traces_data = opentelemetry_proto::tonic::trace::v1::TracesData::decode(
        resp.bytes().await.expect("body"),
    )
    .expect("v1 protobuf is OTLP TracesData");
    assert_eq!(traces_data.resource_spans.len(), 1);

    // Missing traces are 404 with an empty body (Grafana then falls back to v1); bad ids 400.
    for path in [
        "/api/v2/traces/0123456789abcdef0123456789abcdef".to_owned(),
        "/api/traces/0123456789abcdef0123456789abcdef".to_owned(),
    ] {
        let resp = api.get(&path, "application/protobuf", Some(TENANT)).await;
        assert_eq!(resp.status(), 404, "{path}");
        assert!(resp.bytes().await.expect("body").is_empty());
    }
    // Another tenant does not see the trace.
    let other = api
        .get(
            &format!("/api/v2/traces/{trace_id}"),
            "application/json",
            Some("other-team"),
        )
        .await;
    assert_eq!(other.status(), 404);
    for bad in ["xyz", "0123456789abcdef0123456789abcdef00"] {
        let resp = api
            .get(
                &format!("/api/traces/{bad}"),
                "application/json",
                Some(TENANT),
            )
            .await;
        assert_eq!(resp.status(), 400, "{bad}");
        assert!(resp.text().await.expect("body").contains("trace id"));
    }

    // TraceQL search.
    let found = api
        .search(r#"{ resource.service.name = "py-checkout" && status = error }"#)
        .await;
    let traces = found["traces"].as_array().expect("traces");
    assert_eq!(traces.len(), 1, "{found}");
    let hit = &traces[0];
    assert_eq!(hit["traceID"], trace_id.trim_start_matches('0'));
    assert_eq!(hit["rootServiceName"], "py-checkout");
    assert_eq!(hit["rootTraceName"], "GET /orders");
    assert!(hit["startTimeUnixNano"].is_string(), "{hit}");
    assert!(hit.get("durationMs").is_none_or(Value::is_number), "{hit}");
    let child = described
        .iter()
        .find(|d| d["name"] == "SELECT orders")
        .expect("child span");
    for set in [&hit["spanSet"], &hit["spanSets"][0]] {
        assert_eq!(set["matched"], 1, "{set}");
        let span = &set["spans"][0];
        assert_eq!(span["spanID"], child["spanId"]);
        assert_eq!(
            span["startTimeUnixNano"],
            child["start"].as_u64().expect("start").to_string().as_str()
        );
        assert!(span["durationNanos"].is_string());
    }
    assert!(found["metrics"]["inspectedBytes"].is_string(), "{found}");
    // Structural: the error span is a child of the server span.
    let structural = api
        .search(r#"{ kind = server } > { status = error }"#)
        .await;
    assert_eq!(
        structural["traces"].as_array().map(Vec::len),
        Some(1),
        "{structural}"
    );
    // No match, and the legacy tags search.
    let none = api.search(r#"{ resource.service.name = "nobody" }"#).await;
    assert_eq!(none["traces"], serde_json::json!([]));
    let legacy = api
        .json("/api/search?tags=service.name%3Dpy-checkout")
        .await;
    assert_eq!(
        legacy["traces"].as_array().map(Vec::len),
        Some(1),
        "{legacy}"
    );
    // A malformed query is a 400 whose text says where.
    let resp = api
        .get(
            &format!("/api/search?q={}", urlencode("{ .a = }")),
            "application/json",
            Some(TENANT),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.expect("body");
    assert!(text.contains("line 1, col"), "{text}");

    // The editor's tags and values.
    let tags = api.json("/api/v2/search/tags").await;
    let scope = |name: &str| -> Vec<String> {
        tags["scopes"]
            .as_array()
            .expect("scopes")
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| serde_json::from_value(s["tags"].clone()).expect("tags"))
            .unwrap_or_default()
    };
    assert!(
        scope("resource").contains(&"service.name".to_owned()),
        "{tags}"
    );
    assert!(scope("span").contains(&"db.system".to_owned()), "{tags}");
    assert!(scope("intrinsic").contains(&"status".to_owned()), "{tags}");
    let values = api
        .json("/api/v2/search/tag/resource.service.name/values")
        .await;
    assert_eq!(
        values["tagValues"],
        serde_json::json!([{ "type": "string", "value": "py-checkout" }])
    );
    let names = api
        .json(&format!(
            "/api/v2/search/tag/name/values?q={}",
            urlencode("{ status = error }")
        ))
        .await;
    assert_eq!(
        names["tagValues"],
        serde_json::json!([{ "type": "string", "value": "SELECT orders" }])
    );
    let status = api.json("/api/v2/search/tag/status/values").await;
    assert!(
        status["tagValues"]
            .as_array()
            .expect("values")
            .contains(&serde_json::json!({ "type": "keyword", "value": "error" })),
        "{status}"
    );
    let v1_values = api.json("/api/search/tag/service.name/values").await;
    assert_eq!(v1_values["tagValues"], serde_json::json!(["py-checkout"]));
    let v1_tags = api.json("/api/search/tags").await;
    assert!(
        v1_tags["tagNames"]
            .as_array()
            .expect("tagNames")
            .contains(&serde_json::json!("http.request.method")),
        "{v1_tags}"
    );
}

#[tokio::test]
async fn tempo_api_on_local_disk() {
    scenario(None, false).await;
}

#[tokio::test]
async fn tempo_api_on_moto_s3() {
    let (_moto, storage) = tempest_tests::emulators::moto_s3().await;
    scenario(Some(&storage), false).await;
}

/// The same answers when `query` sends each search job to a separate `search-worker` process.
#[tokio::test]
async fn search_jobs_through_a_search_worker_on_moto_s3() {
    let (_moto, storage) = tempest_tests::emulators::moto_s3().await;
    scenario(Some(&storage), true).await;
}

/// The search-worker rejects malformed jobs with a 400 naming the problem.
#[tokio::test]
async fn search_worker_rejects_malformed_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tempest::start(dir.path(), &[], &[]).await;
    let url = format!("http://127.0.0.1:{}/tempest/search-worker", t.query_port);
    let http = reqwest::Client::new();
    let job = |query: &str, tenant: &str| {
        serde_json::json!({
            "tenant": tenant, "blocks": [], "query": query, "limit": 20, "spss": 3
        })
        .to_string()
    };
    for (body, expected) in [
        ("not json".to_owned(), "search job"),
        ("{}".to_owned(), "missing field"),
        (job("{ .a = }", "t"), "parse error"),
        (job("{ }", "../etc"), "tenant"),
    ] {
        let resp = http
            .post(&url)
            .body(body.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), 400, "{body}");
        let text = resp.text().await.expect("body");
        assert!(text.contains(expected), "{body}: {text}");
    }
    // A well-formed job over no blocks finds nothing.
    let resp = http
        .post(&url)
        .body(job("{ }", "t"))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(answer["traces"], serde_json::json!([]));
}

/// Every malformed request is a 400 whose text names what was wrong, and nothing panics.
#[tokio::test]
async fn bad_requests_are_400_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tempest::start(dir.path(), &[], &[]).await;
    let api = Api {
        base: format!("http://127.0.0.1:{}", t.query_port),
        http: reqwest::Client::new(),
    };
    let cases: &[(&str, &str)] = &[
        ("/api/search?limit=abc", "limit"),
        ("/api/search?spss=1000", "spss"),
        ("/api/search?start=10", "start and end"),
        ("/api/search?start=20&end=10", "start"),
        ("/api/search?start=x&end=10", "start"),
        ("/api/search?minDuration=fast", "minDuration"),
        ("/api/search?minDuration=2s&maxDuration=1s", "minDuration"),
        ("/api/search?q=%7B%7D&tags=a%3Db", "q and tags"),
        ("/api/search?tags=novalue", "tags"),
        (
            "/api/search?q=%7B%20.a%20%3D~%20%22(%22%20%7D",
            "parse error",
        ),
        ("/api/search?q=%7B", "parse error"),
        ("/api/search?q=rate()", "parse error"),
        ("/api/v2/search/tags?scope=bogus", "scope"),
        ("/api/v2/search/tags?q=%7B%20%26%26%20%7D", "parse error"),
        ("/api/v2/search/tag/span%3Aid/values", "tag"),
        ("/api/traces/not-hex", "trace id"),
        (
            "/api/v2/traces/00000000000000000000000000000000",
            "trace id",
        ),
        ("/api/traces/0123?start=5", "start and end"),
    ];
    for (path, says) in cases {
        let resp = api.get(path, "application/json", None).await;
        assert_eq!(resp.status(), 400, "{path}");
        let text = resp.text().await.expect("body");
        assert!(text.contains(says), "{path}: {text}");
    }
    // A tenant id outside Tempo's rules is refused before any storage is touched.
    let resp = api
        .get("/api/search", "application/json", Some("../escape"))
        .await;
    assert_eq!(resp.status(), 400);
    // Unknown paths are Go's plain 404.
    let resp = api.get("/api/nothing", "application/json", None).await;
    assert_eq!(resp.status(), 404);
    // An empty store answers searches with no traces rather than an error.
    let empty = api
        .get("/api/search?q=%7B%7D", "application/json", None)
        .await;
    assert_eq!(empty.status(), 200);
    let body: Value = empty.json().await.expect("JSON");
    assert_eq!(body["traces"], serde_json::json!([]));
}

/// With a search-worker URL configured, searches really go to it: an unreachable worker is a
/// 500 naming it, while trace lookups (no jobs) still work.
#[tokio::test]
async fn search_uses_the_configured_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dead = format!(
        "http://127.0.0.1:{}/tempest/search-worker",
        tempest_tests::free_port()
    );
    let t = Tempest::start(dir.path(), &[], &[("TEMPEST_SEARCH_WORKER_URL", &dead)]).await;
    let (trace_id, _) = tempest_tests::clients::otel_export(
        "http",
        format!("http://127.0.0.1:{}/v1/traces", t.otlp_port),
        TENANT,
    )
    .await;
    let api = Api {
        base: format!("http://127.0.0.1:{}", t.query_port),
        http: reqwest::Client::new(),
    };
    let resp = api
        .get(
            &format!("/api/search?q={}", urlencode("{ }")),
            "*/*",
            Some(TENANT),
        )
        .await;
    assert_eq!(resp.status(), 500);
    let text = resp.text().await.expect("body");
    assert!(
        text.contains("search worker") && text.contains(&dead),
        "{text}"
    );
    let found = api
        .get(&format!("/api/traces/{trace_id}"), "*/*", Some(TENANT))
        .await;
    assert_eq!(found.status(), 200);
}
