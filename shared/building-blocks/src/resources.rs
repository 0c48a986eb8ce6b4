//! Dapr resource files (Component, Subscription, Configuration, Resiliency) read from a
//! resources folder exactly as the Dapr CLI's `--resources-path` reads them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::pubsub::subscription::SubscriptionSpec;
use crate::secrets::SecretScope;

/// Why the resources folder could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File or folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A document is not a valid resource.
    #[error("invalid resource in {path}: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

/// `secretKeyRef` of a metadata item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key within the secret; defaults to the name.
    #[serde(default)]
    pub key: Option<String>,
}

/// One `spec.metadata` item.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataItem {
    /// Field name.
    pub name: String,
    /// Literal value (any YAML scalar).
    #[serde(default)]
    pub value: Option<serde_yaml::Value>,
    /// Value taken from a secret store.
    #[serde(default)]
    pub secret_key_ref: Option<SecretKeyRef>,
}

/// A Dapr Component resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSpec {
    /// `metadata.name`.
    pub name: String,
    /// `spec.type`, e.g. `state.redis`.
    pub type_name: String,
    /// `spec.version`.
    pub version: String,
    /// `spec.metadata`.
    pub metadata: Vec<MetadataItem>,
    /// `auth.secretstore`: where `secretKeyRef`s are resolved.
    pub auth_secret_store: Option<String>,
    /// `scopes`.
    pub scopes: Vec<String>,
}

impl ComponentSpec {
    /// A component with literal metadata, for defaults and tests.
    pub fn new(name: &str, type_name: &str, metadata: &[(&str, &str)]) -> Self {
        ComponentSpec {
            name: name.into(),
            type_name: type_name.into(),
            version: "v1".into(),
            metadata: metadata
                .iter()
                .map(|(k, v)| MetadataItem {
                    name: (*k).into(),
                    value: Some(serde_yaml::Value::String((*v).into())),
                    secret_key_ref: None,
                })
                .collect(),
            auth_secret_store: None,
            scopes: vec![],
        }
    }

    /// The building block: the part of the type before the first dot (`state`, `pubsub`, `secretstores`).
    pub fn kind(&self) -> &str {
        self.type_name.split('.').next().unwrap_or("")
    }
}

