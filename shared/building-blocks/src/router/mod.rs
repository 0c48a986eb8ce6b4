//! The Dapr HTTP API v1.0 router: paths, verbs, status codes and error bodies as daprd serves them.

mod invoke;
mod metadata;
mod publish;
mod secrets;
mod state;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use bytes::Bytes;

use tempest_core::TraceContext;

use crate::{ApiError, Runtime};

/// Builds the complete Dapr HTTP API over `rt`.
pub fn dapr_router(rt: Arc<Runtime>) -> Router {
    let api = Router::new()
        .route(
            "/v1.0/invoke/{app_id}/method/{*method}",
            any(invoke::by_path),
        )
        .route("/v1.0/state/{store}", post(state::save).put(state::save))
        .route(
            "/v1.0/state/{store}/bulk",
            post(state::bulk_get)
                .put(state::bulk_get)
                .get(state::get_literal)
                .delete(state::delete_literal),
        )
        .route(
            "/v1.0/state/{store}/transaction",
            post(state::transaction)
                .put(state::transaction)
                .get(state::get_literal)
                .delete(state::delete_literal),
        )
        .route(
            "/v1.0/state/{store}/{key}",
            get(state::get).delete(state::delete),
        )
        .route(
            "/v1.0-alpha1/state/{store}/query",
            post(state::query).put(state::query),
        )
        .route(
            "/v1.0/publish/{pubsub}/{*topic}",
            post(publish::publish).put(publish::publish),
        )
        .route(
            "/v1.0-alpha1/publish/bulk/{pubsub}/{*topic}",
            post(publish::bulk).put(publish::bulk),
        )
        .route(
            "/v1.0/publish/bulk/{pubsub}/{*topic}",
            post(publish::bulk).put(publish::bulk),
        )
        .route("/v1.0/secrets/{store}/bulk", get(secrets::bulk))
        .route("/v1.0/secrets/{store}/{key}", get(secrets::get))
        .route("/v1.0/metadata", get(metadata::get))
        .route("/v1.0/metadata/{key}", put(metadata::put))
        .route("/v1.0/healthz", get(metadata::healthz))
        .route("/v1.0/healthz/outbound", get(metadata::healthz))
        .route("/v1.0/shutdown", post(metadata::shutdown))
        .fallback(invoke::by_header)
        .with_state(rt.clone());
    // Normalising the path must happen before routing, so the API is the fallback of an outer
    // router whose middleware runs first.
    Router::new()
        .fallback_service(api)
        .layer(middleware::from_fn(api_span))
        .layer(middleware::from_fn_with_state(rt, check_api_token))
        .layer(middleware::map_request(normalize_path))
}

/// The trace context of the Dapr API span of a request, for handlers that propagate it
/// (publish puts it into the CloudEvent).
#[derive(Clone, Debug)]
pub(crate) struct ApiSpan(pub TraceContext);

