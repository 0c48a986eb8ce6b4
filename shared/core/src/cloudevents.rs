//! CloudEvents 1.0 envelopes exactly as Dapr builds them for pub/sub.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::TraceContext;

/// The CloudEvent `type` Dapr gives published events.
pub const DAPR_EVENT_TYPE: &str = "com.dapr.event.sent";
/// Content type of a structured-mode CloudEvent.
pub const CLOUDEVENT_CONTENT_TYPE: &str = "application/cloudevents+json";

/// Why an envelope could not be built from a publish request.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// A JSON or CloudEvent body did not parse.
    #[error("{0}")]
    InvalidBody(String),
}

/// Everything needed to wrap one published payload.
#[derive(Debug)]
pub struct PublishedEvent<'a> {
    /// Request body as received.
    pub data: &'a [u8],
    /// Request `Content-Type`, if any.
    pub content_type: Option<&'a str>,
    /// Topic published to.
    pub topic: &'a str,
    /// Pub/sub component name.
    pub pubsub_name: &'a str,
    /// Publisher's app id (the envelope's `source`).
    pub source: &'a str,
    /// Trace context of the publish span.
    pub trace: &'a TraceContext,
    /// W3C `baggage` of the publish request, carried along so it survives the hop.
    pub baggage: Option<&'a str>,
    /// Request metadata (`metadata.*` query parameters, prefix stripped).
    pub metadata: &'a BTreeMap<String, String>,
}

/// True for `application/json` and any `+json` media type (parameters ignored).
pub fn is_json_content_type(ct: &str) -> bool {
    let essence = media_type(ct);
    essence == "application/json" || essence.ends_with("+json")
}

fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// True when payloads of this type travel base64-encoded in `data_base64`.
pub fn is_binary_content_type(ct: &str) -> bool {
    let essence = media_type(ct);
    essence == "application/octet-stream"
        || essence.contains("protobuf")
        || essence.starts_with("image/")
        || essence.starts_with("audio/")
        || essence.starts_with("video/")
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Parses a JSON payload, naming the problem the way a client can act on.
fn parse_json(data: &[u8], what: &str) -> Result<Value, EnvelopeError> {
    serde_json::from_slice(data).map_err(|e| EnvelopeError::InvalidBody(format!("{what}: {e}")))
}

/// Builds the CloudEvent for one publish request (Dapr's `NewCloudEvent` rules).
pub fn envelope(ev: &PublishedEvent<'_>) -> Result<Map<String, Value>, EnvelopeError> {
    let content_type = ev.content_type.unwrap_or("text/plain");
    let traceparent = ev.trace.traceparent();
    let tracestate = ev.trace.tracestate.clone().unwrap_or_default();
    let override_of = |attr: &str| ev.metadata.get(&format!("cloudevent.{attr}")).cloned();

    let mut ce = if media_type(content_type) == CLOUDEVENT_CONTENT_TYPE {
        // The body already is a CloudEvent: keep it, fill in what Dapr fills in.
        let Value::Object(mut ce) = parse_json(ev.data, "the body is not a valid CloudEvent")?
        else {
            return Err(EnvelopeError::InvalidBody(
                "a CloudEvent must be a JSON object".into(),
            ));
        };
        ce.entry("id")
            .or_insert_with(|| uuid::Uuid::new_v4().to_string().into());
        ce.entry("source").or_insert_with(|| "Dapr".into());
        ce.entry("type").or_insert_with(|| DAPR_EVENT_TYPE.into());
        ce.entry("specversion").or_insert_with(|| "1.0".into());
        ce.entry("time").or_insert_with(|| now_rfc3339().into());
        if !ce.contains_key("traceid") {
            ce.insert("traceid".into(), traceparent.clone().into());
            ce.insert("traceparent".into(), traceparent.into());
        }
        ce.entry("tracestate").or_insert_with(|| tracestate.into());
        ce
    } else {
        let mut ce = Map::new();
        ce.insert("id".into(), uuid::Uuid::new_v4().to_string().into());
        ce.insert("source".into(), ev.source.into());
        ce.insert("type".into(), DAPR_EVENT_TYPE.into());
        ce.insert("specversion".into(), "1.0".into());
        ce.insert("datacontenttype".into(), content_type.into());
        ce.insert("time".into(), now_rfc3339().into());
        ce.insert("traceid".into(), traceparent.clone().into());
        ce.insert("traceparent".into(), traceparent.into());
        ce.insert("tracestate".into(), tracestate.into());
        if is_json_content_type(content_type) {
            ce.insert(
                "data".into(),
                parse_json(ev.data, "the body is not valid JSON")?,
            );
        } else if let (false, Ok(text)) = (
            is_binary_content_type(content_type),
            std::str::from_utf8(ev.data),
        ) {
            ce.insert("data".into(), text.into());
        } else {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(ev.data);
            ce.insert("data_base64".into(), b64.into());
        }
        ce
    };
    ce.insert("topic".into(), ev.topic.into());
    ce.insert("pubsubname".into(), ev.pubsub_name.into());
    if let Some(baggage) = ev.baggage.filter(|b| !b.is_empty()) {
        ce.entry("baggage").or_insert_with(|| baggage.into());
    }
    for attr in [
        "id",
        "source",
        "type",
        "subject",
        "traceid",
        "traceparent",
        "tracestate",
    ] {
        if let Some(v) = override_of(attr) {
            ce.insert(attr.into(), v.into());
        }
    }
    if let Some(ttl) = ev.metadata.get("ttlInSeconds")
        && let Ok(secs) = ttl.parse::<i64>()
    {
        let at = chrono::Utc::now() + chrono::Duration::seconds(secs);
        ce.insert(
            "expiration".into(),
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into(),
        );
    }
    Ok(ce)
}

/// Wraps a raw payload for a subscription with `rawPayload=true`, as Dapr's `FromRawPayload` does.
pub fn from_raw_payload(data: &[u8], topic: &str, pubsub_name: &str) -> Map<String, Value> {
    use base64::Engine as _;
    let mut ce = Map::new();
    ce.insert("id".into(), uuid::Uuid::new_v4().to_string().into());
    ce.insert("source".into(), "Dapr".into());
    ce.insert("type".into(), DAPR_EVENT_TYPE.into());
    ce.insert("specversion".into(), "1.0".into());
    ce.insert("datacontenttype".into(), "application/octet-stream".into());
    ce.insert("topic".into(), topic.into());
    ce.insert("pubsubname".into(), pubsub_name.into());
    ce.insert(
        "data_base64".into(),
        base64::engine::general_purpose::STANDARD
            .encode(data)
            .into(),
    );
    ce
}

/// True when the envelope carries an `expiration` that has passed.
pub fn is_expired(ce: &Map<String, Value>) -> bool {
    ce.get("expiration")
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .is_some_and(|at| at < chrono::Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(data: &[u8], ct: Option<&str>, md: &[(&str, &str)]) -> Map<String, Value> {
        let trace = TraceContext::new_root();
        let metadata = md
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        envelope(&PublishedEvent {
            data,
            content_type: ct,
            topic: "orders",
            pubsub_name: "pubsub",
            source: "checkout",
            trace: &trace,
            baggage: Some("k=v"),
            metadata: &metadata,
        })
        .expect("envelope")
    }

    #[test]
    fn wraps_json_text_and_binary() {
        let ce = publish(br#"{"a":1}"#, Some("application/json"), &[]);
        assert_eq!(ce["data"], serde_json::json!({"a": 1}));
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["type"], DAPR_EVENT_TYPE);
        assert_eq!(ce["source"], "checkout");
        assert_eq!(ce["topic"], "orders");
        assert_eq!(ce["pubsubname"], "pubsub");
        assert_eq!(ce["traceid"], ce["traceparent"]);
        assert_eq!(ce["baggage"], "k=v");
        let ce = publish(b"hello", None, &[]);
        assert_eq!(ce["data"], "hello");
        assert_eq!(ce["datacontenttype"], "text/plain");
        let ce = publish(&[0, 159, 1], Some("application/octet-stream"), &[]);
        assert_eq!(ce["data_base64"], "AJ8B");
        assert!(!ce.contains_key("data"));
    }

    #[test]
    fn passes_cloudevents_through_and_applies_overrides() {
        let body = br#"{"id":"my-id","source":"mine","type":"t","specversion":"1.0","data":5,"traceid":"x"}"#;
        let ce = publish(
            body,
            Some(CLOUDEVENT_CONTENT_TYPE),
            &[("cloudevent.subject", "s")],
        );
        assert_eq!(ce["id"], "my-id");
        assert_eq!(ce["source"], "mine");
        assert_eq!(ce["traceid"], "x");
        assert!(!ce.contains_key("traceparent"));
        assert_eq!(ce["topic"], "orders");
        assert_eq!(ce["subject"], "s");
        assert!(ce.contains_key("time"));
    }

    #[test]
    fn rejects_bad_json_and_sets_expiration() {
        let trace = TraceContext::new_root();
        let md = BTreeMap::new();
        let bad = PublishedEvent {
            data: b"{nope",
            content_type: Some("application/json"),
            topic: "t",
            pubsub_name: "p",
            source: "s",
            trace: &trace,
            baggage: None,
            metadata: &md,
        };
        assert!(envelope(&bad).is_err());
        let ce = publish(b"1", Some("application/json"), &[("ttlInSeconds", "-5")]);
        assert!(is_expired(&ce));
        let ce = publish(b"1", Some("application/json"), &[("ttlInSeconds", "60")]);
        assert!(!is_expired(&ce));
    }
}
