//! Cloud storage emulators the tests start on free loopback ports: moto (through `moto_atomic.py`,
//! installed in the Python venv by scripts/test) and Azurite's Blob service (npm). Each is
//! killed when its handle drops.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub use crate::process::Server;
use crate::process::spawn_listening;

/// How long an emulator may take to listen.
const START: Duration = Duration::from_secs(20);

/// The test clients folder (`tests/clients`).
pub fn clients() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// moto (S3, DynamoDB, SQS, SNS, Secrets Manager, …) on a free port; the handle and its
/// endpoint URL. It runs through `python/moto_atomic.py`, which handles one request at a time:
/// `moto_server`'s threads race on conditional writes (two `PutItem`s with the same ETag
/// condition can both win), where DynamoDB and S3 are atomic.
pub async fn moto() -> (Server, String) {
    let python = clients().join("python/.venv/bin/python");
    assert!(
        python.exists(),
        "the Python venv with moto is missing: scripts/test installs it"
    );
    let (server, port) = spawn_listening("moto", START, |port| {
        let mut cmd = Command::new(&python);
        cmd.arg(clients().join("python/moto_atomic.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    })
    .await;
    (server, format!("http://127.0.0.1:{port}"))
}

/// Runs a Python script with boto3 (installed with moto) against `endpoint`, for setting up
/// AWS resources the way an operator's tooling would; panics with its output if it fails.
/// Returns what the script printed.
pub fn boto3(endpoint: &str, script: &str) -> String {
    let python = clients().join("python/.venv/bin/python");
    let out = Command::new(python)
        .args(["-c", script])
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "boto3 script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// moto's S3 with a bucket `tempest-blocks`; the handle and the traces storage URL for it.
pub async fn moto_s3() -> (Server, String) {
    let (server, endpoint) = moto().await;
    let resp = reqwest::Client::new()
        .put(format!("{endpoint}/tempest-blocks"))
        .send()
        .await
        .expect("create bucket");
    assert!(
        resp.status().is_success(),
        "create bucket: {}",
        resp.status()
    );
    let storage = format!(
        "s3://tempest-blocks/traces?endpoint={endpoint}&allow_http=true&region=us-east-1&access_key_id=test&secret_access_key=test"
    );
    (server, storage)
}

/// Azurite's Blob service with a container `tempest-blocks` (created with the Azure SDK for
/// Python): the handles, the traces storage URL, and the environment `tempest` needs for it.
pub async fn azurite_blob() -> (
    Server,
    tempfile::TempDir,
    String,
    Vec<(&'static str, String)>,
) {
    let (server, data, url) = azurite("blob").await;
    let (account, key) = AZURITE_ACCOUNT;
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};BlobEndpoint={url};"
    );
    let out = Command::new(clients().join("python/.venv/bin/python"))
        .args(["-c", "import sys; from azure.storage.blob import BlobServiceClient; BlobServiceClient.from_connection_string(sys.argv[1]).create_container('tempest-blocks')", &conn])
        .output()
        .expect("create container with the Azure SDK");
    assert!(
        out.status.success(),
        "create container: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // object_store adds the emulator's account name to this base URL itself.
    (
        server,
        data,
        "az://tempest-blocks/traces?use_emulator=true".to_owned(),
        vec![(
            "AZURITE_BLOB_STORAGE_URL",
            url.trim_end_matches(&format!("/{account}")).to_owned(),
        )],
    )
}

/// The Azure storage account every Azurite service serves, and its well-known key.
pub const AZURITE_ACCOUNT: (&str, &str) = (
    "devstoreaccount1",
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
);

/// One Azurite service (`blob`, `table` or `queue`) on a free port: the handles and the service URL
/// for the emulator's account (`http://127.0.0.1:<port>/devstoreaccount1`).
pub async fn azurite(service: &str) -> (Server, tempfile::TempDir, String) {
    let bin = clients().join(format!("node_modules/.bin/azurite-{service}"));
    assert!(bin.exists(), "Azurite is missing: scripts/test installs it");
    let data = tempfile::tempdir().expect("tempdir");
    let (server, port) = spawn_listening("Azurite", START, |port| {
        let mut cmd = Command::new(&bin);
        cmd.args([
            &format!("--{service}Host"),
            "127.0.0.1",
            &format!("--{service}Port"),
            &port.to_string(),
            "--location",
        ])
        .arg(data.path())
        .args(["--silent", "--skipApiVersionCheck"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        cmd
    })
    .await;
    (
        server,
        data,
        format!("http://127.0.0.1:{port}/{}", AZURITE_ACCOUNT.0),
    )
}
