//! The Azure Functions host: the real custom handler (`tempest-azure`) with blocks in Azurite's
//! Blob service, sent what the Functions host sends it — HTTP requests forwarded as they came
//! (`enableForwardingHttpRequest`, no route prefix) and the custom-handler JSON of a timer
//! invocation — and the app folder it writes (`host.json`, one `function.json` per function).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tempest_tests::emulators::azurite_blob;
use tempest_tests::process::{Server, spawn_listening};

struct Handler {
    _server: Server,
    url: String,
}

async fn start_handler(envs: &[(&str, String)]) -> Handler {
    let (server, port) = spawn_listening("the custom handler", Duration::from_secs(20), |port| {
        let mut cmd = Command::new(tempest_tests::tempest::sibling_binary("tempest-azure"));
        cmd.env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("TEMPEST_SELF_TELEMETRY", "0")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        cmd
    })
    .await;
    Handler {
        _server: server,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// An OTLP/JSON request: `traces` traces of 4 spans from `first`, ending now.
fn otlp(first: u32, traces: u32) -> serde_json::Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let spans: Vec<_> = (first..first + traces)
        .flat_map(|t| {
            (1..=4u32).map(move |s| {
                json!({"traceId": trace_id(t), "spanId": format!("{t:08x}{s:08x}"), "name": format!("op-{s}"),
                    "kind": 2, "startTimeUnixNano": (now - 40_000_000).to_string(),
                    "endTimeUnixNano": (now - 1_000_000 * u64::from(s)).to_string()})
            })
        })
        .collect();
    json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
        "scopeSpans": [{"spans": spans}]}]})
}

fn trace_id(n: u32) -> String {
    format!("{:024x}{n:08x}", 0xfeed_u64)
}

/// Headers the Functions host adds when it forwards a request.
fn forwarded(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    req.header("x-forwarded-proto", "https")
        .header("x-forwarded-for", "203.0.113.7:50123")
        .header("x-ms-request-id", "3f6b5c2e-6e1d-4b0e-9a59-0c1e2a3b4c5d")
        .header("x-original-url", "/")
}

async fn spans_of(http: &reqwest::Client, h: &Handler, trace: u32) -> usize {
    let resp = forwarded(http.get(format!("{}/api/traces/{}", h.url, trace_id(trace))))
        .send()
        .await
        .expect("query");
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.expect("JSON");
    v["resourceSpans"]
        .as_array()
        .or(v["batches"].as_array())
        .expect("resourceSpans")
        .iter()
        .flat_map(|b| b["scopeSpans"].as_array().cloned().unwrap_or_default())
        .map(|s| s["spans"].as_array().map_or(0, Vec::len))
        .sum()
}

/// A timer invocation exactly as the Functions host posts it to `/compact`.
fn timer_invocation(past_due: bool) -> serde_json::Value {
    let timer = json!({"Schedule": {"AdjustForDST": true},
        "ScheduleStatus": {"Last": "2026-11-25T06:00:00+00:00", "Next": "2026-11-25T06:05:00+00:00",
            "LastUpdated": "2026-11-25T06:00:00+00:00"},
        "IsPastDue": past_due});
    json!({"Data": {"timer": timer},
        "Metadata": {"timer": timer, "sys": {"MethodName": "compact", "UtcNow": "2026-11-25T06:05:00.0123Z",
            "RandGuid": "a1b2c3d4-0000-4000-8000-000000000001"}}})
}

