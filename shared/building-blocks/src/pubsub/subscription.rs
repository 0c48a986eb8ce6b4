//! Subscriptions: programmatic (`GET /dapr/subscribe`, v1 and v2) and declarative (YAML).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::fold_value;

/// Where a subscription came from, as `/v1.0/metadata` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SubscriptionKind {
    /// Subscription YAML in the resources folder.
    Declarative,
    /// The app's `/dapr/subscribe` answer.
    Programmatic,
}

/// One routing rule: a CEL `match` over the event and the path it sends to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// CEL expression; empty matches everything.
    #[serde(rename = "match", default)]
    pub match_expr: String,
    /// App route.
    pub path: String,
}

/// One app's subscription to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Subscribing app (also its consumer group).
    pub app_id: String,
    /// Pub/sub component.
    pub pubsub_name: String,
    /// Topic.
    pub topic: String,
    /// Rules tried in order.
    pub rules: Vec<Rule>,
    /// Route when no rule matches.
    pub default_route: Option<String>,
    /// Where DROPped and exhausted messages go.
    pub dead_letter_topic: Option<String>,
    /// Deliver raw payloads wrapped by Tempest instead of publisher CloudEvents.
    pub raw_payload: bool,
    /// Subscription metadata.
    pub metadata: BTreeMap<String, String>,
    /// Origin.
    pub kind: SubscriptionKind,
    /// Bulk delivery, when the subscription asks for it (`bulkSubscribe.enabled`).
    pub bulk: Option<BulkSubscribe>,
}

/// Dapr's `bulkSubscribe` settings; defaults as Dapr's for components without native bulk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BulkSubscribe {
    /// Whether bulk delivery is on.
    pub enabled: bool,
    /// Most entries in one delivery.
    pub max_messages_count: usize,
    /// Longest wait to fill a delivery, in milliseconds.
    pub max_await_duration_ms: u64,
}

impl Default for BulkSubscribe {
    fn default() -> Self {
        BulkSubscribe {
            enabled: false,
            max_messages_count: 100,
            max_await_duration_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Routes {
    rules: Vec<Rule>,
    default: Option<String>,
}

/// The body shape shared by `/dapr/subscribe` entries and Subscription YAML `spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SubscriptionSpec {
    pubsubname: String,
    topic: String,
    route: Option<String>,
    routes: Option<Routes>,
    metadata: Option<BTreeMap<String, String>>,
    dead_letter_topic: Option<String>,
    bulk_subscribe: Option<BulkSubscribe>,
}

const SPEC_FIELDS: &[&str] = &[
    "pubsubname",
    "topic",
    "route",
    "bulkSubscribe",
    "routes",
    "metadata",
    "deadLetterTopic",
];

impl SubscriptionSpec {
    /// Parses one subscription object, accepting Go's case-insensitive field names.
    pub fn from_json(mut value: Value) -> Result<Self, String> {
        fold_value(&mut value, SPEC_FIELDS);
        if let Some(routes) = value.get_mut("routes") {
            fold_value(routes, &["rules", "default"]);
        }
        crate::json::decode(value)
    }

    /// Turns the spec into a subscription of `app_id`; `None` when it has no route (Dapr drops those).
    pub fn into_subscription(self, app_id: &str, kind: SubscriptionKind) -> Option<Subscription> {
        let routes = self.routes.unwrap_or_default();
        // v2 `routes.default` wins over v1 `route`.
        let default_route = routes.default.or(self.route).filter(|r| !r.is_empty());
        if self.pubsubname.is_empty() || self.topic.is_empty() {
            return None;
        }
        if routes.rules.is_empty() && default_route.is_none() {
            return None;
        }
        let metadata = self.metadata.unwrap_or_default();
        let raw_payload = metadata
            .get("rawPayload")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Some(Subscription {
            app_id: app_id.to_owned(),
            pubsub_name: self.pubsubname,
            topic: self.topic,
            rules: routes.rules,
            default_route,
            dead_letter_topic: self.dead_letter_topic.filter(|t| !t.is_empty()),
            raw_payload,
            metadata,
            kind,
            bulk: self
                .bulk_subscribe
                .filter(|b| b.enabled && b.max_messages_count > 0),
        })
    }
}

/// Parses an app's `/dapr/subscribe` answer (a JSON array of v1 or v2 entries).
pub fn parse_programmatic(app_id: &str, body: &[u8]) -> Result<Vec<Subscription>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Array(items) = value else {
        return Err("expected a JSON array of subscriptions".into());
    };
    let mut subs = Vec::new();
    for item in items {
        let spec = SubscriptionSpec::from_json(item)?;
        subs.extend(spec.into_subscription(app_id, SubscriptionKind::Programmatic));
    }
    Ok(subs)
}

/// Asks an app for its subscriptions (`GET <app>/dapr/subscribe`). `Ok(None)` means the app is
/// not reachable yet; a 404 means it has none.
pub async fn fetch_programmatic(
    http: &dyn tempest_http::HttpClient,
    app_id: &str,
    base_url: &str,
    app_api_token: Option<&str>,
) -> Result<Option<Vec<Subscription>>, String> {
    let mut req = http::Request::get(format!("{base_url}/dapr/subscribe"));
    if let Some(token) = app_api_token {
        req = req.header("dapr-api-token", token);
    }
    let resp = match http.call(req, bytes::Bytes::new()).await {
        Ok(r) => r,
        Err(e) if e.is_connect() || e.is_timeout() => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    match resp.status().as_u16() {
        404 => Ok(Some(Vec::new())),
        200..=299 => {
            let body = resp.body();
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some(Vec::new()));
            }
            parse_programmatic(app_id, body).map(Some)
        }
        status => Err(format!("GET /dapr/subscribe answered {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_and_v2_forms() {
        let body = br#"[
            {"pubsubname":"pubsub","topic":"a","route":"/a"},
            {"pubsubName":"pubsub","topic":"b","route":"/old","routes":{"rules":[{"match":"event.type == \"x\"","path":"/x"}],"default":"/b"},"deadLetterTopic":"dead","metadata":{"rawPayload":"true"}},
            {"pubsubname":"pubsub","topic":"noroute"}
        ]"#;
        let subs = parse_programmatic("app", body).expect("parse");
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[0].default_route.as_deref(), Some("/a"));
        assert_eq!(subs[1].default_route.as_deref(), Some("/b"));
        assert_eq!(subs[1].rules[0].path, "/x");
        assert_eq!(subs[1].dead_letter_topic.as_deref(), Some("dead"));
        assert!(subs[1].raw_payload);
        assert!(parse_programmatic("app", b"{}").is_err());
    }
}
