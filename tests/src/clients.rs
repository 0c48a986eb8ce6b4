//! The real client programs the tests drive (tests/clients): the OpenTelemetry Python SDK and
//! the Dapr JS SDK.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

/// Runs the Dapr JS SDK test script `script` (in tests/clients) with node's test runner and
/// `env`; `Err` carries the runner's output when a test failed or none ran, `Ok` the output.
pub async fn dapr_sdk_tests(
    script: &str,
    env: Vec<(&'static str, String)>,
) -> Result<String, String> {
    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients");
    assert!(
        clients.join("node_modules/@dapr/dapr").exists(),
        "@dapr/dapr is not installed: run `npm ci` in tests/clients (scripts/test does)"
    );
    let script = script.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("--test")
            .arg(script)
            .current_dir(&clients)
            .envs(env)
            .output()
    })
    .await
    .expect("join")
    .expect("node must be installed");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    let passed = out.status.success() && text.contains("# fail 0") && !text.contains("# pass 0");
    if passed { Ok(text) } else { Err(text) }
}

/// Runs the OpenTelemetry Python SDK exporter script; returns the exported trace id and the
/// SDK's own description of every exported span.
pub async fn otel_export(protocol: &str, endpoint: String, tenant: &str) -> (String, Vec<Value>) {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/.venv/bin/python");
    assert!(
        python.exists(),
        "the Python venv with the OpenTelemetry SDK is missing: scripts/test creates it"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/otel_export.py");
    let (protocol, tenant) = (protocol.to_owned(), tenant.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(protocol)
            .arg(endpoint)
            .arg(tenant)
            .output()
    })
    .await
    .expect("join")
    .expect("run python");
    assert!(
        out.status.success(),
        "exporter failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let trace_id = lines.next().expect("trace id line").trim().to_owned();
    let described: Vec<Value> =
        serde_json::from_str(lines.next().expect("spans line")).expect("span descriptions");
    (trace_id, described)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn any_json(v: &tempest_traces::AnyValue) -> Value {
    use tempest_traces::AnyValue::*;
    match v {
        Str(s) => json!(s),
        Int(i) => json!(i),
        Double(d) => json!(d),
        Bool(b) => json!(b),
        Array(items) => Value::Array(items.iter().map(any_json).collect()),
        other => json!(format!("{other:?}")),
    }
}

fn attrs_json(kvs: &[tempest_traces::KeyValue]) -> Value {
    Value::Object(
        kvs.iter()
            .map(|kv| (kv.key.clone(), any_json(&kv.value)))
            .collect(),
    )
}

/// Exports with [`otel_export`] and checks the trace against the blocks at `storage` with
/// [`compare_with_stored`]: exactly for OTLP, loosely for Zipkin, whose spans carry no tenant
/// and land in the default one. Returns what [`otel_export`] returned.
pub async fn export_and_check(
    protocol: &str,
    endpoint: String,
    tenant: &str,
    storage: &Path,
) -> (String, Vec<Value>) {
    let (trace, spans) = otel_export(protocol, endpoint, tenant).await;
    let (stored_in, exact) = match protocol {
        "zipkin" => ("single-tenant", false),
        _ => (tenant, true),
    };
    compare_with_stored(storage, stored_in, &trace, &spans, exact).await;
    (trace, spans)
}

/// Reads the trace back from the blocks at `storage` (the block reader) and compares every field
/// with what the SDK exported ([`otel_export`]). `exact` is false for Zipkin, whose wire format keeps only microseconds and string tags.
pub async fn compare_with_stored(
    storage: &Path,
    tenant: &str,
    trace_id: &str,
    described: &[Value],
    exact: bool,
) {
    let loc = tempest_blocks::store::Location::open(&storage.to_string_lossy()).expect("open");
    let id: [u8; 16] = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[i * 2..i * 2 + 2], 16).expect("hex"))
        .collect::<Vec<_>>()
        .try_into()
        .expect("16 bytes");
    let stored = tempest_blocks::reader::find_trace(
        &loc,
        &tempest_core::TenantId::parse(Some(tenant)).expect("tenant"),
        &id,
    )
    .await
    .expect("find");
    assert_eq!(
        stored.len(),
        described.len(),
        "every exported span is stored once"
    );
    for want in described {
        let got = stored
            .iter()
            .find(|s| hex(&s.span_id) == want["spanId"])
            .unwrap_or_else(|| panic!("span {} stored", want["spanId"]));
        let name = &want["name"];
        assert_eq!(hex(&got.trace_id), want["traceId"], "{name}: trace id");
        assert_eq!(
            got.parent_span_id
                .map(|p| hex(&p))
                .map(Value::from)
                .unwrap_or(Value::Null),
            want["parentSpanId"],
            "{name}: parent"
        );
        assert_eq!(json!(got.name), want["name"]);
        assert_eq!(json!(got.kind as i32), want["kind"], "{name}: kind");
        assert_eq!(
            json!(got.status_code),
            want["status"]["code"],
            "{name}: status code"
        );
        assert_eq!(
            got.resource.service_name(),
            want["resource"]["service.name"].as_str(),
            "{name}: service"
        );
        let (start, end) = (
            want["start"].as_u64().expect("start"),
            want["end"].as_u64().expect("end"),
        );
        if exact {
            assert_eq!(
                (got.start_unix_nano, got.end_unix_nano),
                (start, end),
                "{name}: times"
            );
            assert_eq!(
                json!(got.status_message),
                want["status"]["message"],
                "{name}: status message"
            );
            assert_eq!(
                attrs_json(&got.attributes),
                want["attributes"],
                "{name}: attributes"
            );
            assert_eq!(
                attrs_json(&got.resource.attributes),
                want["resource"],
                "{name}: resource"
            );
            assert_eq!(
                json!(got.scope.name),
                want["scope"]["name"],
                "{name}: scope name"
            );
            assert_eq!(
                json!(got.scope.version),
                want["scope"]["version"],
                "{name}: scope version"
            );
            assert_eq!(
                json!(got.trace_state),
                want["traceState"],
                "{name}: trace state"
            );
            // Trace flags are not compared: the Python OTLP exporter does not put them on the wire.
            let events: Vec<Value> = got.events.iter().map(|e| json!({"name": e.name, "time": e.time_unix_nano, "attributes": attrs_json(&e.attributes)})).collect();
            assert_eq!(Value::Array(events), want["events"], "{name}: events");
        } else {
            // Zipkin carries microseconds (the exporter rounds) and string tags.
            let close = |a: u64, b: u64| a.abs_diff(b) <= 1;
            assert!(
                close(got.start_unix_nano / 1000, start / 1000)
                    && close(got.duration_nano() / 1000, (end - start) / 1000),
                "{name}: times {} {} vs {start} {end}",
                got.start_unix_nano,
                got.end_unix_nano
            );
            for key in want["attributes"].as_object().expect("attributes").keys() {
                assert!(
                    got.attributes.iter().any(|kv| &kv.key == key),
                    "{name}: tag {key} kept"
                );
            }
            assert_eq!(
                got.events.len(),
                want["events"].as_array().map_or(0, Vec::len),
                "{name}: annotations"
            );
        }
    }
}
