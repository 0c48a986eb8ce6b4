//! The ingest round trip against S3 (moto's `moto_server`) and Azure Blob (Azurite), each started
//! here on a free loopback port: spans in over OTLP, committed blocks read back with `tempest blocks`.

use std::process::Command;

use serde_json::json;
use tempest_tests::Tempest;
use tempest_tests::emulators::{azurite_blob, moto_s3};

fn blocks_cli(storage: &str, envs: &[(&str, String)], args: &[&str]) -> String {
    let out = Command::new(tempest_tests::tempest::binary())
        .args(["blocks", "--storage", storage])
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run tempest blocks");
    assert!(
        out.status.success(),
        "tempest blocks {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends one two-span trace over OTLP/JSON and checks it reads back from `storage`.
async fn round_trip(storage: &str, envs: Vec<(&str, String)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let env_refs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let t = Tempest::start(dir.path(), &["--traces-storage", storage], &env_refs).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let body = json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cloud-svc"}}]},
    "scopeSpans": [{"spans": [
        {"traceId": trace, "spanId": "00f067aa0ba902b7", "name": "root", "kind": 2, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000"},
        {"traceId": trace, "spanId": "00f067aa0ba902b8", "parentSpanId": "00f067aa0ba902b7", "name": "child", "kind": 3, "startTimeUnixNano": "1700000000100000000", "endTimeUnixNano": "1700000000200000000"}
    ]}]}]});
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/v1/traces", t.otlp_port))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.status(),
        200,
        "{}\n{}",
        resp.text().await.unwrap_or_default(),
        t.log_text()
    );
    let listed = blocks_cli(storage, &envs, &["list"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let spans = blocks_cli(storage, &envs, &["trace", trace]);
    let names: Vec<String> = spans
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["name"]
                .as_str()
                .expect("name")
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["root", "child"]);
}

#[tokio::test]
async fn s3_via_moto() {
    let (_moto, storage) = moto_s3().await;
    round_trip(&storage, vec![]).await;
}

#[tokio::test]
async fn azure_blob_via_azurite() {
    let (_azurite, _data, storage, envs) = azurite_blob().await;
    round_trip(&storage, envs).await;
}
