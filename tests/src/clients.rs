//! The real client programs the tests drive (tests/clients): the OpenTelemetry Python SDK.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

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