/// One span per Dapr API call, named by the URL path as Dapr names them, a child of the caller's
/// `traceparent`; its context goes back in the response's `traceparent`. Invocations have their
/// own `CallLocal` span and health checks are not traced, as in Dapr.
async fn api_span(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let traced = path.starts_with("/v1.0")
        && !path.starts_with("/v1.0/invoke/")
        && !path.starts_with("/v1.0/healthz");
    if !traced || req.headers().contains_key("dapr-app-id") {
        return next.run(req).await;
    }
    let incoming = header(req.headers(), "traceparent").map(str::to_owned);
    let state = header(req.headers(), "tracestate").map(str::to_owned);
    let parent = incoming
        .as_deref()
        .and_then(|tp| TraceContext::parse(tp, state.as_deref()));
    let own = TraceContext::continue_or_start(incoming.as_deref(), state.as_deref());
    let mut attributes = vec![
        opentelemetry::KeyValue::new("dapr.protocol", "http"),
        opentelemetry::KeyValue::new("dapr.api", format!("{} {path}", req.method())),
        opentelemetry::KeyValue::new("http.request.method", req.method().to_string()),
    ];
    let mut segments = path.split('/').skip(2);
    match (segments.next(), segments.next()) {
        (Some("state"), Some(store)) => {
            attributes.push(opentelemetry::KeyValue::new("db.system", "state"));
            attributes.push(opentelemetry::KeyValue::new("db.name", store.to_owned()));
        }
        (Some("secrets"), Some(store)) => {
            attributes.push(opentelemetry::KeyValue::new("db.system", "secrets"));
            attributes.push(opentelemetry::KeyValue::new("db.name", store.to_owned()));
        }
        (Some("publish"), Some(_)) => {
            attributes.push(opentelemetry::KeyValue::new("messaging.system", "pubsub"));
            let topic: Vec<&str> = segments.collect();
            attributes.push(opentelemetry::KeyValue::new(
                "messaging.destination.name",
                topic.join("/"),
            ));
        }
        _ => {}
    }
    let mut span = crate::telemetry::start(
        path,
        opentelemetry::trace::SpanKind::Client,
        &own,
        parent.as_ref(),
        attributes,
    );
    req.extensions_mut().insert(ApiSpan(own.clone()));
    let mut resp = next.run(req).await;
    let status = resp.status().as_u16();
    span.set(opentelemetry::KeyValue::new(
        "dapr.status_code",
        i64::from(status),
    ));
    if status >= 400 {
        span.fail(format!("Code({status})"));
    }
    span.end();
    if let Ok(v) = axum::http::HeaderValue::from_str(&own.traceparent()) {
        resp.headers_mut().insert("traceparent", v);
    }
    resp
}

/// Dapr strips trailing slashes and collapses `//` before routing.
async fn normalize_path(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.len() > 1 && (path.ends_with('/') || path.contains("//")) {
        let mut clean = String::with_capacity(path.len());
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            clean.push('/');
            clean.push_str(seg);
        }
        if clean.is_empty() {
            clean.push('/');
        }
        if let Some(q) = req.uri().query() {
            clean.push('?');
            clean.push_str(q);
        }
        if let Ok(uri) = clean.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// `DAPR_API_TOKEN`: every request but the health checks needs `dapr-api-token`; the header is
/// removed before the request goes further. Dapr answers plain text here, not JSON.
async fn check_api_token(State(rt): State<Arc<Runtime>>, mut req: Request, next: Next) -> Response {
    if let Some(expected) = &rt.api_token {
        let path = req.uri().path();
        let exempt = path == "/v1.0/healthz" || path == "/v1.0/healthz/outbound";
        if !exempt {
            let given = req.headers().get("dapr-api-token").map(|v| v.as_bytes());
            if !given.is_some_and(|g| constant_time_eq(g, expected.as_bytes())) {
                return (StatusCode::UNAUTHORIZED, "invalid api token").into_response();
            }
        }
        req.headers_mut().remove("dapr-api-token");
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a request body up to the configured limit: 413 past it, 400 if the read fails.
pub(crate) async fn read_body(rt: &Runtime, body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, rt.max_body_size)
        .await
        .map_err(|e| {
            let inner = e.into_inner();
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "ERR_BODY_READ",
                        format!(
                            "request body exceeds the limit of {} bytes",
                            rt.max_body_size
                        ),
                    );
                }
                source = err.source();
            }
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "ERR_BODY_READ",
                format!("failed to read request body: {inner}"),
            )
        })
}

/// Query parameters of a request in order.
pub(crate) fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// `metadata.<key>=<value>` query parameters with the prefix stripped; the first value wins.
pub(crate) fn request_metadata(uri: &Uri) -> BTreeMap<String, String> {
    let mut md = BTreeMap::new();
    for (k, v) in query_pairs(uri) {
        if let Some(key) = k.strip_prefix("metadata.") {
            md.entry(key.to_owned()).or_insert(v);
        }
    }
    md
}

/// The first value of one query parameter.
pub(crate) fn query_param(uri: &Uri, name: &str) -> Option<String> {
    query_pairs(uri)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
