//! A Lambda Runtime API server, written from AWS's published API
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>), that runs the real
//! `bootstrap` binary the way Lambda does: the runtime long-polls
//! `GET /2018-06-01/runtime/invocation/next`, then posts `…/{id}/response` or `…/{id}/error`;
//! failures before the first poll go to `POST /2018-06-01/runtime/init/error`.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{Notify, oneshot};

/// What an invocation ended with.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `…/response`: the function's result.
    Response(Vec<u8>),
    /// `…/error`: the `Lambda-Runtime-Function-Error-Type` header and the JSON error body.
    Error {
        /// The header's value (may be empty).
        error_type: String,
        /// `{"errorType": …, "errorMessage": …}`.
        body: serde_json::Value,
    },
}

impl Outcome {
    /// The response as JSON; panics (failing the test) on an error outcome.
    pub fn json(&self) -> serde_json::Value {
        match self {
            Outcome::Response(b) => serde_json::from_slice(b).expect("response is JSON"),
            Outcome::Error { body, .. } => panic!("invocation failed: {body}"),
        }
    }
}

struct Pending {
    id: String,
    payload: Vec<u8>,
    deadline_ms: u64,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Pending>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    queued: Notify,
    init_errors: Mutex<Vec<serde_json::Value>>,
    /// When the runtime first asked for an invocation.
    first_poll: Mutex<Option<Instant>>,
}

/// One Lambda "instance": the Runtime API and the bootstrap process it runs; killed on drop.
pub struct LambdaInstance {
    shared: Arc<Shared>,
    child: Child,
    /// When the process was started.
    pub started: Instant,
    server: tokio::task::JoinHandle<()>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Path of the `bootstrap` binary next to `tempest`.
pub fn bootstrap() -> PathBuf {
    crate::tempest::sibling_binary("bootstrap")
}

impl LambdaInstance {
    /// Starts the Runtime API on a free port and `bootstrap` with Lambda's environment, this
    /// function's name in `TEMPEST_FUNCTION`, and `envs`.
    pub async fn start(function: Option<&str>, envs: &[(&str, &str)]) -> LambdaInstance {
        Self::start_binary(bootstrap(), function, envs).await
    }

    /// [`LambdaInstance::start`] with another binary.
    pub async fn start_binary(
        binary: PathBuf,
        function: Option<&str>,
        envs: &[(&str, &str)],
    ) -> LambdaInstance {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Runtime API");
        let addr = listener.local_addr().expect("local address");
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("bootstrap.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(&binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env(
                "AWS_LAMBDA_FUNCTION_NAME",
                format!("tempest-{}", function.unwrap_or("none")),
            )
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/tempest")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/25/[$LATEST]test")
            .env("AWS_REGION", "us-east-1")
            .env("LAMBDA_TASK_ROOT", "/var/task")
            .env("TEMPEST_SELF_TELEMETRY", "0");
        if let Some(f) = function {
            cmd.env("TEMPEST_FUNCTION", f);
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let child = cmd
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        LambdaInstance {
            shared,
            child,
            started,
            server,
            log,
            _dir: dir,
        }
    }

