//! The Spin host: the WebAssembly component `scripts/package-spin` builds, served by
//! `wasmtime serve` (Wasmtime is the engine Spin runs components on; Spin itself cannot be
//! installed here) the way Spin serves it: a fresh instance for every request, the function and
//! its configuration from the component's environment, blocks in a mounted folder. Real clients
//! send the spans (the OpenTelemetry Python SDK over OTLP/HTTP and its Zipkin exporter) and
//! call the Dapr API (the Dapr JS SDK), whose components reach Azurite and a Key Vault
//! stand-in, or moto's DynamoDB, SNS, SQS and Secrets Manager, over the host's outgoing HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use tempest_tests::wasmtime::Served;

/// `dist/spin/tempest.wasm`, built once for all the tests here.
fn component() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = Command::new(root.join("scripts/package-spin"))
            .output()
            .expect("run scripts/package-spin");
        assert!(
            out.status.success(),
            "scripts/package-spin failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        root.join("dist/spin/tempest.wasm")
    })
}

/// Serves `dist/spin/tempest.wasm` as `function`; see [`tempest_tests::wasmtime::serve`].
async fn serve(function: Option<&str>, data: Option<&Path>, env: &[(&str, String)]) -> Served {
    tempest_tests::wasmtime::serve(component(), function, data, env).await
}

/// Every file under `dir`, relative.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .expect("under dir")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    out
}

async fn get_json(http: &reqwest::Client, url: String, tenant: &str) -> (u16, Value) {
    let resp = http
        .get(&url)
        .header("X-Scope-OrgID", tenant)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn spin_component_ingests_and_queries_with_real_clients() {
    let data = tempfile::tempdir().expect("tempdir");
    let ingest = serve(Some("ingest"), Some(data.path()), &[]).await;
    let query = serve(Some("query"), Some(data.path()), &[]).await;
    let storage = data.path().join("traces");

    // OTLP/HTTP protobuf from the OpenTelemetry Python SDK, every field kept.
    let (otlp_trace, otlp_spans) = tempest_tests::clients::export_and_check(
        "http",
        format!("{}/v1/traces", ingest.url),
        "team-spin",
        &storage,
    )
    .await;
    // Zipkin v2 JSON from the SDK's Zipkin exporter, to the default tenant.
    tempest_tests::clients::export_and_check(
        "zipkin",
        format!("{}/api/v2/spans", ingest.url),
        "unused",
        &storage,
    )
    .await;

    // Tempo's query API, from another component over the same folder.
    let http = reqwest::Client::new();
    let (status, body) = get_json(&http, format!("{}/ready", query.url), "team-spin").await;
    assert_eq!((status, body), (200, Value::from("ready")));
    let (status, trace) = get_json(
        &http,
        format!("{}/api/v2/traces/{otlp_trace}", query.url),
        "team-spin",
    )
    .await;
    assert_eq!(status, 200, "{trace}");
    let spans: usize = trace["trace"]["resourceSpans"]
        .as_array()
        .expect("resourceSpans")
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        .map(|s| s["spans"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(spans, otlp_spans.len(), "every span through the query API");
    // Tenants stay apart.
    let (status, _) = get_json(
        &http,
        format!("{}/api/traces/{otlp_trace}", query.url),
        "single-tenant",
    )
    .await;
    assert_eq!(status, 404, "another tenant does not see the trace");
    // TraceQL search finds it by service.
    let service = otlp_spans[0]["resource"]["service.name"]
        .as_str()
        .expect("service.name");
    let (status, found) = get_json(
        &http,
        format!(
            "{}/api/search?q=%7Bresource.service.name%3D%22{service}%22%7D&limit=20",
            query.url
        ),
        "team-spin",
    )
    .await;
    assert_eq!(status, 200, "{found}");
    let ids: Vec<&str> = found["traces"]
        .as_array()
        .expect("traces")
        .iter()
        .filter_map(|t| t["traceID"].as_str())
        .collect();
    assert!(
        ids.iter()
            .any(|id| id.trim_start_matches('0') == otlp_trace.trim_start_matches('0')),
        "search found {otlp_trace}: {found}"
    );
    let (status, tags) = get_json(
        &http,
        format!("{}/api/v2/search/tags", query.url),
        "team-spin",
    )
    .await;
    assert_eq!(status, 200, "{tags}");
    assert!(tags.to_string().contains("service.name"), "{tags}");

    // `query` sending its search jobs to a `search-worker` component over the host's outgoing
    // HTTP (TEMPEST_SEARCH_WORKER_URL), as spin.toml routes them.
    let worker = serve(Some("search-worker"), Some(data.path()), &[]).await;
    let fanned = serve(
        Some("query"),
        Some(data.path()),
        &[(
            "TEMPEST_SEARCH_WORKER_URL",
            format!("{}/tempest/search-worker", worker.url),
        )],
    )
    .await;
    let search = format!(
        "{}/api/search?q=%7Bresource.service.name%3D%22{service}%22%7D&limit=20",
        fanned.url
    );
    let (status, through_worker) = get_json(&http, search.clone(), "team-spin").await;
    assert_eq!(status, 200, "{through_worker}");
    assert_eq!(
        through_worker["traces"], found["traces"],
        "the worker finds what the query component found alone"
    );
    drop(worker);
    let (status, body) = get_json(&http, search, "team-spin").await;
    assert!(
        status >= 500,
        "without its worker the search fails: {status} {body}"
    );
}

/// Ingest into `storage` through one component and read back through another, both over the
/// host's outgoing HTTP and with no folder at all (as on Spin, whose mounts are read-only):
/// spans from the OpenTelemetry SDK, found by the native `tempest blocks` and by the query
/// component.
async fn round_trip_over_wasi_http(storage: &str, env: Vec<(&'static str, String)>) {
    let mut component_env = env.clone();
    component_env.push(("TEMPEST_TRACES_STORAGE", storage.to_owned()));
    let ingest = serve(Some("ingest"), None, &component_env).await;
    let query = serve(Some("query"), None, &component_env).await;
    let (trace, spans) = tempest_tests::clients::otel_export(
        "http",
        format!("{}/v1/traces", ingest.url),
        "team-cloud",
    )
    .await;
    let out = Command::new(tempest_tests::tempest::binary())
        .args([
            "blocks",
            "--storage",
            storage,
            "--tenant",
            "team-cloud",
            "trace",
            &trace,
        ])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run tempest blocks");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut stored: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON line");
            v["name"].as_str().expect("name").to_owned()
        })
        .collect();
    let mut exported: Vec<String> = spans
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_owned())
        .collect();
    stored.sort();
    exported.sort();
    assert_eq!(stored, exported, "every exported span is in {storage}");
    let (status, got) = get_json(
        &reqwest::Client::new(),
        format!("{}/api/traces/{trace}", query.url),
        "team-cloud",
    )
    .await;
    assert_eq!(status, 200, "{got}");
    for name in &exported {
        assert!(got.to_string().contains(name.as_str()), "{name} in {got}");
    }
}

