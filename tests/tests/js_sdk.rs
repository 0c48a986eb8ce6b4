//! The official Dapr JavaScript SDK (`@dapr/dapr`, HTTP protocol), unmodified, drives
//! `tempest serve`: invoke, state with ETags, transactions, query, publish/subscribe, secrets.
//! The scripted app is tests/clients/dapr-sdk.test.js, run with node's test runner.

use std::path::Path;
use std::process::Command;

use tempest_tests::{Tempest, component, embedded_components, free_port, write_resources};

#[tokio::test]
async fn dapr_js_sdk_works_unmodified() {
    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients");
    assert!(
        clients.join("node_modules/@dapr/dapr").exists(),
        "@dapr/dapr is not installed: run `npm ci` in tests/clients (scripts/test does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = dir.path().join("secrets.json");
    std::fs::write(&secrets, r#"{"mysecret":"s3cr3t","db":{"password":"pw"}}"#).expect("write");
    let secrets = secrets.to_string_lossy();
    let mut docs = embedded_components();
    docs.push(component(
        "localsecretstore",
        "secretstores.local.file",
        &[("secretsFile", &secrets), ("nestedSeparator", ":")],
    ));
    let res = write_resources(dir.path(), &docs);
    let app_port = free_port();
    let app = format!("orders=http://127.0.0.1:{app_port}");
    let t = Tempest::start(dir.path(), &["--resources-path", &res, "--app", &app], &[]).await;
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("--test")
            .arg("dapr-sdk.test.js")
            .current_dir(&clients)
            .env("DAPR_HTTP_PORT", t.port.to_string())
            .env("APP_PORT", app_port.to_string())
            .output()
            .map(|o| (o, t))
    })
    .await
    .expect("join")
    .expect("node must be installed");
    let (out, t) = out;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "Dapr JS SDK tests failed:\n{stdout}\ntempest log:\n{}",
        t.log_text()
    );
    assert!(
        stdout.contains("# fail 0") && !stdout.contains("# pass 0"),
        "the SDK tests ran and passed:\n{stdout}"
    );
}