/// Renders a YAML scalar as Dapr's string metadata value.
pub fn scalar_to_string(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Null => String::new(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

/// A retry policy from a Resiliency resource.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Exponential (true) or constant backoff.
    pub exponential: bool,
    /// Constant interval, or the first exponential interval.
    pub duration: Duration,
    /// Cap for exponential backoff.
    pub max_interval: Duration,
    /// Retries after the first attempt; -1 retries forever.
    pub max_retries: i64,
}

impl Default for RetryPolicy {
    /// Dapr's defaults for an unspecified field: constant, 5 s, max interval 60 s, retry forever.
    fn default() -> Self {
        RetryPolicy {
            exponential: false,
            duration: Duration::from_secs(5),
            max_interval: Duration::from_secs(60),
            max_retries: -1,
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `retry` (1-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        if !self.exponential {
            return self.duration;
        }
        let grown = self.duration.as_secs_f64() * 1.5f64.powi(retry.saturating_sub(1) as i32);
        Duration::from_secs_f64(grown.min(self.max_interval.as_secs_f64()))
    }

    /// True when retry number `retry` (1-based) is still allowed.
    pub fn allows(&self, retry: u32) -> bool {
        self.max_retries < 0 || i64::from(retry) <= self.max_retries
    }
}

/// Everything read from a resources folder.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    /// Components in file order.
    pub components: Vec<ComponentSpec>,
    /// Declarative subscriptions with their `scopes` (empty = every app).
    pub subscriptions: Vec<(SubscriptionSpec, Vec<String>)>,
    /// Secret scopes by store name.
    pub secret_scopes: BTreeMap<String, SecretScope>,
    /// Inbound (delivery) retry policies by pub/sub component name.
    pub pubsub_retries: BTreeMap<String, RetryPolicy>,
}

#[derive(Deserialize)]
struct Document {
    kind: Option<String>,
    #[serde(default)]
    metadata: NameOnly,
    #[serde(default)]
    spec: serde_yaml::Value,
    #[serde(default)]
    auth: Option<AuthSpec>,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Deserialize, Default)]
struct NameOnly {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct AuthSpec {
    secretstore: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ComponentBody {
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    metadata: Vec<MetadataItem>,
}

fn parse_duration(s: &str) -> Option<Duration> {
    // Go duration strings as Dapr writes them: "500ms", "5s", "1m", "1h", "1m30s".
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (mut total, mut num) = (0f64, String::new());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let value: f64 = num.parse().ok()?;
        num.clear();
        total += value
            * match unit.as_str() {
                "ms" => 0.001,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return None,
            };
    }
    if !num.is_empty() {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

fn str_at<'a>(v: &'a serde_yaml::Value, path: &[&str]) -> Option<&'a serde_yaml::Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn parse_retry(v: &serde_yaml::Value) -> RetryPolicy {
    let mut p = RetryPolicy::default();
    if let Some(policy) = v.get("policy").and_then(|p| p.as_str()) {
        p.exponential = policy.eq_ignore_ascii_case("exponential");
        if p.exponential {
            // Dapr's exponential policy starts at 500 ms unless `duration` says otherwise.
            p.duration = Duration::from_millis(500);
        }
    }
    if let Some(d) = v
        .get("duration")
        .map(scalar_to_string)
        .and_then(|s| parse_duration(&s))
    {
        p.duration = d;
    }
    if let Some(d) = v
        .get("maxInterval")
        .map(scalar_to_string)
        .and_then(|s| parse_duration(&s))
    {
        p.max_interval = d;
    }
    if let Some(n) = v
        .get("maxRetries")
        .and_then(|n| scalar_to_string(n).parse().ok())
    {
        p.max_retries = n;
    }
    p
}

impl Resources {
    /// Reads every `.yaml` / `.yml` file in `dir` (multi-document files allowed), in name order.
    pub fn load(dir: &Path) -> Result<Self, ResourceError> {
        let read_err = |path: &Path, source| ResourceError::Read {
            path: path.into(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| read_err(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        let mut res = Resources::default();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| read_err(&path, e))?;
            res.add_yaml(&text)
                .map_err(|message| ResourceError::Invalid {
                    path: path.clone(),
                    message,
                })?;
        }
        Ok(res)
    }

    /// Adds the resources of one YAML text (one or more documents).
    pub fn add_yaml(&mut self, text: &str) -> Result<(), String> {
        let mut resiliency_docs = Vec::new();
        for de in serde_yaml::Deserializer::from_str(text) {
            let value = serde_yaml::Value::deserialize(de).map_err(|e| e.to_string())?;
            if value.is_null() {
                continue;
            }
            let doc: Document = serde_yaml::from_value(value).map_err(|e| e.to_string())?;
            match doc.kind.as_deref() {
                Some("Component") => {
                    let body: ComponentBody = serde_yaml::from_value(doc.spec)
                        .map_err(|e| format!("component {:?}: {e}", doc.metadata.name))?;
                    if doc.metadata.name.is_empty() {
                        return Err("component without metadata.name".into());
                    }
                    if self.components.iter().any(|c| c.name == doc.metadata.name) {
                        return Err(format!("duplicate component name {:?}", doc.metadata.name));
                    }
                    self.components.push(ComponentSpec {
                        name: doc.metadata.name,
                        type_name: body.type_name,
                        version: body.version.unwrap_or_else(|| "v1".into()),
                        metadata: body.metadata,
                        auth_secret_store: doc.auth.and_then(|a| a.secretstore),
                        scopes: doc.scopes,
                    });
                }
                Some("Subscription") => {
                    let json = serde_json::to_value(&doc.spec).map_err(|e| e.to_string())?;
                    let spec = SubscriptionSpec::from_json(json)
                        .map_err(|e| format!("subscription {:?}: {e}", doc.metadata.name))?;
                    self.subscriptions.push((spec, doc.scopes));
                }
                Some("Configuration") => {
                    let scopes = str_at(&doc.spec, &["secrets", "scopes"])
                        .and_then(|s| s.as_sequence())
                        .cloned()
                        .unwrap_or_default();
                    for scope in scopes {
                        let Some(store) = scope.get("storeName").and_then(|s| s.as_str()) else {
                            return Err("secrets scope without storeName".into());
                        };
                        let list = |k: &str| -> Vec<String> {
                            scope
                                .get(k)
                                .and_then(|v| v.as_sequence())
                                .map(|s| s.iter().map(scalar_to_string).collect())
                                .unwrap_or_default()
                        };
                        self.secret_scopes.insert(
                            store.to_owned(),
                            SecretScope {
                                default_deny: scope
                                    .get("defaultAccess")
                                    .and_then(|v| v.as_str())
                                    .is_some_and(|v| v.eq_ignore_ascii_case("deny")),
                                allowed: list("allowedSecrets"),
                                denied: list("deniedSecrets"),
                            },
                        );
                    }
                }
                Some("Resiliency") => resiliency_docs.push(doc.spec),
                // Other Dapr kinds (HTTPEndpoint, …) are not used by Tempest yet.
                _ => {}
            }
        }
        for spec in resiliency_docs {
            let retries = str_at(&spec, &["policies", "retries"]).cloned();
            let targets = str_at(&spec, &["targets", "components"])
                .and_then(|c| c.as_mapping())
                .cloned()
                .unwrap_or_default();
            for (name, target) in targets {
                let name = scalar_to_string(&name);
                let Some(policy_name) =
                    str_at(&target, &["inbound", "retry"]).and_then(|v| v.as_str())
                else {
                    continue;
                };
                let policy = retries
                    .as_ref()
                    .and_then(|r| r.get(policy_name))
                    .ok_or_else(|| {
                        format!("resiliency target {name} names unknown retry policy {policy_name}")
                    })?;
                self.pubsub_retries.insert(name, parse_retry(policy));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_kind() {
        let mut r = Resources::default();
        r.add_yaml(
            r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: statestore}
auth: {secretstore: envstore}
spec:
  type: state.redis
  version: v1
  metadata:
  - {name: redisHost, value: "localhost:6379"}
  - {name: redisDB, value: 2}
  - name: redisPassword
    secretKeyRef: {name: redis-secret, key: password}
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: order}
spec:
  topic: orders
  routes: {rules: [{match: 'event.type == "widget"', path: /widgets}], default: /checkout}
  pubsubname: pubsub
  deadLetterTopic: poison
scopes: [checkout]
---
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: config}
spec:
  secrets:
    scopes:
    - {storeName: vault, defaultAccess: deny, allowedSecrets: [a]}
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: r}
spec:
  policies:
    retries:
      pubsubRetry: {policy: exponential, duration: 100ms, maxInterval: 1s, maxRetries: 4}
  targets:
    components:
      pubsub: {inbound: {retry: pubsubRetry}}
"#,
        )
        .expect("valid");
        assert_eq!(r.components[0].type_name, "state.redis");
        assert_eq!(r.components[0].kind(), "state");
        assert_eq!(
            r.components[0].auth_secret_store.as_deref(),
            Some("envstore")
        );
        assert_eq!(
            scalar_to_string(r.components[0].metadata[1].value.as_ref().expect("v")),
            "2"
        );
        assert_eq!(r.subscriptions[0].1, vec!["checkout".to_string()]);
        assert!(r.secret_scopes["vault"].default_deny);
        let p = &r.pubsub_retries["pubsub"];
        assert!(p.exponential);
        assert_eq!(p.duration, Duration::from_millis(100));
        assert_eq!(p.max_retries, 4);
        assert!(p.backoff(10) <= Duration::from_secs(1));
    }

    #[test]
    fn rejects_broken_documents() {
        let mut r = Resources::default();
        assert!(
            r.add_yaml("kind: Component\nmetadata: {name: x}\nspec: {}\n")
                .is_err()
        );
        assert!(
            r.add_yaml("kind: Component\nspec: {type: state.in-memory}\n")
                .is_err()
        );
        assert!(r.add_yaml("kind: [\n").is_err());
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5x"), None);
    }
}