#[tokio::test]
async fn custom_handler_on_azurite() {
    let (_azurite, _blobs, storage, azurite_env) = azurite_blob().await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut envs = azurite_env;
    envs.push(("TEMPEST_TRACES_STORAGE", storage));
    envs.push((
        "TEMPEST_DATA_DIR",
        data.path().to_string_lossy().into_owned(),
    ));
    envs.push(("TEMPEST_TRACES_MAX_BODY_SIZE", "65536".to_owned()));
    let h = start_handler(&envs).await;
    let http = reqwest::Client::new();

    // ingest: OTLP/JSON, gzip-compressed OTLP/JSON, then bad input.
    let resp = forwarded(http.post(format!("{}/v1/traces", h.url)))
        .json(&otlp(1, 3))
        .send()
        .await
        .expect("ingest");
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(otlp(4, 2).to_string().as_bytes())
        .expect("gzip");
    let resp = forwarded(http.post(format!("{}/v1/traces", h.url)))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.finish().expect("gzip"))
        .send()
        .await
        .expect("ingest gzip");
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    for (body, ctype, status) in [
        (b"{\"resourceSpans\": 7}".to_vec(), "application/json", 400),
        (vec![b'x'; 70_000], "application/json", 413),
        (b"a,b".to_vec(), "text/csv", 415),
    ] {
        let resp = forwarded(http.post(format!("{}/v1/traces", h.url)))
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .expect("bad ingest");
        assert_eq!(resp.status(), status);
    }
    let resp = forwarded(http.post(format!("{}/api/v2/spans", h.url)))
        .json(&json!([{"traceId": trace_id(9), "id": "0000000000000009", "name": "get /cart",
            "timestamp": SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_micros() as u64 - 5000,
            "duration": 1200, "localEndpoint": {"serviceName": "cart"}}]))
        .send()
        .await
        .expect("zipkin");
    assert_eq!(resp.status(), 202);

    // query, state and the host's own probes.
    for t in 1..=5 {
        assert_eq!(spans_of(&http, &h, t).await, 4, "trace {t}");
    }
    let resp = forwarded(http.get(format!("{}/ready", h.url)))
        .send()
        .await
        .expect("ready");
    assert_eq!(resp.status(), 200);
    let resp = forwarded(http.post(format!("{}/v1.0/state/statestore", h.url)))
        .json(&json!([{"key": "cart-1", "value": {"items": 3}}]))
        .send()
        .await
        .expect("save");
    assert_eq!(resp.status(), 204);
    let v: serde_json::Value =
        forwarded(http.get(format!("{}/v1.0/state/statestore/cart-1", h.url)))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("JSON");
    assert_eq!(v, json!({"items": 3}));
    let resp = forwarded(http.get(format!("{}/elsewhere", h.url)))
        .send()
        .await
        .expect("unknown");
    assert_eq!(resp.status(), 404);

    // compact on its timer: the custom-handler JSON in, Outputs/Logs/ReturnValue out.
    let resp = http
        .post(format!("{}/compact", h.url))
        .json(&timer_invocation(false))
        .send()
        .await
        .expect("timer");
    assert_eq!(resp.status(), 200);
    let out: serde_json::Value = resp.json().await.expect("JSON");
    assert_eq!(out["Outputs"], json!({}), "{out}");
    assert!(!out["Logs"].as_array().expect("Logs").is_empty(), "{out}");
    let main = out["ReturnValue"]
        .as_array()
        .expect("reports")
        .iter()
        .find(|r| r["tenant"] == "single-tenant")
        .cloned()
        .expect("the default tenant");
    assert_eq!(main["merged_jobs"], 1, "{out}");
    // Three blocks (two OTLP requests and the Zipkin one): 5 × 4 + 1 spans.
    assert_eq!(main["input_blocks"], 3, "{out}");
    assert_eq!(main["spans_written"], 21, "{out}");
    for t in 1..=5 {
        assert_eq!(
            spans_of(&http, &h, t).await,
            4,
            "trace {t} after compaction"
        );
    }
    assert_eq!(spans_of(&http, &h, 9).await, 1);
    // A past-due run says so; a payload without timer data is refused.
    let out: serde_json::Value = http
        .post(format!("{}/compact", h.url))
        .json(&timer_invocation(true))
        .send()
        .await
        .expect("timer")
        .json()
        .await
        .expect("JSON");
    assert!(out["Logs"].to_string().contains("past due"), "{out}");
    for bad in [
        json!({"Data": {}}),
        json!([1]),
        json!({"Data": {"timer": {"IsPastDue": "yes"}}}),
    ] {
        let resp = http
            .post(format!("{}/compact", h.url))
            .json(&bad)
            .send()
            .await
            .expect("bad timer");
        assert_eq!(resp.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn the_app_folder_declares_every_function() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(tempest_tests::tempest::sibling_binary("tempest-azure"))
        .arg("write-app")
        .arg(dir.path())
        .output()
        .expect("write-app");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).expect("read")).expect("JSON")
    };
    let host = read(&dir.path().join("host.json"));
    assert_eq!(host["version"], "2.0");
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        "handler"
    );
    assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], true);
    assert_eq!(host["extensions"]["http"]["routePrefix"], "");
    let settings = read(&dir.path().join("local.settings.json"));
    assert_eq!(settings["Values"]["FUNCTIONS_WORKER_RUNTIME"], "custom");

    // Every HTTP route reaches its function through the handler.
    let data = tempfile::tempdir().expect("tempdir");
    let h = start_handler(&[(
        "TEMPEST_DATA_DIR",
        data.path().to_string_lossy().into_owned(),
    )])
    .await;
    let http = reqwest::Client::new();
    let mut timers = 0;
    let mut queues = 0;
    let mut routes = 0;
    for entry in std::fs::read_dir(dir.path()).expect("list") {
        let path = entry.expect("entry").path().join("function.json");
        if !path.exists() {
            continue;
        }
        let f = read(&path);
        let trigger = &f["bindings"][0];
        match trigger["type"].as_str() {
            Some("timerTrigger") => {
                timers += 1;
                assert_eq!(trigger["schedule"], "%TEMPEST_COMPACTION_SCHEDULE%");
                assert!(settings["Values"]["TEMPEST_COMPACTION_SCHEDULE"].is_string());
            }
            Some("queueTrigger") => {
                queues += 1;
                assert_eq!(trigger["queueName"], "%TEMPEST_DELIVER_QUEUE%");
                assert_eq!(trigger["name"], "msg", "the handler reads Data.msg");
                assert_eq!(trigger["connection"], "AzureWebJobsStorage");
                assert!(settings["Values"]["TEMPEST_DELIVER_QUEUE"].is_string());
                assert_eq!(host["extensions"]["queues"]["maxDequeueCount"], 5);
            }
            Some("httpTrigger") => {
                routes += 1;
                assert_eq!(f["bindings"][1]["type"], "http", "{f}");
                let route = trigger["route"]
                    .as_str()
                    .expect("route")
                    .replace("{*rest}", "x");
                let method = trigger["methods"][0]
                    .as_str()
                    .expect("method")
                    .to_uppercase();
                let resp = http
                    .request(
                        method.parse().expect("method"),
                        format!("{}/{route}", h.url),
                    )
                    .send()
                    .await
                    .expect("request");
                let body = resp.text().await.unwrap_or_default();
                assert!(
                    !body.contains("no function serves this path"),
                    "{method} /{route} is not dispatched"
                );
            }
            other => panic!("unexpected trigger {other:?} in {}", path.display()),
        }
    }
    assert_eq!(timers, 1);
    assert_eq!(queues, 1);
    assert!(routes >= 10, "{routes} HTTP functions");
}

