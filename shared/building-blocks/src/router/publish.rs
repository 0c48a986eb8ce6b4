//! `/v1.0/publish/{pubsub}/{topic}` and bulk publish.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;
use tempest_core::TraceContext;
use tempest_core::cloudevents::{self, PublishedEvent};
use tracing::Instrument;

use super::{ApiSpan, header, read_body, request_metadata};
use crate::pubsub::OutgoingMessage;
use crate::runtime::PubSubComponent;
use crate::{ApiError, Runtime};

fn component<'a>(
    rt: &'a Runtime,
    name: &str,
    topic: &str,
) -> Result<&'a PubSubComponent, ApiError> {
    if rt.pubsub.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_NOT_CONFIGURED",
            "no pubsub is configured",
        ));
    }
    if name.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ERR_PUBSUB_EMPTY",
            "pubsub name is empty",
        ));
    }
    let comp = rt.pubsub.get(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "ERR_PUBSUB_NOT_FOUND",
            format!("pubsub {name} is not found"),
        )
    })?;
    if topic.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ERR_TOPIC_NAME_EMPTY",
            format!("topic is empty in pubsub {name}"),
        ));
    }
    Ok(comp)
}

fn raw_payload(md: &BTreeMap<String, String>) -> Result<bool, ApiError> {
    match md.get("rawPayload").map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" || v == "1" => Ok(true),
        Some(v) if v == "false" || v == "0" || v.is_empty() => Ok(false),
        Some(v) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_REQUEST_METADATA",
            format!("failed deserializing metadata: rawPayload value {v:?} is not a boolean"),
        )),
    }
}

struct Publication<'a> {
    rt: &'a Runtime,
    pubsub: &'a str,
    topic: &'a str,
    trace: TraceContext,
    baggage: Option<&'a str>,
}

impl Publication<'_> {
    /// Wraps one payload (unless raw) into the message handed to the broker.
    fn message(
        &self,
        data: &[u8],
        content_type: Option<&str>,
        md: &BTreeMap<String, String>,
    ) -> Result<OutgoingMessage, ApiError> {
        if raw_payload(md)? {
            return Ok(OutgoingMessage {
                data: Bytes::copy_from_slice(data),
                metadata: BTreeMap::new(),
            });
        }
        let ce = cloudevents::envelope(&PublishedEvent {
            data,
            content_type,
            topic: self.topic,
            pubsub_name: self.pubsub,
            source: &self.rt.app_id,
            trace: &self.trace,
            baggage: self.baggage,
            metadata: md,
        })
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "ERR_PUBSUB_CLOUD_EVENTS_SER",
                format!(
                    "error when publishing to topic {} in pubsub {}: {e}",
                    self.topic, self.pubsub
                ),
            )
        })?;
        let bytes = serde_json::to_vec(&ce).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_PUBSUB_CLOUD_EVENTS_SER",
                e.to_string(),
            )
        })?;
        Ok(OutgoingMessage {
            data: Bytes::from(bytes),
            metadata: BTreeMap::new(),
        })
    }
}

/// The publish span's context: the Dapr API span's (so the envelope's `traceparent` names a
/// recorded span), or a child of the caller's when the router's span layer is not in front.
fn span_context(api_span: Option<Extension<ApiSpan>>, headers: &HeaderMap) -> TraceContext {
    api_span
        .map(|Extension(ApiSpan(tc))| tc)
        .unwrap_or_else(|| {
            TraceContext::continue_or_start(
                header(headers, "traceparent"),
                header(headers, "tracestate"),
            )
        })
}

fn publish_failed(topic: &str, pubsub: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_PUBSUB_PUBLISH_MESSAGE",
        format!("error when publish to topic {topic} in pubsub {pubsub}: {e}"),
    )
}

