//! Component metadata after `secretKeyRef` resolution: a string map with typed accessors.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ComponentError;

/// Resolved `spec.metadata` of one component.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// Component name, for error messages.
    pub component: String,
    /// Field values.
    pub values: BTreeMap<String, String>,
}

impl Metadata {
    /// The metadata of `component` with these fields.
    pub fn new<K: Into<String>, V: Into<String>>(
        component: impl Into<String>,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Metadata {
            component: component.into(),
            values: fields
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A field, if set and non-empty. Dapr matches metadata names case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// A required field.
    pub fn required(&self, name: &str) -> Result<&str, ComponentError> {
        self.get(name).ok_or_else(|| ComponentError::Invalid {
            component: self.component.clone(),
            message: format!("metadata field {name:?} is required"),
        })
    }

    /// A numeric field with a default.
    pub fn number<T: std::str::FromStr>(
        &self,
        name: &str,
        default: T,
    ) -> Result<T, ComponentError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| ComponentError::Invalid {
                component: self.component.clone(),
                message: format!("metadata field {name:?}: {v:?} is not a number"),
            }),
        }
    }

    /// A boolean field with a default.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ComponentError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(v) => Err(ComponentError::Invalid {
                component: self.component.clone(),
                message: format!("metadata field {name:?}: {v:?} is not a boolean"),
            }),
        }
    }

    /// A duration field (Go duration like `60s`, or plain seconds) with a default.
    pub fn duration(&self, name: &str, default: Duration) -> Result<Duration, ComponentError> {
        let Some(v) = self.get(name) else {
            return Ok(default);
        };
        let v = v.trim();
        let parsed = if let Some(ms) = v.strip_suffix("ms") {
            ms.parse::<u64>().ok().map(Duration::from_millis)
        } else if let Some(s) = v.strip_suffix('s') {
            s.parse::<f64>().ok().map(Duration::from_secs_f64)
        } else if let Some(m) = v.strip_suffix('m') {
            m.parse::<u64>().ok().map(|m| Duration::from_secs(m * 60))
        } else {
            v.parse::<u64>().ok().map(Duration::from_secs)
        };
        parsed.ok_or_else(|| ComponentError::Invalid {
            component: self.component.clone(),
            message: format!("metadata field {name:?}: {v:?} is not a duration"),
        })
    }
}

/// An environment variable, if set and non-empty: what a component falls back on where its
/// metadata is silent (the cloud SDKs' own variables).
pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
