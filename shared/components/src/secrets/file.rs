//! `secretstores.local.file`: secrets from a JSON file, nested objects flattened with
//! `nestedSeparator` (default `:`), or one secret per top-level key with `multiValued: true`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use serde_json::Value;
use tempest_building_blocks::secrets::{Secret, SecretError, SecretStore};

/// A JSON-file secret store; the file is read on every call so edits are seen at once.
pub struct FileSecretStore {
    path: PathBuf,
    separator: String,
    multi_valued: bool,
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn flatten(prefix: &str, v: &Value, sep: &str, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}{sep}{k}")
                };
                flatten(&key, v, sep, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), scalar(other));
        }
    }
}

impl FileSecretStore {
    /// A store over `path`.
    pub fn new(path: PathBuf, separator: &str, multi_valued: bool) -> Self {
        FileSecretStore {
            path,
            separator: separator.to_owned(),
            multi_valued,
        }
    }

    fn read(&self) -> Result<BTreeMap<String, Secret>, SecretError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| {
            SecretError::Backend(format!(
                "cannot read secrets file {}: {e}",
                self.path.display()
            ))
        })?;
        let json: Value = serde_json::from_str(&text).map_err(|e| {
            SecretError::Backend(format!(
                "secrets file {} is not valid JSON: {e}",
                self.path.display()
            ))
        })?;
        let Value::Object(top) = json else {
            return Err(SecretError::Backend(
                "secrets file must hold a JSON object".into(),
            ));
        };
        let mut out = BTreeMap::new();
        if self.multi_valued {
            for (name, v) in top {
                let mut secret = BTreeMap::new();
                match &v {
                    Value::Object(_) => flatten("", &v, &self.separator, &mut secret),
                    other => {
                        secret.insert(name.clone(), scalar(other));
                    }
                }
                out.insert(name, secret);
            }
        } else {
            let mut flat = BTreeMap::new();
            flatten("", &Value::Object(top), &self.separator, &mut flat);
            for (k, v) in flat {
                out.insert(k.clone(), BTreeMap::from([(k, v)]));
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl SecretStore for FileSecretStore {
    async fn get(
        &self,
        name: &str,
        _metadata: &BTreeMap<String, String>,
    ) -> Result<Secret, SecretError> {
        self.read()?
            .remove(name)
            .ok_or_else(|| SecretError::NotFound(name.to_owned()))
    }

    async fn bulk(
        &self,
        _metadata: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, Secret>, SecretError> {
        self.read()
    }
}
