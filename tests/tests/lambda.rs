//! The AWS Lambda host: the real `bootstrap` binary run through a Lambda Runtime API server
//! (tests/src/lambda.rs), fed the events AWS sends — function-URL requests (payload 2.0, binary
//! bodies base64-encoded), EventBridge schedule events and direct invocations.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::json;
use tempest_tests::lambda::{LambdaInstance, Outcome, http_event, http_response, scheduled_event};

const T: Duration = Duration::from_secs(30);

/// `traces` traces of 4 spans each, ids starting at `first`, ending now.
fn otlp(first: u8, traces: u8) -> ExportTraceServiceRequest {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let spans = (0..traces)
        .flat_map(|t| {
            (0..4u8).map(move |s| Span {
                trace_id: trace_id(first + t).to_vec(),
                span_id: vec![first + t, s + 1, 0, 0, 0, 0, 0, 1],
                parent_span_id: if s == 0 {
                    vec![]
                } else {
                    vec![first + t, 1, 0, 0, 0, 0, 0, 1]
                },
                name: format!("op-{s}"),
                kind: 2,
                start_time_unix_nano: now - 50_000_000,
                end_time_unix_nano: now - 10_000_000 * u64::from(s),
                ..Default::default()
            })
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("checkout".into())),
                    }),
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn trace_id(n: u8) -> [u8; 16] {
    let mut id = [0xab; 16];
    id[15] = n;
    id
}

fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

/// POSTs `body` to the function behind a function URL; (status, headers, body).
async fn post(
    f: &mut LambdaInstance,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, std::collections::HashMap<String, String>, Vec<u8>) {
    http_response(
        &f.invoke(&http_event("POST", path, headers, Some(body)), T)
            .await,
    )
}

async fn get_json(f: &mut LambdaInstance, path: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = http_response(&f.invoke(&http_event("GET", path, &[], None), T).await);
    let v = serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body)));
    (status, v)
}

/// Spans of a trace through the query function (Tempo's trace-by-ID JSON), 0 when not found.
async fn spans_of(query: &mut LambdaInstance, id: [u8; 16]) -> usize {
    let (status, v) = get_json(query, &format!("/api/traces/{}", hex(&id))).await;
    if status == 404 {
        return 0;
    }
    assert_eq!(status, 200, "{v}");
    // Tempo answers OTLP JSON: `batches` in its older versions, `resourceSpans` now.
    let batches = if v["batches"].is_array() {
        &v["batches"]
    } else {
        &v["resourceSpans"]
    };
    batches
        .as_array()
        .expect("resourceSpans")
        .iter()
        .flat_map(|b| b["scopeSpans"].as_array().cloned().unwrap_or_default())
        .map(|s| s["spans"].as_array().map_or(0, Vec::len))
        .sum()
}

