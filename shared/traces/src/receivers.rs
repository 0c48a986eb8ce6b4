//! HTTP receivers with Tempo's protocols and responses: OTLP/HTTP (`POST /v1/traces`, protobuf
//! or JSON, optionally gzip) and Zipkin v2 (`POST /api/v2/spans`). Each request is decoded, then
//! handed to a `SpanSink`; the answer is a success only once the sink has committed the spans.

use std::io::Read;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use tempest_core::TenantId;

use crate::{DecodeError, Span, otlp, zipkin};

/// Where decoded spans go: `ingest` commits them as a block before answering.
#[async_trait]
pub trait SpanSink: Send + Sync {
    /// Durably stores `spans` for `tenant`; returns once they are committed.
    async fn commit(&self, tenant: TenantId, spans: Vec<Span>) -> Result<(), String>;
}

#[derive(Clone)]
struct Ctx {
    sink: Arc<dyn SpanSink>,
    max_body: usize,
}

/// Why a request was refused, before any span was stored.
enum Refusal {
    TooLarge(String),
    UnsupportedType(String),
    Bad(String),
    Unavailable(String),
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::Bad(_) => StatusCode::BAD_REQUEST,
            Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn message(&self) -> &str {
        match self {
            Refusal::TooLarge(m)
            | Refusal::UnsupportedType(m)
            | Refusal::Bad(m)
            | Refusal::Unavailable(m) => m,
        }
    }
}

impl From<DecodeError> for Refusal {
    fn from(e: DecodeError) -> Self {
        Refusal::Bad(e.to_string())
    }
}

/// Reads the body within the limit, undoing `Content-Encoding: gzip` (also within the limit,
/// so a small compressed body cannot expand without bound).
async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, Refusal> {
    let raw = axum::body::to_bytes(body, max).await.map_err(|e| {
        Refusal::TooLarge(format!(
            "request body larger than {max} bytes or unreadable: {e}"
        ))
    })?;
    match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    {
        None | Some("") | Some("identity") => Ok(raw),
        Some(enc) if enc.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::new();
            let mut decoder = flate2::read::GzDecoder::new(&raw[..]).take(max as u64 + 1);
            decoder
                .read_to_end(&mut out)
                .map_err(|e| Refusal::Bad(format!("invalid gzip body: {e}")))?;
            if out.len() > max {
                return Err(Refusal::TooLarge(format!(
                    "decompressed body larger than {max} bytes"
                )));
            }
            Ok(Bytes::from(out))
        }
        Some(enc) => Err(Refusal::UnsupportedType(format!(
            "unsupported Content-Encoding {enc:?} (gzip or none)"
        ))),
    }
}

fn tenant(headers: &HeaderMap) -> Result<TenantId, Refusal> {
    let raw = headers
        .get("x-scope-orgid")
        .map(|v| {
            v.to_str()
                .map_err(|_| Refusal::Bad("X-Scope-OrgID is not text".into()))
        })
        .transpose()?;
    TenantId::parse(raw).map_err(|e| Refusal::Bad(e.to_string()))
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

async fn commit(ctx: &Ctx, tenant: TenantId, spans: Vec<Span>) -> Result<(), Refusal> {
    if spans.is_empty() {
        return Ok(());
    }
    ctx.sink.commit(tenant, spans).await.map_err(|e| {
        tracing::error!("ingest commit failed: {e}");
        Refusal::Unavailable(format!("spans could not be stored, retry later: {e}"))
    })
}

/// `google.rpc.Status` in the request's encoding, as the OTLP spec asks for failures.
fn otlp_error(json: bool, r: &Refusal) -> Response {
    let code = match r {
        Refusal::Unavailable(_) => 14,
        Refusal::TooLarge(_) => 8,
        _ => 3,
    };
    if json {
        let body = serde_json::json!({"code": code, "message": r.message()});
        return (r.status(), axum::Json(body)).into_response();
    }
    use prost::Message;
    let body = RpcStatus {
        code,
        message: r.message().to_owned(),
        details: vec![],
    }
    .encode_to_vec();
    (
        r.status(),
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        body,
    )
        .into_response()
}

/// `google.rpc.Status`, the error body OTLP/HTTP uses.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(bytes = "vec", repeated, tag = "3")]
    details: Vec<Vec<u8>>,
}

