//! The official Dapr JavaScript SDK (`@dapr/dapr`, HTTP protocol), unmodified, drives
//! `tempest serve`: invoke, state with ETags, transactions, query, publish/subscribe, secrets.
//! The scripted app is tests/clients/dapr-sdk.test.js, run with node's test runner.

use tempest_tests::{Tempest, component, embedded_components, free_port, write_resources};

#[tokio::test]
async fn dapr_js_sdk_works_unmodified() {
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
    let env = vec![
        ("DAPR_HTTP_PORT", t.port.to_string()),
        ("APP_PORT", app_port.to_string()),
    ];
    if let Err(out) = tempest_tests::clients::dapr_sdk_tests("dapr-sdk.test.js", env).await {
        panic!(
            "Dapr JS SDK tests failed:\n{out}\ntempest log:\n{}",
            t.log_text()
        );
    }
}