#[tokio::test]
async fn trace_functions_through_the_runtime_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_string_lossy().into_owned();
    let envs = [
        ("TEMPEST_DATA_DIR", data.as_str()),
        ("TEMPEST_TRACES_MAX_BODY_SIZE", "65536"),
    ];
    let mut ingest = LambdaInstance::start(Some("ingest"), &envs).await;
    let mut query = LambdaInstance::start(Some("query"), &envs).await;

    // OTLP protobuf, plain and gzip-compressed, as a binary (base64) body.
    let (status, headers, body) = post(
        &mut ingest,
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        &otlp(1, 3).encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/x-protobuf");
    ExportTraceServiceResponse::decode(body.as_slice()).expect("an OTLP response");
    let (status, _, body) = post(
        &mut ingest,
        "/v1/traces",
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "gzip"),
        ],
        &gzip(&otlp(4, 2).encode_to_vec()),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // Zipkin v2 JSON, a text body, and a tenant of its own.
    let zipkin = json!([{"traceId": hex(&trace_id(9)), "id": "0000000000000009", "name": "get /cart",
        "timestamp": SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_micros() as u64 - 5000,
        "duration": 1200, "localEndpoint": {"serviceName": "cart"}}]);
    let (status, _, body) = post(
        &mut ingest,
        "/api/v2/spans",
        &[
            ("content-type", "application/json"),
            ("x-scope-orgid", "team-b"),
        ],
        zipkin.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));

    // Bad input: the protocol's own errors, nothing written.
    let (status, _, body) = post(
        &mut ingest,
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        b"\xff\xff\xff not protobuf",
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = post(
        &mut ingest,
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        &vec![0u8; 70_000],
    )
    .await;
    assert_eq!(status, 413);
    let (status, _, _) = post(
        &mut ingest,
        "/v1/traces",
        &[("content-type", "text/csv")],
        b"a,b",
    )
    .await;
    assert_eq!(status, 415);
    let (status, _, _) = post(&mut ingest, "/nowhere", &[], b"x").await;
    assert_eq!(status, 404);

    // Query: every span once.
    for n in 1..=5 {
        assert_eq!(spans_of(&mut query, trace_id(n)).await, 4, "trace {n}");
    }
    let (status, v) = get_json(
        &mut query,
        "/api/search?q=%7B%20name%20%3D%20%22op-3%22%20%7D&limit=50",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["traces"].as_array().map(Vec::len), Some(5), "{v}");
    let (status, v) = get_json(&mut query, "/api/echo").await;
    assert_eq!((status, v), (200, json!("echo")));

    // `compact` on its EventBridge schedule merges the two blocks of the default tenant.
    let mut compact = LambdaInstance::start(Some("compact"), &envs).await;
    let reports = compact.invoke(&scheduled_event(), T).await.json();
    let reports = reports.as_array().expect("one report per tenant");
    let main = reports
        .iter()
        .find(|r| r["tenant"] == "single-tenant")
        .expect("the default tenant");
    assert_eq!(main["merged_jobs"], 1, "{main}");
    assert_eq!(main["input_blocks"], 2, "{main}");
    assert_eq!(main["spans_written"], 20, "{main}");
    assert!(
        reports.iter().any(|r| r["tenant"] == "team-b"),
        "{reports:?}"
    );
    // The warm query function still returns every span once.
    for n in 1..=5 {
        assert_eq!(spans_of(&mut query, trace_id(n)).await, 4, "trace {n}");
    }
    // A second run has nothing left to merge.
    let again = compact.invoke(&scheduled_event(), T).await.json();
    assert!(
        again
            .as_array()
            .expect("reports")
            .iter()
            .all(|r| r["merged_jobs"] == 0),
        "{again}"
    );

    // `search-worker`, invoked directly with a job, as `query` does on AWS.
    let storage = dir.path().join("traces");
    let loc = tempest_blocks::store::Location::open(&storage.to_string_lossy()).expect("open");
    let tenant = tempest_core::TenantId::parse(None).expect("tenant");
    let blocks = tempest_blocks::reader::list_blocks(&loc, &tenant)
        .await
        .expect("list");
    let mut worker = LambdaInstance::start(Some("search-worker"), &envs).await;
    let job = json!({"tenant": "single-tenant", "blocks": blocks, "query": "{ name = \"op-2\" }",
        "limit": 10, "spss": 3});
    let result = worker.invoke(&job, T).await.json();
    assert_eq!(
        result["traces"].as_array().map(Vec::len),
        Some(5),
        "{result}"
    );
    // A malformed job is the caller's error, named as such; the instance keeps serving.
    match worker.invoke(&json!({"tenant": 7}), T).await {
        Outcome::Error { body, .. } => {
            assert_eq!(body["errorType"], "BadRequest", "{body}");
            assert!(
                body["errorMessage"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("search job")
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let bad_query = json!({"tenant": "single-tenant", "blocks": [], "query": "{ name = ", "limit": 1, "spss": 1});
    assert!(matches!(
        worker.invoke(&bad_query, T).await,
        Outcome::Error { .. }
    ));
    assert_eq!(worker.invoke(&job, T).await.json(), result);
}

#[tokio::test]
async fn compact_refuses_what_is_not_a_schedule_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_string_lossy().into_owned();
    let mut compact =
        LambdaInstance::start(Some("compact"), &[("TEMPEST_DATA_DIR", data.as_str())]).await;
    match compact.invoke(&json!([1, 2, 3]), T).await {
        Outcome::Error { body, .. } => assert!(
            body["errorMessage"]
                .as_str()
                .unwrap_or_default()
                .contains("deserialize"),
            "{body}"
        ),
        other => panic!("expected an error, got {other:?}"),
    }
    // Still serving: an empty storage gives no reports.
    assert_eq!(
        compact.invoke(&scheduled_event(), T).await.json(),
        json!([])
    );
}

#[tokio::test]
async fn dapr_state_through_a_function_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_string_lossy().into_owned();
    let mut state =
        LambdaInstance::start(Some("state"), &[("TEMPEST_DATA_DIR", data.as_str())]).await;
    let save = json!([{"key": "order-1", "value": {"total": 42}}]);
    let (status, _, body) = post(
        &mut state,
        "/v1.0/state/statestore",
        &[("content-type", "application/json")],
        save.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
    let (status, v) = get_json(&mut state, "/v1.0/state/statestore/order-1").await;
    assert_eq!((status, v), (200, json!({"total": 42})));
    let (status, _, body) = post(
        &mut state,
        "/v1.0/state/statestore",
        &[("content-type", "application/json")],
        b"{not json",
    )
    .await;
    assert_eq!(status, 400);
    let err: serde_json::Value = serde_json::from_slice(&body).expect("Dapr error JSON");
    assert_eq!(err["errorCode"], "ERR_MALFORMED_REQUEST", "{err}");
}

#[tokio::test]
async fn a_misconfigured_bootstrap_says_what_is_wrong() {
    let mut none = LambdaInstance::start(None, &[]).await;
    let (status, _) = none.exit(20).await;
    assert!(!status.success());
    assert!(
        none.log_text().contains("TEMPEST_FUNCTION is not set"),
        "{}",
        none.log_text()
    );
    let mut unknown = LambdaInstance::start(Some("nope"), &[]).await;
    let (status, _) = unknown.exit(20).await;
    assert!(!status.success());
    assert!(
        unknown
            .log_text()
            .contains("\"nope\" is not an HTTP function"),
        "{}",
        unknown.log_text()
    );
}

#[tokio::test]
async fn query_sends_search_jobs_to_the_search_worker_lambda() {
    use tempest_tests::lambda::LambdaService;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_string_lossy().into_owned();
    let envs = [("TEMPEST_DATA_DIR", data.as_str())];
    let mut ingest = LambdaInstance::start(Some("ingest"), &envs).await;
    for first in [1, 4, 7] {
        let (status, _, _) = post(
            &mut ingest,
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            &otlp(first, 3).encode_to_vec(),
        )
        .await;
        assert_eq!(status, 200);
    }
    let worker = LambdaInstance::start(Some("search-worker"), &envs).await;
    let service = LambdaService::start(vec![("tempest-search-worker".to_owned(), worker)]).await;
    let aws = |function: &'static str| {
        [
            ("TEMPEST_DATA_DIR", data.clone()),
            ("TEMPEST_SEARCH_WORKER_FUNCTION", function.to_owned()),
            ("AWS_ENDPOINT_URL_LAMBDA", service.url.clone()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ]
    };
    let envs = aws("tempest-search-worker");
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut query = LambdaInstance::start(Some("query"), &envs).await;
    let (status, v) = get_json(
        &mut query,
        "/api/search?q=%7B%20name%20%3D%20%22op-1%22%20%7D&limit=50",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["traces"].as_array().map(Vec::len), Some(9), "{v}");
    assert!(
        service.invocations() > 0,
        "the jobs went to the worker Lambda"
    );

    // A worker function that does not exist: the search fails and names it.
    let envs = aws("tempest-nowhere");
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut lost = LambdaInstance::start(Some("query"), &envs).await;
    let (status, v) = get_json(
        &mut lost,
        "/api/search?q=%7B%20name%20%3D%20%22op-1%22%20%7D",
    )
    .await;
    assert_eq!(status, 500, "{v}");
    assert!(v.to_string().contains("tempest-nowhere"), "{v}");
}

/// A CloudEvent as Dapr's publish API wraps one, for `topic`.
fn cloudevent(topic: &str, id: &str) -> String {
    json!({"specversion": "1.0", "id": id, "source": "checkout", "type": "com.dapr.event.sent",
        "datacontenttype": "application/json", "topic": topic, "pubsubname": "pubsub",
        "data": {"order": id}})
    .to_string()
}

#[tokio::test]
async fn deliver_answers_sqs_batches_with_partial_failures() {
    use tempest_tests::app::{Reply, TestApp};
    use tempest_tests::lambda::{sns_notification, sqs_event};
    let app = TestApp::start().await;
    app.subscriptions(json!([
        {"pubsubname": "pubsub", "topic": "orders", "route": "/orders"},
        {"pubsubname": "pubsub", "topic": "payments", "route": "/payments"},
        {"pubsubname": "pubsub", "topic": "spam", "route": "/spam"},
        {"pubsubname": "other", "topic": "orders", "route": "/elsewhere"}
    ]));
    app.reply("/orders", vec![Reply::new(200, r#"{"status":"SUCCESS"}"#)]);
    app.reply("/payments", vec![Reply::new(200, r#"{"status":"RETRY"}"#)]);
    app.reply("/spam", vec![Reply::new(200, r#"{"status":"DROP"}"#)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_string_lossy().into_owned();
    let apps = format!("shop={}", app.url);
    let envs = [
        ("TEMPEST_DATA_DIR", data.as_str()),
        ("TEMPEST_APPS", apps.as_str()),
        ("TEMPEST_DELIVER_APP", "shop"),
    ];
    let mut deliver = LambdaInstance::start(Some("deliver"), &envs).await;

    let via_sns = sns_notification("orders", &cloudevent("orders", "o-1"));
    let retried = cloudevent("payments", "p-1");
    let dropped = cloudevent("spam", "s-1");
    // A plain message from the SNS topic `orders`: wrapped in a CloudEvent as Dapr wraps raw
    // payloads, and delivered on the topic's route.
    let plain = sns_notification("orders", "just text");
    let batch = sqs_event(&[
        ("m-1", via_sns.as_str(), 1),
        ("m-2", retried.as_str(), 3),
        ("m-3", dropped.as_str(), 1),
        ("m-4", "no topic anywhere", 1),
        ("m-5", plain.as_str(), 1),
    ]);
    let answer = deliver.invoke(&batch, T).await.json();
    let mut failed: Vec<String> = answer["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures")
        .iter()
        .map(|f| {
            f["itemIdentifier"]
                .as_str()
                .expect("itemIdentifier")
                .to_owned()
        })
        .collect();
    failed.sort();
    assert_eq!(failed, ["m-2", "m-4"], "{answer}");

    let orders = app.received("/orders");
    assert_eq!(orders.len(), 2, "{orders:?}");
    let first = orders
        .iter()
        .find(|r| r.json()["id"] == "o-1")
        .expect("o-1");
    assert_eq!(first.json()["data"], json!({"order": "o-1"}));
    assert_eq!(
        first.header("content-type"),
        Some("application/cloudevents+json")
    );
    assert_eq!(
        first.header("origin"),
        Some("checkout"),
        "SNS attributes travel as metadata"
    );
    let wrapped = orders
        .iter()
        .find(|r| r.json()["id"] != "o-1")
        .expect("the plain one");
    assert_eq!(wrapped.json()["topic"], "orders");
    assert_eq!(
        wrapped.json()["data_base64"],
        "anVzdCB0ZXh0",
        "base64 of the text"
    );
    assert_eq!(app.received("/payments").len(), 1);
    assert_eq!(app.received("/spam").len(), 1);
    assert!(
        app.received("/elsewhere").is_empty(),
        "another component's subscription"
    );

    // The retried message comes again: only it, and a SUCCESS now acknowledges it.
    app.reply("/payments", vec![Reply::new(200, "")]);
    let again = deliver
        .invoke(&sqs_event(&[("m-2", retried.as_str(), 4)]), T)
        .await
        .json();
    assert_eq!(again["batchItemFailures"], json!([]), "{again}");
    assert_eq!(app.received("/payments").len(), 2);
    assert_eq!(
        app.received("/orders").len(),
        2,
        "nothing else was redelivered"
    );

    // A topic nobody subscribes to is acknowledged (as Dapr never consumes it).
    let nobody = cloudevent("nobody", "n-1");
    let answer = deliver
        .invoke(&sqs_event(&[("m-6", nobody.as_str(), 1)]), T)
        .await
        .json();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
}

#[tokio::test]
async fn deliver_keeps_messages_while_the_app_is_unreachable() {
    use tempest_tests::lambda::sqs_event;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_string_lossy().into_owned();
    let port = tempest_tests::free_port();
    let apps = format!("shop=http://127.0.0.1:{port}");
    let envs = [
        ("TEMPEST_DATA_DIR", data.as_str()),
        ("TEMPEST_APPS", apps.as_str()),
    ];
    let mut deliver = LambdaInstance::start(Some("deliver"), &envs).await;
    let msg = cloudevent("orders", "o-1");
    let answer = deliver
        .invoke(
            &sqs_event(&[("m-1", msg.as_str(), 1), ("m-2", msg.as_str(), 1)]),
            T,
        )
        .await
        .json();
    assert_eq!(
        answer["batchItemFailures"],
        json!([{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-2"}]),
        "{answer}"
    );
    // The app comes up: the same instance asks it again, and the messages go through.
    let app = tempest_tests::app::TestApp::start_on(port).await;
    app.subscriptions(json!([{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}]));
    let answer = deliver
        .invoke(&sqs_event(&[("m-1", msg.as_str(), 2)]), T)
        .await
        .json();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    assert_eq!(app.received("/orders").len(), 1);

    // Misconfigured: a component or app that does not exist stops the function at init,
    // saying which.
    for (name, value, says) in [
        (
            "TEMPEST_DELIVER_PUBSUB",
            "nope",
            "TEMPEST_DELIVER_PUBSUB names \"nope\"",
        ),
        (
            "TEMPEST_DELIVER_APP",
            "ghost",
            "TEMPEST_DELIVER_APP names \"ghost\"",
        ),
    ] {
        let mut envs = envs.to_vec();
        envs.push((name, value));
        let mut bad = LambdaInstance::start(Some("deliver"), &envs).await;
        let (status, _) = bad.exit(20).await;
        assert!(!status.success());
        assert!(bad.log_text().contains(says), "{}", bad.log_text());
    }
}
