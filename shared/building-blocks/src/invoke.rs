//! Service invocation: resolve an app id to its declared URL, forward the request with W3C trace
//! context, retry only when the connection could not be made, and return the callee's answer unchanged.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use bytes::Bytes;
use tempest_core::TraceContext;
use tracing::Instrument;

use crate::{ApiError, Runtime};

/// Connection attempts after the first one (Dapr's built-in service retries: 3).
const CONNECT_RETRIES: u32 = 3;
/// Pause before the first retry; doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// A request to forward.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    /// HTTP verb.
    pub method: Method,
    /// Target app id (or a full `http(s)://` base URL).
    pub app_id: String,
    /// Method path on the target, without the leading `/`.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Request headers as received.
    pub headers: HeaderMap,
    /// The caller's address, for `X-Forwarded-For` / `Forwarded`.
    pub client: Option<std::net::IpAddr>,
    /// Request body.
    pub body: Bytes,
}

/// The callee's answer.
#[derive(Debug, Clone)]
pub struct InvokeResponse {
    /// Status as the callee sent it.
    pub status: StatusCode,
    /// Headers as the callee sent them, less hop-by-hop ones, plus `traceparent`.
    pub headers: HeaderMap,
    /// Body as the callee sent it.
    pub body: Bytes,
}

/// Headers that describe one connection and must not be forwarded (RFC 9110 §7.6.1), plus the
/// ones the HTTP client sets itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn set_header(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// Resolves an app id to a base URL: a declared app, `id.namespace` of a declared app, or a full URL.
pub fn resolve_app(rt: &Runtime, app_id: &str) -> Result<String, ApiError> {
    if app_id.starts_with("http://") || app_id.starts_with("https://") {
        return Ok(app_id.trim_end_matches('/').to_owned());
    }
    let bare = app_id.split_once('.').map_or(app_id, |(id, _ns)| id);
    rt.apps
        .get(app_id)
        .or_else(|| rt.apps.get(bare))
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&str> = rt.apps.keys().map(String::as_str).collect();
            ApiError::new(
                StatusCode::NOT_FOUND,
                "ERR_DIRECT_INVOKE",
                format!(
                    "failed to invoke, id: {app_id}, err: app id {app_id:?} is not declared (declared apps: {})",
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                ),
            )
        })
}

/// Forwards `req` to the target app and returns its answer.
pub async fn invoke(rt: &Runtime, req: InvokeRequest) -> Result<InvokeResponse, ApiError> {
    let base = resolve_app(rt, &req.app_id)?;
    let mut url = format!("{base}/{}", req.path.trim_start_matches('/'));
    if let Some(q) = req.query.as_deref().filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(q);
    }
    let trace = TraceContext::continue_or_start(
        header_str(&req.headers, "traceparent"),
        header_str(&req.headers, "tracestate"),
    );
    let span = tracing::info_span!(
        "CallLocal",
        otel.name = format!("CallLocal/{}/{}", req.app_id, req.path),
        rpc.service = "ServiceInvocation",
        net.peer.name = %req.app_id,
        trace_id = %trace.trace_id,
        span_id = %trace.span_id,
    );
    let parent = TraceContext::parse(
        header_str(&req.headers, "traceparent").unwrap_or_default(),
        header_str(&req.headers, "tracestate"),
    );
    let mut hop = crate::telemetry::start(
        format!("CallLocal/{}/{}", req.app_id, req.path),
        opentelemetry::trace::SpanKind::Client,
        &trace,
        parent.as_ref(),
        vec![
            opentelemetry::KeyValue::new("rpc.service", "ServiceInvocation"),
            opentelemetry::KeyValue::new("net.peer.name", req.app_id.clone()),
            opentelemetry::KeyValue::new("dapr.protocol", "http"),
            opentelemetry::KeyValue::new("http.request.method", req.method.to_string()),
        ],
    );
    let result = forward(rt, req, url, trace).instrument(span).await;
    match &result {
        Ok(resp) => {
            hop.set(opentelemetry::KeyValue::new(
                "http.response.status_code",
                i64::from(resp.status.as_u16()),
            ));
            if resp.status.as_u16() >= 400 {
                hop.fail(format!("Code({})", resp.status.as_u16()));
            }
        }
        Err(e) => hop.fail(e.message.clone()),
    }
    hop.end();
    result
}

async fn forward(
    rt: &Runtime,
    req: InvokeRequest,
    url: String,
    trace: TraceContext,
) -> Result<InvokeResponse, ApiError> {
    let mut headers = req.headers.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove("dapr-app-id");
    headers.remove("dapr-api-token");
    set_header(&mut headers, "traceparent", &trace.traceparent());
    if let Some(ts) = &trace.tracestate {
        set_header(&mut headers, "tracestate", ts);
    }
    set_header(&mut headers, "dapr-caller-app-id", &rt.app_id);
    set_header(&mut headers, "dapr-callee-app-id", &req.app_id);
    // As daprd: who called and which host they asked, for apps behind the hop.
    let host = header_str(&req.headers, "host").map(str::to_owned);
    if let Some(ip) = req.client {
        let xff = match header_str(&req.headers, "x-forwarded-for") {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip.to_string(),
        };
        set_header(&mut headers, "x-forwarded-for", &xff);
        let mut forwarded = format!("for={ip}");
        if let Some(h) = &host {
            forwarded.push_str(&format!(";host={h}"));
        }
        set_header(&mut headers, "forwarded", &forwarded);
    }
    if let Some(h) = &host {
        set_header(&mut headers, "x-forwarded-host", h);
    }
    if let Some(token) = &rt.app_api_token {
        set_header(&mut headers, "dapr-api-token", token);
    }

    let bad_request = |e: tempest_http::Error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ERR_DIRECT_INVOKE",
            format!("failed to invoke, id: {}, err: {e}", req.app_id),
        )
    };
    let mut request = http::Request::builder()
        .method(req.method.clone())
        .uri(tempest_http::uri(&url).map_err(bad_request)?);
    if let Some(h) = request.headers_mut() {
        *h = headers;
    }
    let request = tempest_http::build(request, req.body.clone()).map_err(bad_request)?;
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0;
    let resp = loop {
        match rt.http.send(request.clone()).await {
            Ok(resp) => break resp,
            // Only a failed connection is retried: nothing reached the app, so a retry cannot
            // run a non-idempotent request twice.
            Err(e) if e.is_connect() && attempt < CONNECT_RETRIES => {
                attempt += 1;
                tracing::debug!(%url, attempt, "connection failed, retrying: {e}");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ERR_DIRECT_INVOKE",
                    format!("failed to invoke, id: {}, err: {e}", req.app_id),
                ));
            }
        }
    };
    let (parts, body) = resp.into_parts();
    let status = parts.status;
    let mut resp_headers = parts.headers;
    strip_hop_by_hop(&mut resp_headers);
    set_header(&mut resp_headers, "traceparent", &trace.traceparent());
    Ok(InvokeResponse {
        status,
        headers: resp_headers,
        body,
    })
}