#[tokio::test]
async fn spin_component_stores_blocks_in_s3_over_wasi_http() {
    let (_moto, storage) = tempest_tests::emulators::moto_s3().await;
    round_trip_over_wasi_http(&storage, vec![]).await;
}

#[tokio::test]
async fn spin_component_stores_blocks_in_azure_blob_over_wasi_http() {
    let (_azurite, _data, storage, env) = tempest_tests::emulators::azurite_blob().await;
    round_trip_over_wasi_http(&storage, env).await;
}

#[tokio::test]
async fn spin_component_refuses_bad_input_and_writes_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let ingest = serve(
        Some("ingest"),
        Some(data.path()),
        &[("TEMPEST_TRACES_MAX_BODY_SIZE", "4096".into())],
    )
    .await;
    let http = reqwest::Client::new();
    let post = |path: &str, content_type: &str, body: Vec<u8>| {
        http.post(format!("{}{path}", ingest.url))
            .header("content-type", content_type)
            .body(body)
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "truncated protobuf",
            post(
                "/v1/traces",
                "application/x-protobuf",
                vec![0x0a, 0x20, 0x01],
            ),
            400,
        ),
        (
            "malformed JSON",
            post(
                "/v1/traces",
                "application/json",
                b"{\"resourceSpans\": [".to_vec(),
            ),
            400,
        ),
        (
            "unknown content type",
            post("/v1/traces", "text/csv", b"a,b".to_vec()),
            415,
        ),
        (
            "oversize body",
            post("/v1/traces", "application/json", vec![b' '; 8192]),
            413,
        ),
        (
            "hostile tenant id",
            post("/v1/traces", "application/json", b"{}".to_vec())
                .header("X-Scope-OrgID", "../../etc"),
            400,
        ),
        (
            "bad gzip",
            post("/v1/traces", "application/json", b"not gzip".to_vec())
                .header("content-encoding", "gzip"),
            400,
        ),
        (
            "Zipkin spans that are not a list",
            post("/api/v2/spans", "application/json", b"{\"id\": 1}".to_vec()),
            400,
        ),
        (
            "random Jaeger Thrift",
            post(
                "/api/traces",
                "application/x-thrift",
                vec![0xff, 0x13, 0x77, 0x00, 0x9c],
            ),
            400,
        ),
    ];
    for (what, req, want) in cases {
        let resp = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = resp.status().as_u16();
        let body = resp.text().await.expect("body");
        assert_eq!(status, want, "{what}: {body}");
        assert!(!body.is_empty(), "{what}: the refusal says why");
    }
    assert_eq!(
        files(&data.path().join("traces")),
        Vec::<String>::new(),
        "nothing written"
    );

    // A component that is not told its function, or told a function this host does not
    // serve, answers every request with why.
    // A component type whose driver is not in the component says so.
    let redis = tempest_tests::component(
        "statestore",
        "state.redis",
        &[("redisHost", "127.0.0.1:6379")],
    );
    for (function, env, says) in [
        (None, vec![], "TEMPEST_FUNCTION is not set"),
        (Some("compact"), vec![], "not an HTTP function"),
        (
            Some("state"),
            vec![("TEMPEST_COMPONENTS", redis)],
            "state.redis (not in this build",
        ),
    ] {
        let served = serve(function, Some(data.path()), &env).await;
        let resp = http
            .get(format!("{}/v1.0/state/store/key", served.url))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 500);
        let body = resp.text().await.expect("body");
        assert!(body.contains(says), "{function:?}: {body}");
    }
}

