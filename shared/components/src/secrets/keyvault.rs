//! `secretstores.azure.keyvault`: Azure Key Vault secrets as Dapr reads them, through the
//! documented REST calls (Get Secret, Get Secrets, api-version 7.4) with an Entra ID token. A
//! secret's value comes back under its own name; `version_id` request metadata picks a
//! version. Bulk reads list the enabled secrets and read each.

use std::collections::BTreeMap;

use async_trait::async_trait;
use http::{Method, StatusCode};
use serde::Deserialize;
use tempest_building_blocks::secrets::{Secret, SecretError, SecretStore};

use crate::ComponentError;
use crate::azure::{Credential, Service, describe, request};
use crate::metadata::Metadata;

const API_VERSION: &str = "7.4";

/// Azure Key Vault as a secret store.
pub struct KeyVaultStore {
    credential: Credential,
    /// `https://<vault>.vault.azure.net`, without a trailing slash.
    vault: url::Url,
}

#[derive(Deserialize)]
struct SecretBundle {
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct SecretItem {
    id: String,
    #[serde(default)]
    attributes: Attributes,
}

#[derive(Deserialize)]
struct Attributes {
    #[serde(default = "yes")]
    enabled: bool,
}

impl Default for Attributes {
    fn default() -> Self {
        Attributes { enabled: true }
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct SecretList {
    #[serde(default)]
    value: Vec<SecretItem>,
    #[serde(rename = "nextLink")]
    next_link: Option<String>,
}

impl KeyVaultStore {
    /// Connects from Dapr's metadata: `vaultName` (a vault in `azureEnvironment`, by default the
    /// public cloud; Tempest also takes a full `https://` or `http://` URL, for private
    /// endpoints and test servers) and the Entra ID fields (`azureTenantId`, `azureClientId`,
    /// `azureClientSecret`), or a managed identity.
    pub async fn connect(md: &Metadata) -> Result<Self, ComponentError> {
        let invalid = |message: String| ComponentError::Invalid {
            component: md.component.clone(),
            message,
        };
        let name = md.required("vaultName")?;
        let url = if name.starts_with("https://") || name.starts_with("http://") {
            name.trim_end_matches('/').to_owned()
        } else {
            let suffix = match md
                .get("azureEnvironment")
                .unwrap_or("AZUREPUBLICCLOUD")
                .to_ascii_uppercase()
                .as_str()
            {
                "AZUREPUBLICCLOUD" => "vault.azure.net",
                "AZURECHINACLOUD" => "vault.azure.cn",
                "AZUREUSGOVERNMENTCLOUD" => "vault.usgovcloudapi.net",
                other => return Err(invalid(format!("unknown azureEnvironment {other:?}"))),
            };
            format!("https://{name}.{suffix}")
        };
        let vault =
            url::Url::parse(&url).map_err(|e| invalid(format!("vaultName {name:?}: {e}")))?;
        Ok(KeyVaultStore {
            credential: Credential::from_metadata(md, None, Service::Vault)?,
            vault,
        })
    }

    async fn call(&self, url: url::Url) -> Result<tempest_http::Response, SecretError> {
        let req = request(Method::GET, url.as_str(), &[], "").map_err(SecretError::Backend)?;
        self.credential
            .send(req)
            .await
            .map_err(SecretError::Backend)
    }

    fn url(&self, path: &[&str]) -> Result<url::Url, SecretError> {
        let mut url = self.vault.clone();
        url.path_segments_mut()
            .map_err(|_| SecretError::Backend("the vault URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(path);
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION);
        Ok(url)
    }
}

/// Key Vault names secrets with letters, digits and hyphens only.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[async_trait]
impl SecretStore for KeyVaultStore {
    async fn get(
        &self,
        name: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Secret, SecretError> {
        if !valid_name(name) {
            // Nothing by that name can exist; asking would only earn a 400.
            return Err(SecretError::NotFound(name.to_owned()));
        }
        let mut path = vec!["secrets", name];
        if let Some(version) = metadata.get("version_id").filter(|v| !v.is_empty()) {
            path.push(version);
        }
        let resp = self.call(self.url(&path)?).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Err(SecretError::NotFound(name.to_owned())),
            s if s.is_success() => {
                let bundle: SecretBundle = serde_json::from_slice(resp.body())
                    .map_err(|e| SecretError::Backend(format!("Get Secret answer: {e}")))?;
                Ok(BTreeMap::from([(name.to_owned(), bundle.value)]))
            }
            _ => Err(SecretError::Backend(describe(&resp))),
        }
    }

    /// Bulk reads take every secret's latest version (`version_id` names one secret's).
    async fn bulk(
        &self,
        _metadata: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, Secret>, SecretError> {
        let mut names = Vec::new();
        let mut next = Some(self.url(&["secrets"])?);
        while let Some(url) = next.take() {
            let resp = self.call(url).await?;
            if !resp.status().is_success() {
                return Err(SecretError::Backend(describe(&resp)));
            }
            let page: SecretList = serde_json::from_slice(resp.body())
                .map_err(|e| SecretError::Backend(format!("Get Secrets answer: {e}")))?;
            names.extend(
                page.value
                    .into_iter()
                    .filter(|s| s.attributes.enabled)
                    .filter_map(|s| s.id.rsplit('/').next().map(str::to_owned)),
            );
            if let Some(link) = page.next_link.filter(|l| !l.is_empty()) {
                let link = url::Url::parse(&link)
                    .map_err(|e| SecretError::Backend(format!("nextLink {link:?}: {e}")))?;
                // The token goes only to the vault itself.
                if link.origin() != self.vault.origin() {
                    return Err(SecretError::Backend(format!(
                        "nextLink {link} leaves the vault"
                    )));
                }
                next = Some(link);
            }
        }
        let mut all = BTreeMap::new();
        let version = BTreeMap::new();
        for name in names {
            match self.get(&name, &version).await {
                Ok(secret) => {
                    all.insert(name, secret);
                }
                Err(SecretError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(all)
    }
}
