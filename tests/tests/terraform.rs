//! `terraform/environments/aws-dev` applied for real against moto: `terraform init` from the
//! machine's offline provider mirror, `apply` with moto's endpoints (the only change is the
//! override file `terraform/testing/moto_override.tf`, merged over the environment's provider),
//! then Tempest's functions run locally as Lambda runs them, each with exactly the environment
//! that apply gave its Lambda (read back from moto), against exactly the resources apply made:
//! state in the DynamoDB table, publish through the SNS topic into the app's SQS queue and
//! `deliver` from it, secrets from Secrets Manager, ingest/query/compact on the S3 bucket.
//! Then `terraform destroy`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tempest_tests::TestApp;
use tempest_tests::emulators::{boto3, moto};
use tempest_tests::lambda::{
    LambdaInstance, LambdaService, http_event, http_response, scheduled_event, sqs_event,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// The offline mirror's root: the folder above `registry.terraform.io` that holds the AWS
/// provider (found as ../shared/reference/serverless.md says).
fn provider_mirror() -> String {
    let out = Command::new("find")
        .args([
            "/",
            "-name",
            "terraform-provider-aws_*",
            "-path",
            "*/registry.terraform.io/*",
            "-not",
            "-path",
            "/proc/*",
            "-not",
            "-path",
            "*/.terraform/*",
        ])
        .output()
        .expect("run find");
    let found = String::from_utf8_lossy(&out.stdout);
    let path = found.lines().next().expect(
        "no terraform-provider-aws in a local mirror: this test needs the machine's mirror",
    );
    path.split("/registry.terraform.io/")
        .next()
        .expect("mirror root")
        .to_owned()
}

/// Runs terraform in `dir`; panics with its output on failure.
fn terraform(dir: &Path, cli_config: &Path, args: &[&str]) -> String {
    let out = Command::new("terraform")
        .args(args)
        .current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", cli_config)
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_INPUT", "0")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .expect("terraform is missing from PATH");
    assert!(
        out.status.success(),
        "terraform {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a boto3 script against moto and parses the JSON it prints.
fn boto3_json(endpoint: &str, script: &str) -> Value {
    serde_json::from_str(&boto3(endpoint, script)).expect("the script prints JSON")
}

/// A stand-in package: moto stores the zip but never runs it; the functions run from the
/// locally built bootstrap, with the environment their Lambdas were given.
fn stand_in_package(path: &Path) {
    use std::io::Write;
    let file = std::fs::File::create(path).expect("zip file");
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    zip.start_file("bootstrap", opts).expect("zip entry");
    zip.write_all(b"#!/bin/sh\necho stand-in\n")
        .expect("zip write");
    zip.finish().expect("zip finish");
}

/// Starts the bootstrap as the Lambda `name` runs: its variables from moto, plus what the
/// Lambda service itself provides (credentials, region) and moto's endpoint.
async fn lambda(
    lambdas: &Value,
    name: &str,
    endpoint: &str,
    data: &Path,
    extra: &[(&str, &str)],
) -> LambdaInstance {
    let vars = lambdas[name]
        .as_object()
        .unwrap_or_else(|| panic!("no Lambda {name}: {lambdas}"));
    let data = data.join(name);
    std::fs::create_dir_all(&data).expect("data dir");
    let data = data.to_string_lossy().into_owned();
    let mut envs: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("TEMPEST_DATA_DIR", data.as_str()),
    ]
    .iter()
    .chain(extra)
    {
        envs.push(((*k).to_owned(), (*v).to_owned()));
    }
    let refs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // No TEMPEST_FUNCTION of our own: the Lambda's variables must name it.
    LambdaInstance::start(None, &refs).await
}

async fn call(
    f: &mut LambdaInstance,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> (u16, Vec<u8>) {
    let out = f
        .invoke(
            &http_event(method, path, headers, body),
            Duration::from_secs(20),
        )
        .await;
    let (status, _, body) = http_response(&out);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_environment_applies_on_moto_and_its_functions_use_what_it_made() {
    let (_moto, endpoint) = moto().await;
    let app = TestApp::start().await;
    app.subscriptions(json!([{"pubsubname": "pubsub", "topic": "neworder", "route": "/orders"}]));

    // A copy of terraform/ with moto's endpoints in the override file and the offline mirror
    // in a CLI configuration; the environment's own files are used as they are.
    let work = tempfile::tempdir().expect("tempdir");
    let status = Command::new("cp")
        .arg("-r")
        .arg(repo().join("terraform"))
        .arg(work.path())
        .status()
        .expect("cp");
    assert!(status.success());
    let testing = repo().join("terraform/testing");
    let env_dir = work.path().join("terraform/environments/aws-dev");
    let _ = std::fs::remove_dir_all(env_dir.join(".terraform"));
    let cli = work.path().join("cli.tfrc");
    let template = std::fs::read_to_string(testing.join("cli.tfrc")).expect("cli.tfrc");
    std::fs::write(&cli, template.replace("TF_PLUGIN_DIR", &provider_mirror())).expect("write");
    let template =
        std::fs::read_to_string(testing.join("moto_override.tf")).expect("moto_override.tf");
    std::fs::write(
        env_dir.join("moto_override.tf"),
        template.replace("MOTO_ENDPOINT", &endpoint),
    )
    .expect("write");
    let package = work.path().join("bootstrap.zip");
    stand_in_package(&package);
    let vars = json!({
        "name_prefix": "tempest-ci",
        "region": "us-east-1",
        "package_path": package,
        "apps": {"shop": {"url": app.url, "topics": ["neworder"]}},
        "secrets": {"db-password": "s3cret"},
        "allowed_tenants": ["team-a"],
        "api_token": "ci-token",
    });
    std::fs::write(env_dir.join("terraform.tfvars.json"), vars.to_string()).expect("tfvars");

    terraform(&env_dir, &cli, &["init", "-input=false", "-no-color"]);
    terraform(
        &env_dir,
        &cli,
        &["apply", "-auto-approve", "-input=false", "-no-color"],
    );
    let outputs: Value =
        serde_json::from_str(&terraform(&env_dir, &cli, &["output", "-json"])).expect("outputs");
    let out = |name: &str| outputs[name]["value"].clone();
    let bucket = out("traces_bucket").as_str().expect("bucket").to_owned();
    assert_eq!(
        out("traces_storage").as_str(),
        Some(format!("s3://{bucket}/blocks").as_str())
    );
    let names = out("function_names");
    let components = out("dapr_components");
    for file in ["statestore.yaml", "pubsub.yaml", "secretstore.yaml"] {
        assert!(
            components[file]
                .as_str()
                .is_some_and(|y| y.contains("kind: Component") || y.contains("\"kind\"")),
            "{file}: {components}"
        );
    }

    // Every Lambda's variables, its role's policies, and the resources, as moto holds them.
    let script = format!(
        r#"
import boto3, json
lam, iam = boto3.client("lambda"), boto3.client("iam")
names = {names}
out = {{"env": {{}}, "policies": {{}}}}
for key, name in names.items():
    cfg = lam.get_function_configuration(FunctionName=name)
    out["env"][key] = cfg.get("Environment", {{}}).get("Variables", {{}})
    role = cfg["Role"].split("/")[-1]
    docs = [iam.get_role_policy(RoleName=role, PolicyName=p)["PolicyDocument"]
            for p in iam.list_role_policies(RoleName=role)["PolicyNames"]]
    docs += [iam.get_policy_version(PolicyArn=a["PolicyArn"],
                VersionId=iam.get_policy(PolicyArn=a["PolicyArn"])["Policy"]["DefaultVersionId"])["PolicyVersion"]["Document"]
             for a in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]]
    out["policies"][key] = docs
out["queues"] = boto3.client("sqs").list_queues().get("QueueUrls", [])
out["mappings"] = [(m["EventSourceArn"], m["FunctionArn"], m.get("FunctionResponseTypes", []))
                   for m in lam.list_event_source_mappings()["EventSourceMappings"]]
print(json.dumps(out, default=str))
"#
    );
    let aws = boto3_json(&endpoint, &script);
    let env = &aws["env"];
    let policy = |key: &str| aws["policies"][key].to_string();
    // Least privilege: the state function's role never names the trace bucket, and the
    // trace functions' roles never name the state table.
    assert!(!policy("state").contains(&bucket), "{}", policy("state"));
    assert!(policy("ingest").contains(&bucket), "{}", policy("ingest"));
    assert!(
        !policy("ingest").contains("dynamodb"),
        "{}",
        policy("ingest")
    );
    let queue = "tempest-ci-shop-neworder";
    assert!(
        aws["queues"].to_string().contains(queue),
        "{}",
        aws["queues"]
    );
    assert!(
        aws["mappings"]
            .to_string()
            .contains("ReportBatchItemFailures"),
        "{}",
        aws["mappings"]
    );

    // The bucket refuses plain-HTTP requests (aws:SecureTransport). moto evaluates a bucket
    // policy's Deny without its condition, so it would refuse every request to the bucket;
    // having checked the policy is there, the test removes it (as the only deviation).
    let policy_doc = boto3_json(
        &endpoint,
        &format!(
            r#"
import boto3, json
s3 = boto3.client("s3")
doc = json.loads(s3.get_bucket_policy(Bucket="{bucket}")["Policy"])
s3.delete_bucket_policy(Bucket="{bucket}")
print(json.dumps(doc))
"#
        ),
    );
    assert!(
        policy_doc.to_string().contains("aws:SecureTransport"),
        "{policy_doc}"
    );

    let data = work.path().join("data");
    let token = [("dapr-api-token", "ci-token")];

    // State: the DynamoDB table, behind the API token.
    let mut state = lambda(env, "state", &endpoint, &data, &[]).await;
    let body = json!([{"key": "order-1", "value": {"total": 42}}]).to_string();
    let (status, _) = call(
        &mut state,
        "POST",
        "/v1.0/state/statestore",
        &[("content-type", "application/json")],
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!(status, 401, "without the token");
    let (status, text) = call(
        &mut state,
        "POST",
        "/v1.0/state/statestore",
        &[token[0], ("content-type", "application/json")],
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&text));
    let (status, got) = call(
        &mut state,
        "GET",
        "/v1.0/state/statestore/order-1",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&got).expect("json"),
        json!({"total": 42})
    );

    // Secrets: Secrets Manager.
    let mut secrets = lambda(env, "secrets", &endpoint, &data, &[]).await;
    let (status, got) = call(
        &mut secrets,
        "GET",
        "/v1.0/secrets/secretstore/db-password",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
    assert_eq!(
        serde_json::from_slice::<Value>(&got).expect("json"),
        json!({"db-password": "s3cret"})
    );

    // Publish → the SNS topic → the app's SQS queue; deliver takes the queue's message (as the
    // event source mapping hands it over) to the app.
    let mut publish = lambda(env, "publish", &endpoint, &data, &[]).await;
    let (status, text) = call(
        &mut publish,
        "POST",
        "/v1.0/publish/pubsub/neworder",
        &[token[0], ("content-type", "application/json")],
        Some(br#"{"order": 7}"#),
    )
    .await;
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&text));
    let received = boto3_json(
        &endpoint,
        &format!(
            r#"
import boto3, json
sqs = boto3.client("sqs")
url = sqs.get_queue_url(QueueName="{queue}")["QueueUrl"]
msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=5).get("Messages", [])
print(json.dumps([m["Body"] for m in msgs]))
"#
        ),
    );
    let bodies = received.as_array().expect("bodies");
    assert_eq!(bodies.len(), 1, "{received}");
    let mut deliver = lambda(env, "deliver-shop", &endpoint, &data, &[]).await;
    let batch = sqs_event(&[("m-1", bodies[0].as_str().expect("body"), 1)]);
    let answer = deliver.invoke(&batch, Duration::from_secs(20)).await.json();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let got = app.received("/orders");
    assert_eq!(got.len(), 1);
    let event = got[0].json();
    assert_eq!(event["topic"], "neworder");
    assert_eq!(event["data"], json!({"order": 7}));

    // Traces: ingest into the bucket for an allowed tenant only, then query with the
    // search-worker Lambda behind Lambda's Invoke API, then compact.
    // A span from a minute ago: inside the retention the environment gives the compactor.
    let trace = "5b8efff798038103d269b633813fc60c";
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        - 60;
    let otlp = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
        "scopeSpans": [{"spans": [{"traceId": trace, "spanId": "eee19b7ec3c1b174", "name": "checkout",
            "startTimeUnixNano": format!("{start}000000000"),
            "endTimeUnixNano": format!("{}000000000", start + 1)}]}]
    }]})
    .to_string();
    let mut ingest = lambda(env, "ingest", &endpoint, &data, &[]).await;
    for (tenant, expected) in [("team-b", 403), ("team-a", 200)] {
        let (status, text) = call(
            &mut ingest,
            "POST",
            "/v1/traces",
            &[
                ("content-type", "application/json"),
                ("x-scope-orgid", tenant),
            ],
            Some(otlp.as_bytes()),
        )
        .await;
        assert_eq!(
            status,
            expected,
            "{tenant}: {}",
            String::from_utf8_lossy(&text)
        );
    }
    let worker = lambda(env, "search-worker", &endpoint, &data, &[]).await;
    let worker_name = names["search-worker"].as_str().expect("name").to_owned();
    let service = LambdaService::start(vec![(worker_name, worker)]).await;
    let mut query = lambda(
        env,
        "query",
        &endpoint,
        &data,
        &[("AWS_ENDPOINT_URL_LAMBDA", service.url.as_str())],
    )
    .await;
    let (status, got) = call(
        &mut query,
        "GET",
        &format!(
            "/api/search?q=%7B%20name%20%3D%20%22checkout%22%20%7D&start={}&end={}",
            start - 10,
            start + 10
        ),
        &[("x-scope-orgid", "team-a")],
        None,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
    let found: Value = serde_json::from_slice(&got).expect("json");
    assert_eq!(found["traces"][0]["traceID"], trace, "{found}");
    assert!(service.invocations() > 0, "jobs went to search-worker");
    let mut compact = lambda(env, "compact", &endpoint, &data, &[]).await;
    let report = compact
        .invoke(&scheduled_event(), Duration::from_secs(60))
        .await
        .json();
    assert!(report.is_array() || report.is_object(), "{report}");
    let objects = boto3_json(
        &endpoint,
        &format!(
            r#"
import boto3, json
r = boto3.client("s3").list_objects_v2(Bucket="{bucket}", Prefix="blocks/team-a/")
print(json.dumps([o["Key"] for o in r.get("Contents", [])]))
"#
        ),
    );
    // The block is in the bucket, committed and still live after the compaction run.
    assert!(
        objects.to_string().contains("/meta.json"),
        "the block is in the bucket: {objects}"
    );
    assert!(
        !objects.to_string().contains("meta.compacted.json"),
        "{objects}"
    );

    terraform(
        &env_dir,
        &cli,
        &["destroy", "-auto-approve", "-input=false", "-no-color"],
    );
    let left = boto3_json(
        &endpoint,
        r#"
import boto3, json
print(json.dumps({"buckets": [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]],
                  "functions": [f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]]}))
"#,
    );
    assert_eq!(
        left,
        json!({"buckets": [], "functions": []}),
        "destroy left {left}"
    );
}
