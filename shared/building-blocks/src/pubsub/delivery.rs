//! Delivers one CloudEvent to an app route and reads Dapr's app response contract.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tempest_core::TraceContext;

/// What the app asked Tempest to do with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Processed; acknowledge.
    Success,
    /// Try again later (with the reason).
    Retry(String),
    /// Do not retry; dead-letter if configured (with the reason).
    Drop(String),
}

/// Reads an app's answer: 2xx with no/non-JSON body or no `status` is SUCCESS; `status` picks
/// SUCCESS / RETRY / DROP (anything else retries); 404 drops; any other status retries.
pub fn read_app_response(status: u16, body: &[u8]) -> Outcome {
    if status == 404 {
        return Outcome::Drop("app answered 404".into());
    }
    if !(200..300).contains(&status) {
        return Outcome::Retry(format!("app answered {status}"));
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return Outcome::Success;
    };
    match obj.get("status").and_then(Value::as_str) {
        None => Outcome::Success,
        Some(s) if s.eq_ignore_ascii_case("SUCCESS") || s.is_empty() => Outcome::Success,
        Some(s) if s.eq_ignore_ascii_case("DROP") => Outcome::Drop("app answered DROP".into()),
        Some(s) if s.eq_ignore_ascii_case("RETRY") => Outcome::Retry("app answered RETRY".into()),
        Some(other) => Outcome::Retry(format!("unknown status {other:?} from app")),
    }
}

/// One delivery to make.
pub struct Delivery<'a> {
    /// HTTP client.
    pub http: &'a dyn tempest_http::HttpClient,
    /// App base URL.
    pub base_url: &'a str,
    /// App route.
    pub path: &'a str,
    /// The CloudEvent.
    pub event: &'a Map<String, Value>,
    /// Broker metadata; sent as request headers.
    pub metadata: &'a BTreeMap<String, String>,
    /// Sent as `dapr-api-token` when set.
    pub app_api_token: Option<&'a str>,
}

/// POSTs the event to the app and reads its answer; a transport failure is a RETRY.
pub async fn deliver(d: Delivery<'_>) -> Outcome {
    let url = format!("{}/{}", d.base_url, d.path.trim_start_matches('/'));
    let str_field = |k: &str| d.event.get(k).and_then(Value::as_str);
    // The delivery is a child span of the publish span carried in the envelope.
    let parent = str_field("traceparent").or_else(|| str_field("traceid"));
    let trace = TraceContext::continue_or_start(parent, str_field("tracestate"));
    let body = match serde_json::to_vec(d.event) {
        Ok(b) => b,
        Err(e) => return Outcome::Drop(format!("event cannot be serialised: {e}")),
    };
    let uri = match tempest_http::uri(&url) {
        Ok(uri) => uri,
        Err(e) => return Outcome::Retry(e.to_string()),
    };
    let mut req = http::Request::post(uri)
        .header(
            "content-type",
            tempest_core::cloudevents::CLOUDEVENT_CONTENT_TYPE,
        )
        .header("traceparent", trace.traceparent());
    if let Some(ts) = &trace.tracestate {
        req = req.header("tracestate", ts);
    }
    if let Some(baggage) = str_field("baggage") {
        req = req.header("baggage", baggage);
    }
    for (k, v) in d.metadata {
        req = req.header(k.as_str(), v.as_str());
    }
    if let Some(token) = d.app_api_token {
        req = req.header("dapr-api-token", token);
    }
    let topic = str_field("topic").unwrap_or_default().to_owned();
    let mut hop = crate::telemetry::start(
        format!("pubsub/{topic}"),
        opentelemetry::trace::SpanKind::Client,
        &trace,
        parent
            .and_then(|p| TraceContext::parse(p, str_field("tracestate")))
            .as_ref(),
        vec![
            opentelemetry::KeyValue::new("messaging.system", "pubsub"),
            opentelemetry::KeyValue::new("messaging.destination.name", topic),
        ],
    );
    let outcome = match d.http.call(req, body.into()).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            hop.set(opentelemetry::KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            read_app_response(status, resp.body())
        }
        Err(e) => Outcome::Retry(e.to_string()),
    };
    match &outcome {
        Outcome::Success => {}
        Outcome::Retry(why) | Outcome::Drop(why) => hop.fail(why.clone()),
    }
    hop.end();
    outcome
}

