//! The AWS components against moto (`moto_server`), with their resources created by boto3 as
//! an operator's tooling would: the state conformance suite on `state.aws.dynamodb` (with and
//! without TTL), the pub/sub suite on `pubsub.aws.snssqs` (and its dead-letter queue), the
//! secret store suite on `secretstores.aws.secretmanager`, and all three through the Dapr HTTP
//! API of the real binary.

use std::sync::Arc;

use serde_json::json;
use tempest_building_blocks::conformance::state::{StateCase, run};
use tempest_building_blocks::secrets::SecretStore;
use tempest_building_blocks::state::{Concurrency, SetRequest, StateError, StateStore};
use tempest_components::metadata::Metadata;
use tempest_components::pubsub::snssqs::SnsSqsBroker;
use tempest_components::secrets::aws::SecretsManagerStore;
use tempest_components::state::dynamodb::DynamoStateStore;
use tempest_tests::emulators::{boto3, moto};
use tempest_tests::{Tempest, component, write_resources};

/// A DynamoDB table keyed by `key` (Dapr's default), with TTL on `expiresAt`.
fn create_table(endpoint: &str, table: &str) {
    boto3(
        endpoint,
        &format!(
            r#"
import boto3
db = boto3.client("dynamodb")
db.create_table(TableName="{table}", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{{"AttributeName": "key", "AttributeType": "S"}}],
    KeySchema=[{{"AttributeName": "key", "KeyType": "HASH"}}])
db.update_time_to_live(TableName="{table}",
    TimeToLiveSpecification={{"Enabled": True, "AttributeName": "expiresAt"}})
"#
        ),
    );
}

fn metadata(endpoint: &str, fields: &[(&str, &str)]) -> Metadata {
    let mut values: std::collections::BTreeMap<String, String> = [
        ("region", "us-east-1"),
        ("endpoint", endpoint),
        ("accessKey", "test"),
        ("secretKey", "test"),
    ]
    .iter()
    .chain(fields)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    values.retain(|_, v| !v.is_empty());
    Metadata {
        component: "aws".into(),
        values,
    }
}

#[tokio::test]
async fn dynamodb_passes_the_state_conformance_suite() {
    let (_moto, endpoint) = moto().await;
    create_table(&endpoint, "tempest-state");
    for ttl in ["expiresAt", ""] {
        let md = metadata(
            &endpoint,
            &[("table", "tempest-state"), ("ttlAttributeName", ttl)],
        );
        let store = DynamoStateStore::connect(&md).await.expect("connect");
        run(&StateCase {
            store: Arc::new(store),
            bad_etag: uuid_like(),
            prefix: format!("conf-{ttl}-"),
            exact_bytes: true,
        })
        .await;
    }
}

fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".into()
}

#[tokio::test]
async fn dynamodb_edges() {
    let (_moto, endpoint) = moto().await;
    create_table(&endpoint, "edges");
    let store = DynamoStateStore::connect(&metadata(&endpoint, &[("table", "edges")]))
        .await
        .expect("connect");
    let set = |key: &str, value: &'static [u8]| SetRequest {
        key: key.into(),
        value: value.into(),
        etag: None,
        concurrency: Concurrency::LastWrite,
        ttl_seconds: None,
    };
    // Bytes that are not UTF-8 round-trip (stored as a binary attribute).
    store.set(set("bin", b"\xff\x00\xfe")).await.expect("set");
    let got = store.get("bin").await.expect("get").expect("present");
    assert_eq!(&got.value[..], b"\xff\x00\xfe");
    // A TTL without ttlAttributeName is the caller's error, and writes nothing.
    let mut ttl = set("ttl", b"1");
    ttl.ttl_seconds = Some(60);
    assert!(matches!(
        store.set(ttl).await,
        Err(StateError::InvalidRequest(_))
    ));
    assert!(store.get("ttl").await.expect("get").is_none());
    // A missing table is a clear backend error.
    let missing = DynamoStateStore::connect(&metadata(&endpoint, &[("table", "nope")]))
        .await
        .expect("connect");
    match missing.get("k").await {
        Err(StateError::Backend(m)) => assert!(m.contains("ResourceNotFound"), "{m}"),
        other => panic!("expected a backend error, got {other:?}"),
    }
    // Keys without keys: the metadata needs both halves of a key pair.
    let half = metadata(&endpoint, &[("table", "edges"), ("secretKey", "")]);
    assert!(DynamoStateStore::connect(&half).await.is_err());
}