/// `POST|PUT /v1.0/publish/{pubsub}/{topic}`.
pub(super) async fn publish(
    State(rt): State<Arc<Runtime>>,
    Path((pubsub, topic)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    api_span: Option<Extension<ApiSpan>>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let comp = component(&rt, &pubsub, &topic)?;
    let md = request_metadata(&uri);
    let body = read_body(&rt, body).await?;
    let publication = Publication {
        rt: &rt,
        pubsub: &pubsub,
        topic: &topic,
        trace: span_context(api_span, &headers),
        baggage: header(&headers, "baggage"),
    };
    let msg = publication.message(&body, header(&headers, "content-type"), &md)?;
    let span = tracing::info_span!("publish", messaging.system = "pubsub", messaging.destination.name = %topic);
    comp.broker
        .publish(&topic, msg)
        .instrument(span)
        .await
        .map_err(|e| publish_failed(&topic, &pubsub, e))?;
    Ok(StatusCode::NO_CONTENT)
}

fn is_text_type(ct: &str) -> bool {
    let ct = ct.to_ascii_lowercase();
    ct.starts_with("text/") || ct.contains("xml")
}

fn events_ser(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "ERR_PUBSUB_EVENTS_SER", message)
}

/// Converts a bulk entry's `event` to bytes the way Dapr does for its `contentType`.
fn entry_bytes(entry_id: &str, event: &Value, content_type: &str) -> Result<Vec<u8>, ApiError> {
    if cloudevents::is_binary_content_type(content_type) {
        let Value::String(s) = event else {
            return Err(events_ser(format!(
                "entry {entry_id}: a binary event must be a base64 string"
            )));
        };
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| events_ser(format!("entry {entry_id}: invalid base64: {e}")))
    } else if is_text_type(content_type) {
        match event {
            Value::String(s) => Ok(s.clone().into_bytes()),
            _ => Err(events_ser(format!(
                "entry {entry_id}: event of content type {content_type} must be a string"
            ))),
        }
    } else {
        serde_json::to_vec(event).map_err(|e| events_ser(e.to_string()))
    }
}

/// `POST|PUT /v1.0-alpha1/publish/bulk/{pubsub}/{topic}`.
pub(super) async fn bulk(
    State(rt): State<Arc<Runtime>>,
    Path((pubsub, topic)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    api_span: Option<Extension<ApiSpan>>,
    body: Body,
) -> Result<Response, ApiError> {
    let comp = component(&rt, &pubsub, &topic)?;
    let req_md = request_metadata(&uri);
    raw_payload(&req_md)?;
    let body = read_body(&rt, body).await?;
    let mut entries: Vec<Value> = serde_json::from_slice(&body)
        .map_err(|e| events_ser(format!("failed to parse bulk publish request: {e}")))?;
    let parent = span_context(api_span, &headers);
    let mut seen = HashSet::new();
    let mut messages = Vec::with_capacity(entries.len());
    for entry in &mut entries {
        crate::json::fold_value(entry, &["entryId", "event", "contentType", "metadata"]);
        let entry_id = entry
            .get("entryId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if entry_id.is_empty() {
            return Err(events_ser(
                "entryId is required for every bulk publish entry".into(),
            ));
        }
        if !seen.insert(entry_id.clone()) {
            return Err(events_ser(format!("entryId {entry_id} is duplicated")));
        }
        let event = entry.get("event").cloned().unwrap_or(Value::Null);
        let content_type = entry
            .get("contentType")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                if event.is_string() {
                    "text/plain".into()
                } else {
                    "application/json".into()
                }
            });
        let mut md: BTreeMap<String, String> = match entry.get("metadata") {
            Some(Value::Object(m)) => m
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect(),
            _ => BTreeMap::new(),
        };
        for (k, v) in &req_md {
            md.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let data = entry_bytes(&entry_id, &event, &content_type)?;
        // Each entry gets its own producer span, as in Dapr.
        let publication = Publication {
            rt: &rt,
            pubsub: &pubsub,
            topic: &topic,
            trace: parent.child(),
            baggage: header(&headers, "baggage"),
        };
        messages.push((
            entry_id,
            publication.message(&data, Some(&content_type), &md)?,
        ));
    }
    let mut failed = Vec::new();
    for (entry_id, msg) in messages {
        if let Err(e) = comp.broker.publish(&topic, msg).await {
            failed.push(serde_json::json!({"entryId": entry_id, "error": e.to_string()}));
        }
    }
    if failed.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok((
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(
            serde_json::json!({"failedEntries": failed, "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE"}),
        ),
    )
        .into_response())
}