/// A queue-trigger invocation exactly as the Functions host posts it to `/deliver`: the
/// message text in `Data.msg`, the queue's metadata beside it (strings of JSON, as the host
/// serialises them).
fn queue_invocation(msg: &str, id: &str, dequeue_count: u32) -> serde_json::Value {
    json!({"Data": {"msg": msg},
        "Metadata": {"DequeueCount": dequeue_count, "ExpirationTime": "\"2026-12-09T06:00:00+00:00\"",
            "Id": format!("\"{id}\""), "InsertionTime": "\"2026-12-02T06:00:00+00:00\"",
            "NextVisibleTime": "\"2026-12-02T06:00:10+00:00\"", "PopReceipt": "\"AgAAAAMAAAAAAAAA\"",
            "sys": {"MethodName": "deliver", "UtcNow": "2026-12-02T06:00:00.0123Z",
                "RandGuid": "c1f5e0a4-3f0c-4c5a-9c41-6ad43d0f2a10"}}})
}

#[tokio::test]
async fn deliver_on_its_queue_trigger() {
    use tempest_tests::app::{Reply, TestApp};
    let app = TestApp::start().await;
    app.subscriptions(json!([
        {"pubsubname": "pubsub", "topic": "orders", "route": "/orders"},
        {"pubsubname": "pubsub", "topic": "payments", "route": "/payments"}
    ]));
    app.reply("/orders", vec![Reply::new(200, r#"{"status":"SUCCESS"}"#)]);
    app.reply("/payments", vec![Reply::new(200, r#"{"status":"RETRY"}"#)]);
    let data = tempfile::tempdir().expect("tempdir");
    let h = start_handler(&[
        (
            "TEMPEST_DATA_DIR",
            data.path().to_string_lossy().into_owned(),
        ),
        ("TEMPEST_APPS", format!("shop={}", app.url)),
        ("TEMPEST_DELIVER_TOPIC", "orders".to_owned()),
    ])
    .await;
    let http = reqwest::Client::new();
    let send = |body: serde_json::Value| {
        let (http, url) = (http.clone(), format!("{}/deliver", h.url));
        async move {
            let resp = http.post(url).json(&body).send().await.expect("deliver");
            let status = resp.status().as_u16();
            (
                status,
                resp.json::<serde_json::Value>()
                    .await
                    .expect("custom-handler JSON"),
            )
        }
    };
    let ce = |topic: &str, id: &str| {
        json!({"specversion": "1.0", "id": id, "source": "checkout", "type": "com.dapr.event.sent",
            "datacontenttype": "application/json", "topic": topic, "pubsubname": "pubsub",
            "data": {"order": id}})
        .to_string()
    };

    // Delivered: 200 and a log line; the app got the CloudEvent.
    let (status, v) = send(queue_invocation(&ce("orders", "o-1"), "q-1", 1)).await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["Logs"][0].as_str().is_some_and(|l| l.contains("done")),
        "{v}"
    );
    let got = app.received("/orders");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["data"], json!({"order": "o-1"}));
    // A message the host parsed as JSON arrives as an object: the same event.
    let parsed: serde_json::Value = serde_json::from_str(&ce("orders", "o-2")).expect("JSON");
    let (status, v) =
        send(json!({"Data": {"msg": parsed}, "Metadata": {"DequeueCount": "2"}})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(app.received("/orders").len(), 2);
    // Plain text on the queue: the queue's topic (TEMPEST_DELIVER_TOPIC), wrapped as Dapr wraps raw payloads.
    let (status, v) = send(queue_invocation("just text", "q-3", 1)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        app.received("/orders")[2].json()["data_base64"],
        "anVzdCB0ZXh0"
    );

    // RETRY: the invocation fails, so the host makes the message visible again.
    let (status, v) = send(queue_invocation(&ce("payments", "p-1"), "q-4", 1)).await;
    assert_eq!(status, 500, "{v}");
    assert!(
        v["Logs"][0]
            .as_str()
            .is_some_and(|l| l.contains("tried again")),
        "{v}"
    );
    app.reply("/payments", vec![Reply::new(200, "")]);
    let (status, v) = send(queue_invocation(&ce("payments", "p-1"), "q-4", 2)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(app.received("/payments").len(), 2);

    // Not a queue invocation: 400 with the reason, nothing delivered.
    for bad in [
        json!({"Data": {}}),
        json!({"Data": {"timer": {}}}),
        json!([1, 2]),
    ] {
        let (status, v) = send(bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    assert_eq!(
        app.all_received()
            .iter()
            .filter(|r| r.path != "/dapr/subscribe")
            .count(),
        5
    );
}
