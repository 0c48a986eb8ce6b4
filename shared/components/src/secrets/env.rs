//! `secretstores.local.env`: secrets are environment variables.

use std::collections::BTreeMap;

use async_trait::async_trait;
use tempest_building_blocks::secrets::{Secret, SecretError, SecretStore};

/// Reads secrets from the process environment, optionally only names starting with `prefix`
/// (stripped from the names it returns).
pub struct EnvSecretStore {
    prefix: String,
    vars: Box<dyn Fn() -> Vec<(String, String)> + Send + Sync>,
}

/// Variables never exposed: Dapr's own settings and tokens.
fn is_reserved(name: &str) -> bool {
    name.starts_with("DAPR_") || name == "APP_API_TOKEN" || name.starts_with("TEMPEST_")
}

impl EnvSecretStore {
    /// A store over the real process environment.
    pub fn new(prefix: &str) -> Self {
        Self::with_vars(prefix, || std::env::vars().collect())
    }

    /// A store over a given variable source (tests use a fixed list).
    pub fn with_vars(
        prefix: &str,
        vars: impl Fn() -> Vec<(String, String)> + Send + Sync + 'static,
    ) -> Self {
        EnvSecretStore {
            prefix: prefix.to_owned(),
            vars: Box::new(vars),
        }
    }
}

#[async_trait]
impl SecretStore for EnvSecretStore {
    async fn get(
        &self,
        name: &str,
        _metadata: &BTreeMap<String, String>,
    ) -> Result<Secret, SecretError> {
        let full = format!("{}{name}", self.prefix);
        // Like Dapr's local.env, an unset variable reads as an empty value rather than an error.
        let value = if is_reserved(&full) {
            String::new()
        } else {
            (self.vars)()
                .into_iter()
                .find(|(k, _)| *k == full)
                .map(|(_, v)| v)
                .unwrap_or_default()
        };
        Ok(BTreeMap::from([(name.to_owned(), value)]))
    }

    async fn bulk(
        &self,
        _metadata: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, Secret>, SecretError> {
        Ok((self.vars)()
            .into_iter()
            .filter(|(k, _)| !is_reserved(k))
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(&self.prefix)?.to_owned();
                (!name.is_empty()).then(|| (name.clone(), BTreeMap::from([(name, v)])))
            })
            .collect())
    }
}