/// A cloud backend of the Dapr functions in the component: its state store, pub/sub and
/// secret store (each `(name, type, metadata)`), the subscriber's side of its pub/sub, and
/// what the component's environment adds.
struct Backend {
    store: (&'static str, &'static str, Vec<(&'static str, String)>),
    pubsub: (&'static str, &'static str, Vec<(&'static str, String)>),
    vault: (&'static str, &'static str, Vec<(&'static str, String)>),
    /// The pub/sub, connected from the test, with the subscriber's group `shop` on `orders`.
    broker: Box<dyn tempest_building_blocks::pubsub::Broker>,
    env: Vec<(&'static str, String)>,
}

/// The Dapr functions in the component on `backend`, driven by the Dapr JS SDK (tests/clients/
/// dapr-sdk-spin.test.js): invocation of the SDK's own app server, state, a publish (read back
/// here from the subscriber's side, as a CloudEvent), secrets from the cloud secret store and
/// from a mounted file, metadata.
async fn dapr_sdk_through_the_component(backend: Backend) {
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(data.path().join("secrets.json"), r#"{"mysecret":"s3cr3t"}"#)
        .expect("write secrets");
    let files = (
        "files",
        "secretstores.local.file",
        vec![("secretsFile", "/data/secrets.json".to_owned())],
    );
    let all = [&backend.store, &backend.pubsub, &backend.vault, &files];
    let components = all
        .iter()
        .map(|(name, type_name, md)| {
            let md: Vec<(&str, &str)> = md.iter().map(|(k, v)| (*k, v.as_str())).collect();
            tempest_tests::component(name, type_name, &md)
        })
        .collect::<Vec<_>>()
        .join("---\n");
    let types: serde_json::Map<String, Value> = all
        .iter()
        .map(|(name, type_name, _)| ((*name).to_owned(), Value::from(*type_name)))
        .collect();

    let app_port = tempest_tests::free_port();
    let mut env = vec![
        ("TEMPEST_COMPONENTS", components),
        (
            "TEMPEST_APPS",
            format!("orders=http://127.0.0.1:{app_port}"),
        ),
    ];
    env.extend(backend.env);
    // Any Dapr function's component serves the whole Dapr router; spin.toml routes each
    // function's paths to its own component.
    let served = serve(Some("state"), Some(data.path()), &env).await;
    let port = served.url.rsplit(':').next().expect("port").to_owned();
    let run = format!("spin-{}-{}", backend.store.0, std::process::id());
    let env = vec![
        ("DAPR_HTTP_PORT", port),
        ("APP_PORT", app_port.to_string()),
        ("RUN", run.clone()),
        ("STORE", backend.store.0.to_owned()),
        ("PUBSUB", backend.pubsub.0.to_owned()),
        ("VAULT", backend.vault.0.to_owned()),
        ("COMPONENTS", Value::Object(types).to_string()),
    ];
    if let Err(out) = tempest_tests::clients::dapr_sdk_tests("dapr-sdk-spin.test.js", env).await {
        panic!(
            "Dapr JS SDK tests through the component on {} failed:\n{out}",
            backend.store.1
        );
    }

    // What the SDK published reached the subscriber, as a CloudEvent.
    let messages = backend
        .broker
        .fetch("orders", "shop", 10, std::time::Duration::from_secs(5))
        .await
        .expect("fetch");
    assert_eq!(messages.len(), 1, "one message published");
    let event: Value = serde_json::from_slice(&messages[0].data).expect("a CloudEvent");
    assert_eq!(event["data"], serde_json::json!({"orderId": 7, "run": run}));
    assert_eq!(event["topic"], "orders");
    assert_eq!(event["pubsubname"], backend.pubsub.0);
}

/// Metadata as a component is given it.
fn metadata(fields: &[(&'static str, String)]) -> tempest_components::metadata::Metadata {
    tempest_components::metadata::Metadata::new("test", fields.iter().cloned())
}

/// Azure's components: state on Azurite's Table service, publishing to its Queue service,
/// secrets from Key Vault through a managed identity.
#[tokio::test]
async fn spin_component_serves_the_dapr_api_on_azure_to_the_dapr_js_sdk() {
    use tempest_building_blocks::pubsub::Broker;
    use tempest_tests::emulators::{AZURITE_ACCOUNT, azurite};
    let (_tables, _tdata, table_url) = azurite("table").await;
    let (_queues, _qdata, queue_url) = azurite("queue").await;
    let kv = tempest_tests::keyvault::KeyVault::start().await;
    kv.put("db-password", "s3cret", true);
    let account = |url: &str| {
        vec![
            ("accountName", AZURITE_ACCOUNT.0.to_owned()),
            ("accountKey", AZURITE_ACCOUNT.1.to_owned()),
            ("serviceURL", url.to_owned()),
        ]
    };
    let mut table = account(&table_url);
    table.push(("tableName", "spinstate".into()));
    let queue = account(&queue_url);
    // The subscriber's queue, made as `deliver` makes it, so a publish has somewhere to go.
    let broker =
        tempest_components::pubsub::storagequeues::StorageQueueBroker::connect(&metadata(&queue))
            .await
            .expect("connect to Azurite's queues");
    broker
        .ensure_group("orders", "shop")
        .await
        .expect("the subscriber's queue");
    dapr_sdk_through_the_component(Backend {
        store: ("tables", "state.azure.tablestorage", table),
        pubsub: ("queues", "pubsub.azure.storagequeues", queue),
        vault: (
            "vault",
            "secretstores.azure.keyvault",
            vec![("vaultName", kv.url.clone())],
        ),
        broker: Box::new(broker),
        env: vec![
            ("IDENTITY_ENDPOINT", format!("{}/msi/token", kv.url)),
            (
                "IDENTITY_HEADER",
                tempest_tests::keyvault::IDENTITY_HEADER.to_owned(),
            ),
        ],
    })
    .await;
    assert!(kv.calls("msi") >= 1, "the managed identity was asked");
}

/// AWS's components, through the AWS SDK over the host's outgoing HTTP: state in DynamoDB,
/// publishing to SNS (read back from the subscriber's SQS queue), secrets from Secrets
/// Manager, all on moto. The state store and the secret store take their keys from their
/// metadata, the pub/sub from the component's environment.
#[tokio::test]
async fn spin_component_serves_the_dapr_api_on_aws_to_the_dapr_js_sdk() {
    use tempest_building_blocks::pubsub::Broker;
    use tempest_tests::emulators::{boto3, moto};
    let (_moto, endpoint) = moto().await;
    boto3(
        &endpoint,
        r#"
import boto3
boto3.client("dynamodb").create_table(TableName="spinstate", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}])
boto3.client("secretsmanager").create_secret(Name="db-password", SecretString="s3cret")
"#,
    );
    let place = [
        ("region", "us-east-1".to_owned()),
        ("endpoint", endpoint.clone()),
    ];
    let keys = [
        ("accessKey", "test".to_owned()),
        ("secretKey", "test".to_owned()),
    ];
    let with_keys = |extra: &[(&'static str, String)]| {
        place
            .iter()
            .chain(&keys)
            .chain(extra)
            .cloned()
            .collect::<Vec<_>>()
    };
    let broker =
        tempest_components::pubsub::snssqs::SnsSqsBroker::connect(&metadata(&with_keys(&[])))
            .await
            .expect("connect to moto's SNS and SQS");
    broker
        .ensure_group("orders", "shop")
        .await
        .expect("the subscriber's queue");
    dapr_sdk_through_the_component(Backend {
        store: (
            "dynamo",
            "state.aws.dynamodb",
            with_keys(&[("table", "spinstate".into())]),
        ),
        pubsub: (
            "sns",
            "pubsub.aws.snssqs",
            vec![("endpoint", endpoint.clone())],
        ),
        vault: (
            "aws-secrets",
            "secretstores.aws.secretmanager",
            with_keys(&[]),
        ),
        broker: Box::new(broker),
        env: vec![
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ],
    })
    .await;
}

#[test]
fn spin_toml_routes_the_dapr_api_every_receiver_and_the_query_api() {
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/spin/spin.toml"),
    )
    .expect("spin.toml");
    let m: toml::Value = toml::from_str(&manifest).expect("spin.toml parses");
    assert_eq!(m["spin_manifest_version"].as_integer(), Some(2));
    let routes: Vec<(String, String)> = m["trigger"]["http"]
        .as_array()
        .expect("[[trigger.http]]")
        .iter()
        .map(|t| {
            (
                t["route"].as_str().expect("route").to_owned(),
                t["component"].as_str().expect("component").to_owned(),
            )
        })
        .collect();
    for (route, component) in [
        ("/v1.0/invoke/...", "invoke"),
        ("/v1.0/state/...", "state"),
        ("/v1.0-alpha1/state/...", "state"),
        ("/v1.0/publish/...", "publish"),
        ("/v1.0-alpha1/publish/...", "publish"),
        ("/v1.0/secrets/...", "secrets"),
        ("/v1.0/metadata/...", "metadata"),
        ("/v1.0/healthz/...", "metadata"),
        ("/v1/traces", "ingest"),
        ("/api/v2/spans", "ingest"),
        ("/api/traces", "ingest"),
        ("/api/...", "query"),
        ("/ready", "query"),
        ("/tempest/search-worker", "search-worker"),
    ] {
        assert!(
            routes.contains(&(route.to_owned(), component.to_owned())),
            "{route} -> {component} in {routes:?}"
        );
    }
    let components = m["component"].as_table().expect("[component.*]");
    // `query` reaches `search-worker` through Spin's service chaining, which must be allowed.
    let query = &components["query"];
    let worker_url = query["environment"]["TEMPEST_SEARCH_WORKER_URL"]
        .as_str()
        .expect("TEMPEST_SEARCH_WORKER_URL");
    assert_eq!(
        worker_url,
        "http://search-worker.spin.internal/tempest/search-worker"
    );
    assert!(
        query["allowed_outbound_hosts"]
            .as_array()
            .expect("allowed_outbound_hosts")
            .iter()
            .any(|h| h.as_str() == Some("http://search-worker.spin.internal")),
        "the chained call is allowed"
    );
    for (name, c) in components {
        assert_eq!(c["source"].as_str(), Some("tempest.wasm"), "{name}");
        assert_eq!(
            c["environment"]["TEMPEST_FUNCTION"].as_str(),
            Some(name.as_str()),
            "{name} is told its function"
        );
        assert!(
            tempest_catalog::CATALOG
                .iter()
                .any(|f| f.name == name && f.trigger != tempest_catalog::Trigger::Schedule),
            "{name} is a function of the catalogue"
        );
    }
}