#[tokio::test]
async fn secrets_manager_passes_the_secret_store_suite() {
    let (_moto, endpoint) = moto().await;
    boto3(
        &endpoint,
        r#"
import boto3
sm = boto3.client("secretsmanager")
sm.create_secret(Name="conftestsecret", SecretString="abcd")
sm.create_secret(Name="secondsecret", SecretString="efgh")
v = sm.put_secret_value(SecretId="secondsecret", SecretString="newer")
"#,
    );
    let store = SecretsManagerStore::connect(&metadata(&endpoint, &[]))
        .await
        .expect("connect");
    // The suite expects `secondsecret=efgh`: read the older version by stage.
    let previous =
        std::collections::BTreeMap::from([("version_stage".to_owned(), "AWSPREVIOUS".to_owned())]);
    assert_eq!(
        store.get("secondsecret", &previous).await.expect("get")["secondsecret"],
        "efgh"
    );
    assert_eq!(
        store
            .get("secondsecret", &Default::default())
            .await
            .expect("get")["secondsecret"],
        "newer"
    );
    boto3(
        &endpoint,
        r#"
import boto3
boto3.client("secretsmanager").put_secret_value(SecretId="secondsecret", SecretString="efgh")
"#,
    );
    tempest_building_blocks::conformance::secrets::run(&store).await;
    assert!(matches!(
        store.get("absent", &Default::default()).await,
        Err(tempest_building_blocks::secrets::SecretError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_dapr_api_on_dynamodb_and_secrets_manager() {
    let (_moto, endpoint) = moto().await;
    create_table(&endpoint, "tempest-state");
    boto3(
        &endpoint,
        r#"
import boto3
boto3.client("secretsmanager").create_secret(Name="db-password", SecretString="s3cret")
"#,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let aws = [
        ("region", "us-east-1"),
        ("endpoint", endpoint.as_str()),
        ("accessKey", "test"),
        ("secretKey", "test"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        aws.iter().chain(extra).copied().collect::<Vec<_>>()
    };
    let res = write_resources(
        dir.path(),
        &[
            component(
                "dynamo",
                "state.aws.dynamodb",
                &with(&[
                    ("table", "tempest-state"),
                    ("ttlAttributeName", "expiresAt"),
                ]),
            ),
            component("aws-secrets", "secretstores.aws.secretmanager", &with(&[])),
        ],
    );
    let t = Tempest::start(dir.path(), &["--resources-path", &res], &[]).await;
    let headers = t
        .etag_round_trip(
            "dynamo",
            json!({"key": "order-1", "value": {"total": 42}, "metadata": {"ttlInSeconds": "3600"}}),
            "not-the-etag",
        )
        .await;
    assert!(headers.contains_key("metadata.ttlexpiretime"));
    let http = reqwest::Client::new();
    let meta: serde_json::Value = http
        .get(t.at("/v1.0/metadata"))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    let dynamo = meta["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["name"] == "dynamo")
        .expect("the component")
        .clone();
    assert_eq!(dynamo["type"], "state.aws.dynamodb");
    assert!(
        dynamo["capabilities"]
            .as_array()
            .is_some_and(|c| c.contains(&json!("TTL")) && c.contains(&json!("ETAG"))),
        "{dynamo}"
    );
    let secret: serde_json::Value = http
        .get(t.at("/v1.0/secrets/aws-secrets/db-password"))
        .send()
        .await
        .expect("secret")
        .json()
        .await
        .expect("json");
    assert_eq!(secret, json!({"db-password": "s3cret"}));
    let missing = http
        .get(t.at("/v1.0/secrets/aws-secrets/absent"))
        .send()
        .await
        .expect("secret");
    assert_eq!(
        missing.status(),
        500,
        "Dapr answers ERR_SECRET_GET with 500"
    );
}

#[tokio::test]
async fn sns_sqs_passes_the_pubsub_conformance_suite() {
    use tempest_building_blocks::conformance::pubsub::{PubSubCase, run};
    let (_moto, endpoint) = moto().await;
    let md = metadata(&endpoint, &[("messageVisibilityTimeout", "1")]);
    let broker = SnsSqsBroker::connect(&md).await.expect("connect");
    run(&PubSubCase {
        broker: Arc::new(broker),
        prefix: "conf-".into(),
        redeliver_after: std::time::Duration::from_secs(1),
        ordered: false,
    })
    .await;
}

#[tokio::test]
async fn sns_sqs_dead_letters_and_odd_payloads() {
    use tempest_building_blocks::pubsub::{Broker, OutgoingMessage};
    let (_moto, endpoint) = moto().await;
    let md = metadata(
        &endpoint,
        &[
            ("messageVisibilityTimeout", "1"),
            ("sqsDeadLettersQueueName", "tempest-dead"),
            ("messageReceiveLimit", "2"),
        ],
    );
    let broker = SnsSqsBroker::connect(&md).await.expect("connect");
    // A topic name SNS would refuse as it is, binary data and metadata travel intact.
    let topic = "orders.eu/v1";
    broker.ensure_group(topic, "shop").await.expect("group");
    let msg = OutgoingMessage {
        data: bytes::Bytes::from_static(b"\xff\x00 not text"),
        metadata: [
            ("traceparent".to_owned(), "00-abc-def-01".to_owned()),
            ("bad name!".to_owned(), "x".to_owned()),
        ]
        .into_iter()
        .collect(),
    };
    broker.publish(topic, msg).await.expect("publish");
    let mut got = Vec::new();
    for _ in 0..50 {
        got = broker
            .fetch(topic, "shop", 10, std::time::Duration::from_secs(1))
            .await
            .expect("fetch");
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].data[..], b"\xff\x00 not text");
    assert_eq!(
        got[0].metadata.get("traceparent").map(String::as_str),
        Some("00-abc-def-01")
    );
    assert!(!got[0].metadata.contains_key("bad name!"));
    // Never acknowledged: after its second receive SQS moves it to the dead-letter queue.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let again = broker
        .fetch(topic, "shop", 10, std::time::Duration::from_secs(1))
        .await
        .expect("fetch");
    assert_eq!(again.len(), 1, "the second receive");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let third = broker
        .fetch(topic, "shop", 10, std::time::Duration::from_secs(1))
        .await
        .expect("fetch");
    assert!(
        third.is_empty(),
        "past messageReceiveLimit it is not handed out again"
    );
    boto3(
        &endpoint,
        r#"
import boto3
sqs = boto3.client("sqs")
url = sqs.get_queue_url(QueueName="tempest-dead")["QueueUrl"]
msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
assert len(msgs) == 1, msgs
"#,
    );
}

#[tokio::test]
async fn publish_and_subscribe_through_sns_and_sqs() {
    use tempest_tests::TestApp;
    let (_moto, endpoint) = moto().await;
    let app = TestApp::start().await;
    app.subscriptions(json!([{"pubsubname": "awspubsub", "topic": "orders", "route": "/orders"}]));
    let dir = tempfile::tempdir().expect("tempdir");
    let res = write_resources(
        dir.path(),
        &[component(
            "awspubsub",
            "pubsub.aws.snssqs",
            &[
                ("region", "us-east-1"),
                ("endpoint", endpoint.as_str()),
                ("accessKey", "test"),
                ("secretKey", "test"),
                ("messageVisibilityTimeout", "2"),
            ],
        )],
    );
    let apps = format!("shop={}", app.url);
    let t = Tempest::start(dir.path(), &["--resources-path", &res, "--app", &apps], &[]).await;
    t.wait_for_subscriptions(1).await;
    let http = reqwest::Client::new();
    // SNS drops what is published before the app's queue is subscribed (as with daprd): publish
    // until the subscription is in place.
    let mut sent = 0;
    tempest_tests::eventually(30, "a delivery through SNS and SQS", || {
        sent += 1;
        let (http, url, n) = (http.clone(), t.at("/v1.0/publish/awspubsub/orders"), sent);
        let app = app.clone();
        async move {
            let resp = http
                .post(url)
                .json(&json!({"order": n}))
                .send()
                .await
                .ok()?;
            assert_eq!(resp.status(), 204);
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            (!app.received("/orders").is_empty()).then_some(())
        }
    })
    .await;
    let got = app.received("/orders");
    let event = got[0].json();
    assert_eq!(event["topic"], "orders");
    assert_eq!(event["pubsubname"], "awspubsub");
    assert!(event["data"]["order"].is_number(), "{event}");
    assert!(got[0].header("traceparent").is_some());
}