    /// Invokes the function with `payload` and a deadline `timeout` from now; waits for the
    /// outcome (panics if none comes within the timeout plus 10 s, or the process dies).
    pub async fn invoke(&mut self, payload: &serde_json::Value, timeout: Duration) -> Outcome {
        let id = uuid_like();
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64
            + timeout.as_millis() as u64;
        let (tx, mut rx) = oneshot::channel();
        self.shared
            .waiting
            .lock()
            .expect("lock")
            .insert(id.clone(), tx);
        self.shared.queue.lock().expect("lock").push_back(Pending {
            id,
            payload: serde_json::to_vec(payload).expect("JSON"),
            deadline_ms,
        });
        self.shared.queued.notify_one();
        let give_up = Instant::now() + timeout + Duration::from_secs(10);
        loop {
            match tokio::time::timeout(Duration::from_millis(100), &mut rx).await {
                Ok(Ok(outcome)) => return outcome,
                Ok(Err(_)) => panic!("invocation dropped"),
                Err(_) => {}
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("bootstrap exited ({status}); log:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < give_up,
                "no outcome within the deadline; log:\n{}",
                self.log_text()
            );
        }
    }

    /// How long after start the runtime first asked for work, once it has.
    pub fn ready_after(&self) -> Option<Duration> {
        self.shared
            .first_poll
            .lock()
            .expect("lock")
            .map(|t| t.duration_since(self.started))
    }

    /// Waits for the process to exit (up to `secs`); its exit status, the init errors it
    /// reported and its log.
    pub async fn exit(&mut self, secs: u64) -> (std::process::ExitStatus, Vec<serde_json::Value>) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let errors = self.shared.init_errors.lock().expect("lock").clone();
                return (status, errors);
            }
            assert!(
                Instant::now() < deadline,
                "bootstrap still running; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process's output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Peak resident memory of the process so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

impl Drop for LambdaInstance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.server.abort();
    }
}

async fn next(State(s): State<Arc<Shared>>) -> Response {
    s.first_poll
        .lock()
        .expect("lock")
        .get_or_insert_with(Instant::now);
    loop {
        let notified = s.queued.notified();
        if let Some(p) = s.queue.lock().expect("lock").pop_front() {
            return (
                [
                    ("Lambda-Runtime-Aws-Request-Id", p.id.clone()),
                    ("Lambda-Runtime-Deadline-Ms", p.deadline_ms.to_string()),
                    (
                        "Lambda-Runtime-Invoked-Function-Arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:tempest".to_owned(),
                    ),
                    (
                        "Lambda-Runtime-Trace-Id",
                        format!("Root=1-5bef4de7-{};Sampled=1", &p.id.replace('-', "")[..24]),
                    ),
                    ("Content-Type", "application/json".to_owned()),
                ],
                p.payload,
            )
                .into_response();
        }
        notified.await;
    }
}

fn finish(s: &Shared, id: &str, outcome: Outcome) -> Response {
    match s.waiting.lock().expect("lock").remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            (
                StatusCode::ACCEPTED,
                axum::Json(serde_json::json!({"status": "OK"})),
            )
                .into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({
                "errorMessage": format!("unknown request id {id}"),
                "errorType": "InvalidRequestID"
            })),
        )
            .into_response(),
    }
}

async fn response(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Response {
    finish(&s, &id, Outcome::Response(body.to_vec()))
}

async fn error(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error_type = headers
        .get("Lambda-Runtime-Function-Error-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    finish(&s, &id, Outcome::Error { error_type, body })
}

async fn init_error(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    s.init_errors.lock().expect("lock").push(body);
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"status": "OK"})),
    )
        .into_response()
}

/// A request id in Lambda's shape (a UUID), without a uuid dependency.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (t >> 32) as u32,
        (t >> 16) as u16,
        n & 0xfff,
        (n >> 12) & 0xfff,
        t & 0xffff_ffff_ffff
    )
}

/// A Lambda function URL / API Gateway HTTP API event (payload format 2.0) for a request.
/// Binary bodies travel base64-encoded, as AWS sends them.
pub fn http_event(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> serde_json::Value {
    use base64::Engine;
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut h = serde_json::Map::new();
    h.insert(
        "host".into(),
        "abcdefghij.lambda-url.us-east-1.on.aws".into(),
    );
    h.insert("x-forwarded-proto".into(), "https".into());
    for (k, v) in headers {
        h.insert(k.to_ascii_lowercase(), (*v).into());
    }
    let mut event = serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": h,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghij",
            "domainName": "abcdefghij.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghij",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "tempest-tests"
            },
            "requestId": uuid_like(),
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2026:06:00:00 +0000",
            "timeEpoch": 1_795_586_400_000u64
        },
        "isBase64Encoded": false
    });
    if let Some(body) = body {
        event["body"] = base64::engine::general_purpose::STANDARD
            .encode(body)
            .into();
        event["isBase64Encoded"] = true.into();
    }
    event
}

