//! The runtime a Tempest process serves: its components, declared apps and subscriptions.
//! Built once at start (by `tempest_components::load`) and shared by every function.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::pubsub::{Broker, Subscription};
use crate::resources::RetryPolicy;
use crate::secrets::{SecretScope, SecretStore};
use crate::state::StateStore;

/// How state keys are prefixed in the store (component metadata `keyPrefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPrefix {
    /// `<appID>||key` (Dapr's default).
    AppId,
    /// `<storeName>||key`.
    Name,
    /// The key as given.
    None,
    /// `<literal>||key`.
    Literal(String),
}

impl KeyPrefix {
    /// Parses the `keyPrefix` metadata value.
    pub fn parse(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            None | Some("") | Some("appid") => KeyPrefix::AppId,
            Some("name") => KeyPrefix::Name,
            Some("none") => KeyPrefix::None,
            Some(other) => KeyPrefix::Literal(other.to_owned()),
        }
    }

    /// The prefix (including `||`) put in front of keys; empty for `none`.
    pub fn prefix(&self, app_id: &str, store: &str) -> String {
        match self {
            KeyPrefix::AppId => format!("{app_id}||"),
            KeyPrefix::Name => format!("{store}||"),
            KeyPrefix::None => String::new(),
            KeyPrefix::Literal(p) => format!("{p}||"),
        }
    }
}

/// A loaded state store.
#[derive(Clone)]
pub struct StateComponent {
    /// Component type, e.g. `state.redis`.
    pub type_name: String,
    /// Component version.
    pub version: String,
    /// The backend.
    pub store: Arc<dyn StateStore>,
    /// Key prefix rule.
    pub key_prefix: KeyPrefix,
}

/// A loaded pub/sub broker.
#[derive(Clone)]
pub struct PubSubComponent {
    /// Component type, e.g. `pubsub.redis`.
    pub type_name: String,
    /// Component version.
    pub version: String,
    /// The backend.
    pub broker: Arc<dyn Broker>,
    /// Retry policy for deliveries (Resiliency `inbound`); `None` hands failures back to the broker.
    pub delivery_retry: Option<RetryPolicy>,
}

/// A loaded secret store.
#[derive(Clone)]
pub struct SecretComponent {
    /// Component type, e.g. `secretstores.local.env`.
    pub type_name: String,
    /// Component version.
    pub version: String,
    /// The backend.
    pub store: Arc<dyn SecretStore>,
    /// Which secrets callers may read.
    pub scope: SecretScope,
}

/// Everything the building-block functions need.
pub struct Runtime {
    /// Tempest's own app id (CloudEvent `source`, state key prefix, caller id on invoke).
    pub app_id: String,
    /// Declared apps: id → base URL.
    pub apps: BTreeMap<String, String>,
    /// State stores by component name.
    pub state: BTreeMap<String, StateComponent>,
    /// Pub/sub brokers by component name.
    pub pubsub: BTreeMap<String, PubSubComponent>,
    /// Secret stores by component name.
    pub secrets: BTreeMap<String, SecretComponent>,
    /// Active subscriptions (declarative, then programmatic as apps answer).
    pub subscriptions: RwLock<Vec<Subscription>>,
    /// Attributes set with `PUT /v1.0/metadata/<key>`.
    pub extended_metadata: RwLock<BTreeMap<String, String>>,
    /// HTTP client for calls to apps (the platform's: `reqwest` keeping connections alive, or
    /// `wasi:http` in a WebAssembly component).
    pub http: Arc<dyn tempest_http::HttpClient>,
    /// Required `dapr-api-token`, if any.
    pub api_token: Option<String>,
    /// Token sent to apps as `dapr-api-token`, if any.
    pub app_api_token: Option<String>,
    /// Largest request body accepted.
    pub max_body_size: usize,
}

impl Runtime {
    /// An empty runtime for `app_id` with Dapr's 4 MiB body limit.
    pub fn new(app_id: &str) -> Self {
        Runtime {
            app_id: app_id.to_owned(),
            apps: BTreeMap::new(),
            state: BTreeMap::new(),
            pubsub: BTreeMap::new(),
            secrets: BTreeMap::new(),
            subscriptions: RwLock::new(Vec::new()),
            extended_metadata: RwLock::new(BTreeMap::new()),
            http: tempest_http::client(),
            api_token: None,
            app_api_token: None,
            max_body_size: 4 << 20,
        }
    }

    /// A snapshot of the current subscriptions.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.subscriptions
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Adds subscriptions, skipping any app/pubsub/topic triple that already exists.
    pub fn add_subscriptions(&self, subs: Vec<Subscription>) -> Vec<Subscription> {
        let mut guard = self
            .subscriptions
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut added = Vec::new();
        for sub in subs {
            let exists = guard.iter().any(|s| {
                s.app_id == sub.app_id && s.pubsub_name == sub.pubsub_name && s.topic == sub.topic
            });
            if !exists {
                guard.push(sub.clone());
                added.push(sub);
            }
        }
        added
    }
}
