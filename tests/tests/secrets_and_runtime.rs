//! Secrets with scoping and `secretKeyRef`, metadata, health, and the API token.

use serde_json::{Value, json};
use tempest_tests::{Tempest, component, write_resources};

fn setup_resources(dir: &std::path::Path) -> String {
    let secrets = dir.join("secrets.json");
    std::fs::write(
        &secrets,
        r#"{"db":{"password":"pw","user":"u"},"open":"yes","closed":"no"}"#,
    )
    .expect("write");
    let secrets = secrets.to_string_lossy();
    write_resources(
        dir,
        &[
            component("files", "secretstores.local.file", &[("secretsFile", &secrets)]),
            component("env", "secretstores.local.env", &[("prefix", "TT_")]),
            // The table name comes from the secret store through secretKeyRef.
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: statestore}\nauth: {secretstore: files}\nspec:\n  type: state.sqlite\n  version: v1\n  metadata:\n  - name: tableName\n    secretKeyRef: {name: \"db:user\", key: \"db:user\"}\n".into(),
            "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: c}\nspec:\n  secrets:\n    scopes:\n    - {storeName: files, defaultAccess: allow, deniedSecrets: [closed]}\n".into(),
        ],
    )
}

#[tokio::test]
async fn secrets_scopes_and_references() {
    let dir = tempfile::tempdir().expect("tempdir");
    let res = setup_resources(dir.path());
    let t = Tempest::start(
        dir.path(),
        &["--resources-path", &res],
        &[("TT_apikey", "k-123"), ("DAPR_SECRET_THING", "hidden")],
    )
    .await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(t.at(path)).send();
    let r = get("/v1.0/secrets/files/db:password").await.expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"db:password": "pw"})
    );
    assert_eq!(
        get("/v1.0/secrets/env/apikey")
            .await
            .expect("get")
            .json::<Value>()
            .await
            .expect("json"),
        json!({"apikey": "k-123"})
    );
    let r = get("/v1.0/secrets/files/closed").await.expect("get");
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.expect("json")["errorCode"],
        "ERR_PERMISSION_DENIED"
    );
    let bulk: Value = get("/v1.0/secrets/files/bulk")
        .await
        .expect("bulk")
        .json()
        .await
        .expect("json");
    assert_eq!(bulk["open"], json!({"open": "yes"}));
    assert!(
        bulk.get("closed").is_none(),
        "denied secrets are filtered from bulk"
    );
    let r = get("/v1.0/secrets/files/missing").await.expect("get");
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.json::<Value>().await.expect("json")["errorCode"],
        "ERR_SECRET_GET"
    );
    // secretKeyRef resolved: the state store's table name came from the secret store.
    let md: Value = get("/v1.0/metadata")
        .await
        .expect("md")
        .json()
        .await
        .expect("json");
    assert!(
        md["components"]
            .as_array()
            .expect("components")
            .iter()
            .any(|c| c["name"] == "statestore" && c["type"] == "state.sqlite")
    );
    assert_eq!(
        http.post(t.at("/v1.0/state/statestore"))
            .json(&json!([{"key": "k", "value": 1}]))
            .send()
            .await
            .expect("save")
            .status(),
        204
    );
    let conn = rusqlite_tables(&dir.path().join("state.db"));
    assert!(
        conn.contains(&"u".to_string()),
        "table named by the secret: {conn:?}"
    );
}

fn rusqlite_tables(path: &std::path::Path) -> Vec<String> {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; print('\\n'.join(r[0] for r in sqlite3.connect(sys.argv[1]).execute(\"select name from sqlite_master where type='table'\")))")
        .arg(path)
        .output()
        .expect("python3 reads the SQLite file");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn metadata_health_and_extended_attributes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tempest::start(dir.path(), &["--app", "orders=http://127.0.0.1:9"], &[]).await;
    let http = reqwest::Client::new();
    let md: Value = http
        .get(t.at("/v1.0/metadata"))
        .send()
        .await
        .expect("md")
        .json()
        .await
        .expect("json");
    assert_eq!(md["id"], "tempest");
    let names: Vec<&str> = md["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["statestore", "pubsub"],
        "Dapr's default component names"
    );
    assert!(
        md["components"][0]["capabilities"]
            .as_array()
            .expect("caps")
            .iter()
            .any(|c| c == "ETAG")
    );
    assert_eq!(
        http.put(t.at("/v1.0/metadata/team"))
            .body("blue")
            .send()
            .await
            .expect("put")
            .status(),
        204
    );
    let md: Value = http
        .get(t.at("/v1.0/metadata"))
        .send()
        .await
        .expect("md")
        .json()
        .await
        .expect("json");
    assert_eq!(md["extended"]["team"], "blue");
    assert_eq!(
        http.get(t.at("/v1.0/healthz"))
            .send()
            .await
            .expect("h")
            .status(),
        204
    );
    assert_eq!(
        http.get(t.at("/v1.0/healthz/outbound"))
            .send()
            .await
            .expect("h")
            .status(),
        204
    );
    // Trailing slashes and doubled slashes are normalised, as daprd does.
    assert_eq!(
        http.get(t.at("/v1.0//healthz/"))
            .send()
            .await
            .expect("h")
            .status(),
        204
    );
}

#[tokio::test]
async fn api_token_guards_everything_but_health() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tempest::start(dir.path(), &[], &[("DAPR_API_TOKEN", "tok-3n")]).await;
    let http = reqwest::Client::new();
    for (method, path) in [
        ("GET", "/v1.0/metadata"),
        ("POST", "/v1.0/state/statestore"),
        ("GET", "/v1.0/state/statestore/k"),
        ("POST", "/v1.0/publish/pubsub/t"),
        ("GET", "/v1.0/invoke/x/method/y"),
    ] {
        for token in [None, Some("wrong"), Some("tok-3")] {
            let mut req = http
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).expect("m"),
                    t.at(path),
                )
                .body("[]");
            if let Some(tok) = token {
                req = req.header("dapr-api-token", tok);
            }
            let resp = req.send().await.expect("send");
            assert_eq!(resp.status(), 401, "{method} {path} with {token:?}");
            assert_eq!(resp.text().await.expect("body"), "invalid api token");
        }
    }
    let ok = http
        .post(t.at("/v1.0/state/statestore"))
        .header("dapr-api-token", "tok-3n")
        .json(&json!([{"key": "k", "value": 1}]))
        .send()
        .await
        .expect("send");
    assert_eq!(ok.status(), 204);
    assert_eq!(
        http.get(t.at("/v1.0/healthz"))
            .send()
            .await
            .expect("h")
            .status(),
        204,
        "health is exempt"
    );
    assert_eq!(
        http.get(t.at("/v1.0/healthz/outbound"))
            .send()
            .await
            .expect("h")
            .status(),
        204
    );
    assert!(
        !t.log_text().contains("tok-3n"),
        "the token is never logged"
    );
}
