//! A recording app: answers `/dapr/subscribe` with configured subscriptions, records every
//! request, and answers each route as scripted (status, body, headers, delay, or a sequence).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// One request the app received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Verb.
    pub method: Method,
    /// Path.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Received {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How the app answers one route.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Body.
    pub body: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Delay before answering.
    pub delay: Duration,
}

impl Reply {
    /// A reply with a status and body.
    pub fn new(status: u16, body: &str) -> Self {
        Reply {
            status,
            body: body.into(),
            headers: vec![],
            delay: Duration::ZERO,
        }
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Per path: replies used in order; the last one repeats.
    replies: HashMap<String, Vec<Reply>>,
    subscriptions: Option<serde_json::Value>,
    /// Paths answering bulk deliveries with SUCCESS for every entry.
    bulk_success: Vec<String>,
}

/// The running app.
#[derive(Clone)]
pub struct TestApp {
    inner: Arc<Mutex<Inner>>,
    /// Its port.
    pub port: u16,
    /// Its base URL.
    pub url: String,
}

async fn handle(State(app): State<TestApp>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let reply = {
        let mut inner = app.inner.lock().unwrap_or_else(|p| p.into_inner());
        if path == "/dapr/subscribe" {
            return match &inner.subscriptions {
                Some(s) => axum::Json(s.clone()).into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            };
        }
        inner.received.push(Received {
            method: parts.method.clone(),
            path: path.clone(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
        if inner.bulk_success.contains(&path) {
            let entries = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["entries"].as_array().cloned())
                .unwrap_or_default();
            let statuses: Vec<serde_json::Value> = entries
                .iter()
                .map(|e| serde_json::json!({"entryId": e["entryId"], "status": "SUCCESS"}))
                .collect();
            return axum::Json(serde_json::json!({"statuses": statuses})).into_response();
        }
        match inner.replies.get_mut(&path) {
            Some(list) if list.len() > 1 => Some(list.remove(0)),
            Some(list) => list.first().cloned(),
            None => None,
        }
    };
    let reply = reply.unwrap_or_else(|| Reply::new(200, ""));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK),
        reply.body,
    )
        .into_response();
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::try_from(k),
            axum::http::HeaderValue::try_from(v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

impl TestApp {
    /// Starts the app on a port the OS picks (no race with other tests).
    pub async fn start() -> TestApp {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind test app");
        Self::serve(listener)
    }

    /// Starts the app on a given `port` (for tests that declare the URL before the app exists).
    pub async fn start_on(port: u16) -> TestApp {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind test app");
        Self::serve(listener)
    }

    fn serve(listener: tokio::net::TcpListener) -> TestApp {
        let port = listener.local_addr().expect("local addr").port();
        let app = TestApp {
            inner: Arc::new(Mutex::new(Inner::default())),
            port,
            url: format!("http://127.0.0.1:{port}"),
        };
        let router = Router::new().fallback(handle).with_state(app.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        app
    }

    /// Sets the `/dapr/subscribe` answer.
    pub fn subscriptions(&self, subs: serde_json::Value) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .subscriptions = Some(subs);
    }

    /// Answers bulk deliveries on `path` with SUCCESS for every entry.
    pub fn reply_bulk_success(&self, path: &str) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .bulk_success
            .push(path.into());
    }

    /// Scripts the replies for `path` (used in order; the last repeats).
    pub fn reply(&self, path: &str, replies: Vec<Reply>) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replies
            .insert(path.into(), replies);
    }

    /// Everything received so far on `path`.
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Everything received so far.
    pub fn all_received(&self) -> Vec<Received> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .received
            .clone()
    }
}
