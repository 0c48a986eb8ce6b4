//! The secrets building block: the `SecretStore` trait and Dapr's secret scoping.

use std::collections::BTreeMap;

use async_trait::async_trait;

/// Key/value pairs of one secret.
pub type Secret = BTreeMap<String, String>;

/// Why a secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// No such secret.
    #[error("secret {0} not found")]
    NotFound(String),
    /// The store failed.
    #[error("{0}")]
    Backend(String),
}

/// A secret store.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// One secret by name; request metadata (`version_id`, …) is passed through.
    async fn get(
        &self,
        name: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Secret, SecretError>;

    /// Every secret the store holds, by name.
    async fn bulk(
        &self,
        metadata: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, Secret>, SecretError>;
}

/// Dapr's per-store secret scope from a Configuration resource (`spec.secrets.scopes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretScope {
    /// `defaultAccess: deny` denies whatever `allowedSecrets` does not list.
    pub default_deny: bool,
    /// Secrets always allowed (when non-empty, only these are).
    pub allowed: Vec<String>,
    /// Secrets always denied.
    pub denied: Vec<String>,
}

impl SecretScope {
    /// Dapr's rule: denied wins; a non-empty allow list is exclusive; then the default access.
    pub fn allows(&self, name: &str) -> bool {
        if self.denied.iter().any(|d| d == name) {
            return false;
        }
        if !self.allowed.is_empty() {
            return self.allowed.iter().any(|a| a == name);
        }
        !self.default_deny
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_rules() {
        let open = SecretScope::default();
        assert!(open.allows("x"));
        let deny = SecretScope {
            default_deny: true,
            allowed: vec!["a".into()],
            denied: vec![],
        };
        assert!(deny.allows("a") && !deny.allows("b"));
        let mixed = SecretScope {
            default_deny: false,
            allowed: vec![],
            denied: vec!["b".into()],
        };
        assert!(mixed.allows("a") && !mixed.allows("b"));
    }
}