/// Reads an app's answer to a bulk delivery: `{"statuses":[{"entryId","status"}]}`. A missing
/// entry is RETRY, 404 drops every entry, any other non-2xx retries every entry.
pub fn read_bulk_response(status: u16, body: &[u8], entry_ids: &[String]) -> Vec<Outcome> {
    if status == 404 {
        return entry_ids
            .iter()
            .map(|_| Outcome::Drop("app answered 404".into()))
            .collect();
    }
    if !(200..300).contains(&status) {
        return entry_ids
            .iter()
            .map(|_| Outcome::Retry(format!("app answered {status}")))
            .collect();
    }
    let statuses: Vec<(String, String)> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("statuses").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| {
            Some((
                s.get("entryId")?.as_str()?.to_owned(),
                s.get("status")?.as_str()?.to_ascii_uppercase(),
            ))
        })
        .collect();
    entry_ids
        .iter()
        .map(|id| {
            match statuses
                .iter()
                .find(|(e, _)| e == id)
                .map(|(_, s)| s.as_str())
            {
                Some("SUCCESS") => Outcome::Success,
                Some("DROP") => Outcome::Drop("app answered DROP".into()),
                Some(other) => Outcome::Retry(format!("app answered {other}")),
                None => Outcome::Retry("no status for this entry".into()),
            }
        })
        .collect()
}

/// POSTs a bulk delivery (`com.dapr.event.sent.bulk`) and reads the per-entry answer.
pub async fn deliver_bulk(
    http: &dyn tempest_http::HttpClient,
    url: &str,
    body: &Value,
    entry_ids: &[String],
    app_api_token: Option<&str>,
) -> Vec<Outcome> {
    let mut req = http::Request::post(url).header("content-type", "application/json");
    if let Some(token) = app_api_token {
        req = req.header("dapr-api-token", token);
    }
    match http.call(req, body.to_string().into()).await {
        Ok(resp) => read_bulk_response(resp.status().as_u16(), resp.body(), entry_ids),
        Err(e) => entry_ids
            .iter()
            .map(|_| Outcome::Retry(format!("bulk delivery failed: {e}")))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_response_contract() {
        let ids = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let got = read_bulk_response(
            200,
            br#"{"statuses":[{"entryId":"a","status":"SUCCESS"},{"entryId":"b","status":"drop"}]}"#,
            &ids,
        );
        assert_eq!(got[0], Outcome::Success);
        assert!(matches!(got[1], Outcome::Drop(_)));
        assert!(
            matches!(got[2], Outcome::Retry(_)),
            "a missing entry is RETRY"
        );
        assert!(
            read_bulk_response(404, b"", &ids)
                .iter()
                .all(|o| matches!(o, Outcome::Drop(_)))
        );
        assert!(
            read_bulk_response(500, b"", &ids)
                .iter()
                .all(|o| matches!(o, Outcome::Retry(_)))
        );
    }

    #[test]
    fn app_response_contract() {
        assert_eq!(read_app_response(200, b""), Outcome::Success);
        assert_eq!(read_app_response(204, b"ok"), Outcome::Success);
        assert_eq!(read_app_response(200, b"{}"), Outcome::Success);
        assert_eq!(
            read_app_response(200, br#"{"status":"success"}"#),
            Outcome::Success
        );
        assert!(matches!(
            read_app_response(200, br#"{"status":"RETRY"}"#),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            read_app_response(200, br#"{"status":"DROP"}"#),
            Outcome::Drop(_)
        ));
        assert!(matches!(
            read_app_response(200, br#"{"status":"MAYBE"}"#),
            Outcome::Retry(_)
        ));
        assert!(matches!(read_app_response(404, b""), Outcome::Drop(_)));
        assert!(matches!(read_app_response(500, b""), Outcome::Retry(_)));
        assert!(matches!(read_app_response(302, b""), Outcome::Retry(_)));
    }
}