/// An HTTP response as Lambda returns it to a function URL: status, headers and the decoded body.
pub fn http_response(outcome: &Outcome) -> (u16, HashMap<String, String>, Vec<u8>) {
    use base64::Engine;
    let v = outcome.json();
    let status = v["statusCode"].as_u64().expect("statusCode") as u16;
    let headers = v["headers"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.to_ascii_lowercase(),
                        v.as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let body = v["body"].as_str().unwrap_or_default();
    let body = if v["isBase64Encoded"].as_bool().unwrap_or(false) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("base64 body")
    } else {
        body.as_bytes().to_vec()
    };
    (status, headers, body)
}

/// An EventBridge schedule event, as a `rate(…)` or `cron(…)` rule sends it.
pub fn scheduled_event() -> serde_json::Value {
    serde_json::json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-25T06:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/tempest-compact"],
        "detail": {}
    })
}

/// Lambda's Invoke API (`POST /2015-03-31/functions/{name}/invocations`) in front of running
/// instances, for functions that call other functions with the AWS SDK.
pub struct LambdaService {
    /// Base URL, for `AWS_ENDPOINT_URL_LAMBDA`.
    pub url: String,
    invocations: Arc<std::sync::atomic::AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

type Functions = HashMap<String, tokio::sync::Mutex<LambdaInstance>>;

impl LambdaService {
    /// Serves `functions` by name.
    pub async fn start(functions: Vec<(String, LambdaInstance)>) -> LambdaService {
        let functions: Functions = functions
            .into_iter()
            .map(|(name, f)| (name, tokio::sync::Mutex::new(f)))
            .collect();
        let invocations = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Invoke API");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let app = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke_api))
            .with_state((Arc::new(functions), invocations.clone()));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        LambdaService {
            url,
            invocations,
            server,
        }
    }

    /// Invocations answered so far.
    pub fn invocations(&self) -> usize {
        self.invocations.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for LambdaService {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn invoke_api(
    State((functions, count)): State<(Arc<Functions>, Arc<std::sync::atomic::AtomicUsize>)>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let error = |status: StatusCode, kind: &str, message: String| {
        (
            status,
            [("x-amzn-ErrorType", kind.to_owned())],
            axum::Json(serde_json::json!({"Type": "User", "message": message})),
        )
            .into_response()
    };
    let Some(f) = functions.get(&name) else {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("Function not found: arn:aws:lambda:us-east-1:123456789012:function:{name}"),
        );
    };
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "Could not parse request body into json".to_owned(),
        );
    };
    let outcome = f
        .lock()
        .await
        .invoke(&payload, Duration::from_secs(30))
        .await;
    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    match outcome {
        Outcome::Response(body) => (
            StatusCode::OK,
            [("X-Amz-Executed-Version", "$LATEST")],
            body,
        )
            .into_response(),
        Outcome::Error { body, .. } => (
            StatusCode::OK,
            [
                ("X-Amz-Executed-Version", "$LATEST"),
                ("X-Amz-Function-Error", "Unhandled"),
            ],
            body.to_string(),
        )
            .into_response(),
    }
}

/// An SQS event source mapping's batch: one record per `(message id, body, receive count)`,
/// as Lambda delivers it from `tempest-orders` (attributes and field names as AWS sends them).
pub fn sqs_event(records: &[(&str, &str, u32)]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(id, body, count)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": format!("AQEB{id}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": count.to_string(),
                    "SentTimestamp": "1764655200000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1764655200010"
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tempest-orders",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// The JSON an SNS topic puts in a subscribed SQS queue (raw message delivery off).
pub fn sns_notification(topic: &str, message: &str) -> String {
    serde_json::json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": format!("arn:aws:sns:us-east-1:123456789012:{topic}"),
        "Message": message,
        "Timestamp": "2026-12-02T06:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+..",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        "MessageAttributes": {"origin": {"Type": "String", "Value": "checkout"}}
    })
    .to_string()
}