async fn otlp_http(State(ctx): State<Ctx>, headers: HeaderMap, body: Body) -> Response {
    let ct = media_type(&headers);
    let json = ct == "application/json";
    if !json && ct != "application/x-protobuf" && ct != "application/protobuf" {
        let r = Refusal::UnsupportedType(format!(
            "unsupported Content-Type {ct:?} (application/x-protobuf or application/json)"
        ));
        return otlp_error(false, &r);
    }
    let result = async {
        let tenant = tenant(&headers)?;
        let bytes = read_body(&headers, body, ctx.max_body).await?;
        let decoded = if json {
            otlp::decode_json(&bytes)?
        } else {
            otlp::decode_protobuf(&bytes)?
        };
        commit(&ctx, tenant, decoded.spans).await?;
        Ok::<_, Refusal>((decoded.rejected, decoded.rejection))
    }
    .await;
    match result {
        Ok((rejected, why)) if json => (
            StatusCode::OK,
            axum::Json(otlp::response_json(rejected, why.as_deref())),
        )
            .into_response(),
        Ok((rejected, why)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            otlp::response_protobuf(rejected, why.as_deref()),
        )
            .into_response(),
        Err(r) => otlp_error(json, &r),
    }
}

async fn zipkin_http(State(ctx): State<Ctx>, headers: HeaderMap, body: Body) -> Response {
    let ct = media_type(&headers);
    // Zipkin clients send application/json; a missing type is accepted as JSON, as Zipkin does.
    if !ct.is_empty() && ct != "application/json" && ct != "text/plain" {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("unsupported Content-Type {ct:?}: only Zipkin v2 JSON (application/json) is accepted")).into_response();
    }
    let result = async {
        let tenant = tenant(&headers)?;
        let bytes = read_body(&headers, body, ctx.max_body).await?;
        let spans = zipkin::decode_json(&bytes)?;
        commit(&ctx, tenant, spans).await
    }
    .await;
    match result {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(r) => (r.status(), r.message().to_owned()).into_response(),
    }
}

async fn jaeger_http(State(ctx): State<Ctx>, headers: HeaderMap, body: Body) -> Response {
    let ct = media_type(&headers);
    if ct != "application/x-thrift" && ct != "application/vnd.apache.thrift.binary" {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("unsupported Content-Type {ct:?}: only Jaeger Thrift binary (application/x-thrift) is accepted")).into_response();
    }
    let result = async {
        let tenant = tenant(&headers)?;
        let bytes = read_body(&headers, body, ctx.max_body).await?;
        let spans = crate::jaeger::decode_thrift(&bytes)?;
        commit(&ctx, tenant, spans).await
    }
    .await;
    match result {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(r) => (r.status(), r.message().to_owned()).into_response(),
    }
}

/// Jaeger Thrift over HTTP: `POST /api/traces` (port 14268).
pub fn jaeger_router(sink: Arc<dyn SpanSink>, max_body: usize) -> Router {
    Router::new()
        .route("/api/traces", post(jaeger_http))
        .with_state(Ctx { sink, max_body })
}

/// OTLP/HTTP: `POST /v1/traces` (Tempo's default port 4318).
pub fn otlp_http_router(sink: Arc<dyn SpanSink>, max_body: usize) -> Router {
    Router::new()
        .route("/v1/traces", post(otlp_http))
        .with_state(Ctx { sink, max_body })
}

/// Zipkin v2: `POST /api/v2/spans` (port 9411).
pub fn zipkin_router(sink: Arc<dyn SpanSink>, max_body: usize) -> Router {
    Router::new()
        .route("/api/v2/spans", post(zipkin_http))
        .with_state(Ctx { sink, max_body })
}
