//! The Azure components against Azurite's Table and Queue services and, since Key Vault has no
//! emulator, against the Key Vault stand-in of `tests/src/keyvault.rs` (the documented REST
//! calls only): the state conformance suite on `state.azure.tablestorage`, the pub/sub suite
//! on `pubsub.azure.storagequeues` (and its poison queue), the secret store suite on
//! `secretstores.azure.keyvault` (service principal and managed identity), and all three
//! through the Dapr HTTP API of the real binary.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tempest_building_blocks::conformance::state::{StateCase, run};
use tempest_building_blocks::pubsub::{Broker, OutgoingMessage};
use tempest_building_blocks::secrets::{SecretError, SecretStore};
use tempest_building_blocks::state::{Concurrency, SetRequest, StateError, StateStore};
use tempest_components::metadata::Metadata;
use tempest_components::pubsub::storagequeues::{StorageQueueBroker, queue_name};
use tempest_components::secrets::keyvault::KeyVaultStore;
use tempest_components::state::tablestorage::TableStateStore;
use tempest_tests::emulators::{AZURITE_ACCOUNT, azurite};
use tempest_tests::keyvault::{self, KeyVault};
use tempest_tests::{Tempest, TestApp, component, write_resources};

fn metadata(fields: &[(&str, &str)]) -> Metadata {
    Metadata {
        component: "azure".into(),
        values: fields
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// The emulator account's metadata for the service at `url`.
fn account(url: &str, extra: &[(&'static str, &'static str)]) -> Vec<(String, String)> {
    [
        ("accountName", AZURITE_ACCOUNT.0),
        ("accountKey", AZURITE_ACCOUNT.1),
        ("serviceURL", url),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

fn as_refs(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn md(fields: &[(String, String)]) -> Metadata {
    metadata(&as_refs(fields))
}

#[tokio::test]
async fn table_storage_passes_the_state_conformance_suite() {
    let (_azurite, _data, url) = azurite("table").await;
    let store = TableStateStore::connect(&md(&account(&url, &[("tableName", "tempeststate")])))
        .await
        .expect("connect");
    run(&StateCase {
        store: Arc::new(store),
        // Well formed, as the service's ETags are, but never issued.
        bad_etag: "W/\"datetime'2000-01-01T00%3A00%3A00.0000000Z'\"".into(),
        prefix: "conformance||".into(),
        exact_bytes: true,
    })
    .await;
}

#[tokio::test]
async fn table_storage_edges() {
    let (_azurite, _data, url) = azurite("table").await;
    let store = TableStateStore::connect(&md(&account(&url, &[("tableName", "edges")])))
        .await
        .expect("connect");
    let set = |key: &str, value: &'static [u8]| SetRequest {
        key: key.into(),
        value: value.into(),
        etag: None,
        concurrency: Concurrency::LastWrite,
        ttl_seconds: None,
    };
    // Bytes that are not UTF-8 round-trip as Edm.Binary; quotes and spaces in keys are fine.
    store
        .set(set("app||it's a key", b"\xff\x00\xfe"))
        .await
        .expect("set");
    let got = store
        .get("app||it's a key")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(&got.value[..], b"\xff\x00\xfe");
    assert!(got.etag.starts_with("W/\"datetime'"), "{}", got.etag);
    // A key without Dapr's `||` is a partition key with an empty row key.
    store.set(set("plain", b"\"v\"")).await.expect("set");
    assert_eq!(
        &store
            .get("plain")
            .await
            .expect("get")
            .expect("present")
            .value[..],
        b"\"v\""
    );
    // Characters Azure Tables refuse in keys are the caller's error, and write nothing.
    assert!(matches!(
        store.set(set("app||a/b", b"1")).await,
        Err(StateError::InvalidRequest(_))
    ));
    // No TTL in this store (as in Dapr's): refused, not ignored.
    let mut ttl = set("app||ttl", b"1");
    ttl.ttl_seconds = Some(60);
    assert!(matches!(
        store.set(ttl).await,
        Err(StateError::NotSupported(_))
    ));
    assert!(store.get("app||ttl").await.expect("get").is_none());
    // A wrong account key: the service's 403, named.
    let wrong = account(&url, &[("tableName", "edges")])
        .into_iter()
        .map(|(k, v)| {
            let v = if k == "accountKey" {
                "d3Jvbmcga2V5".to_owned()
            } else {
                v
            };
            (k, v)
        })
        .collect::<Vec<_>>();
    match TableStateStore::connect(&md(&wrong)).await {
        Err(e) => assert!(e.to_string().contains("403"), "{e}"),
        Ok(_) => panic!("a wrong key must not connect"),
    }
    // Missing and invalid metadata.
    assert!(
        TableStateStore::connect(&md(&account(&url, &[])))
            .await
            .is_err()
    );
    assert!(
        TableStateStore::connect(&md(&account(&url, &[("tableName", "no_underscores")])))
            .await
            .is_err()
    );
}

fn queue_md(url: &str, extra: &[(&'static str, &'static str)]) -> Metadata {
    md(&account(url, extra))
}

#[tokio::test]
async fn storage_queues_pass_the_pubsub_conformance_suite() {
    use tempest_building_blocks::conformance::pubsub::{PubSubCase, run};
    let (_azurite, _data, url) = azurite("queue").await;
    let broker = StorageQueueBroker::connect(&queue_md(
        &url,
        &[("visibilityTimeout", "1"), ("entityPrefix", "conf-")],
    ))
    .await
    .expect("connect");
    run(&PubSubCase {
        broker: Arc::new(broker),
        prefix: "conf-".into(),
        redeliver_after: Duration::from_secs(1),
        ordered: false,
    })
    .await;
}

#[tokio::test]
async fn storage_queues_poison_odd_names_and_limits() {
    let (_azurite, _data, url) = azurite("queue").await;
    let broker = StorageQueueBroker::connect(&queue_md(
        &url,
        &[("visibilityTimeout", "1"), ("maxDequeueCount", "2")],
    ))
    .await
    .expect("connect");
    // Topic and app names queues would refuse as they are; binary data travels intact.
    let (topic, app) = ("Orders.EU/v1", "Shop_Front");
    broker.ensure_group(topic, app).await.expect("group");
    let msg = |data: &'static [u8]| OutgoingMessage {
        data: bytes::Bytes::from_static(data),
        metadata: BTreeMap::new(),
    };
    broker
        .publish(topic, msg(b"\xff\x00 not text"))
        .await
        .expect("publish");
    // Nobody subscribes to this one: dropped, as SNS drops it.
    broker
        .publish("nobody-listens", msg(b"x"))
        .await
        .expect("publish");
    for round in 1..=2 {
        let got = broker
            .fetch(topic, app, 10, Duration::from_secs(3))
            .await
            .expect("fetch");
        assert_eq!(got.len(), 1, "receive {round}");
        assert_eq!(&got[0].data[..], b"\xff\x00 not text");
        assert_eq!(got[0].deliveries, round);
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    // Past maxDequeueCount it moves to the poison queue instead of being handed out.
    let third = broker
        .fetch(topic, app, 10, Duration::from_secs(2))
        .await
        .expect("fetch");
    assert!(third.is_empty(), "{third:?}");
    let poison = format!("{}-poison", queue_name("", topic, app));
    let listing = peek_with_python_sdk(&url, &poison).await;
    assert!(listing.contains("<MessageText>"), "{listing}");
    // Over the service's 64 KiB message limit: a clear error, nothing sent.
    let big = vec![b'a'; 60 * 1024];
    let err = broker
        .publish(
            topic,
            OutgoingMessage {
                data: big.into(),
                metadata: BTreeMap::new(),
            },
        )
        .await
        .expect_err("too big");
    assert!(err.to_string().contains("48 KiB"), "{err}");
    // An ack for a receipt that is not one.
    assert!(broker.ack(topic, app, "no-receipt").await.is_err());
    // Bad prefixes are refused at connect.
    assert!(
        StorageQueueBroker::connect(&queue_md(&url, &[("entityPrefix", "Bad--Prefix")]))
            .await
            .is_err()
    );
}

/// Peeks `queue` with the Azure SDK for Python (a real client): one `<MessageText>` line per
/// message there.
async fn peek_with_python_sdk(url: &str, queue: &str) -> String {
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};QueueEndpoint={url};",
        AZURITE_ACCOUNT.0, AZURITE_ACCOUNT.1
    );
    let script = "import sys\nfrom azure.storage.queue import QueueClient\n\
        q = QueueClient.from_connection_string(sys.argv[1], sys.argv[2])\n\
        for m in q.peek_messages(max_messages=32): print('<MessageText>' + str(m.content))\n";
    let out = std::process::Command::new(
        tempest_tests::emulators::clients().join("python/.venv/bin/python"),
    )
    .args(["-c", script, &conn, queue])
    .output()
    .expect("run python");
    assert!(
        out.status.success(),
        "peek: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn vault_md(kv: &KeyVault, secret: &str) -> Metadata {
    metadata(&[
        ("vaultName", kv.url.as_str()),
        ("azureTenantId", keyvault::TENANT),
        ("azureClientId", keyvault::CLIENT_ID),
        ("azureClientSecret", secret),
        ("azureAuthorityHost", kv.url.as_str()),
    ])
}

#[tokio::test]
async fn key_vault_passes_the_secret_store_suite() {
    let kv = KeyVault::start().await;
    kv.put("conftestsecret", "abcd", true);
    let old = kv.put("secondsecret", "efgh", true);
    kv.put("thirdsecret", "ijkl", true);
    kv.put("disabled", "hidden", false);
    let store = KeyVaultStore::connect(&vault_md(&kv, keyvault::CLIENT_SECRET))
        .await
        .expect("connect");
    tempest_building_blocks::conformance::secrets::run(&store).await;
    // A newer version is what a plain read returns; `version_id` picks an older one.
    kv.put("secondsecret", "newer", true);
    let none = BTreeMap::new();
    assert_eq!(
        store.get("secondsecret", &none).await.expect("get")["secondsecret"],
        "newer"
    );
    let version = BTreeMap::from([("version_id".to_owned(), old)]);
    assert_eq!(
        store.get("secondsecret", &version).await.expect("get")["secondsecret"],
        "efgh"
    );
    // Bulk follows nextLink across pages (two secrets a page) and leaves disabled ones out.
    let all = store.bulk(&none).await.expect("bulk");
    assert_eq!(
        all.keys().map(String::as_str).collect::<Vec<_>>(),
        ["conftestsecret", "secondsecret", "thirdsecret"]
    );
    assert!(kv.calls("list") >= 2, "pages: {}", kv.calls("list"));
    // One token serves every call until it nears expiry.
    assert_eq!(kv.calls("token"), 1);
    for absent in ["absent", "not_a_vault_name"] {
        assert!(matches!(
            store.get(absent, &none).await,
            Err(SecretError::NotFound(_))
        ));
    }
    // A wrong client secret: Entra ID's refusal, named.
    let wrong = KeyVaultStore::connect(&vault_md(&kv, "wrong"))
        .await
        .expect("connect");
    match wrong.get("conftestsecret", &none).await {
        Err(SecretError::Backend(m)) => assert!(m.contains("invalid_client"), "{m}"),
        other => panic!("expected a token error, got {other:?}"),
    }
    // No credentials at all is a configuration error.
    assert!(
        KeyVaultStore::connect(&metadata(&[("vaultName", kv.url.as_str())]))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_dapr_api_on_azure_components() {
    let (_tables, _tdata, table_url) = azurite("table").await;
    let (_queues, _qdata, queue_url) = azurite("queue").await;
    let kv = KeyVault::start().await;
    kv.put("db-password", "s3cret", true);
    let app = TestApp::start().await;
    app.subscriptions(json!([{"pubsubname": "queues", "topic": "orders", "route": "/orders"}]));
    let dir = tempfile::tempdir().expect("tempdir");
    let table = account(&table_url, &[("tableName", "daprstate")]);
    let queue = account(&queue_url, &[("visibilityTimeout", "2")]);
    let res = write_resources(
        dir.path(),
        &[
            component("tables", "state.azure.tablestorage", &as_refs(&table)),
            component("queues", "pubsub.azure.storagequeues", &as_refs(&queue)),
            // No client secret: the managed identity endpoint the environment names.
            component(
                "vault",
                "secretstores.azure.keyvault",
                &[("vaultName", kv.url.as_str())],
            ),
        ],
    );
    let apps = format!("shop={}", app.url);
    let identity = format!("{}/msi/token", kv.url);
    let t = Tempest::start(
        dir.path(),
        &["--resources-path", &res, "--app", &apps],
        &[
            ("IDENTITY_ENDPOINT", identity.as_str()),
            ("IDENTITY_HEADER", keyvault::IDENTITY_HEADER),
        ],
    )
    .await;
    t.wait_for_subscriptions(1).await;
    t.etag_round_trip(
        "tables",
        json!({"key": "order-1", "value": {"total": 42}}),
        "W/\"datetime'2000-01-01T00%3A00%3A00.0000000Z'\"",
    )
    .await;
    let http = reqwest::Client::new();
    let published = http
        .post(t.at("/v1.0/publish/queues/orders"))
        .json(&json!({"order": 7}))
        .send()
        .await
        .expect("publish");
    assert_eq!(published.status(), 204);
    tempest_tests::eventually(30, "a delivery through Storage Queues", || {
        let app = app.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            (!app.received("/orders").is_empty()).then_some(())
        }
    })
    .await;
    let event = app.received("/orders")[0].json();
    assert_eq!(event["topic"], "orders");
    assert_eq!(event["pubsubname"], "queues");
    assert_eq!(event["data"], json!({"order": 7}));
    let secret: serde_json::Value = http
        .get(t.at("/v1.0/secrets/vault/db-password"))
        .send()
        .await
        .expect("secret")
        .json()
        .await
        .expect("json");
    assert_eq!(secret, json!({"db-password": "s3cret"}));
    assert!(kv.calls("msi") >= 1, "the managed identity was asked");
    assert_eq!(kv.calls("token"), 0);
}
