//! `secretstores.aws.secretmanager`: AWS Secrets Manager as Dapr reads it. A secret's value is
//! its `SecretString`, returned under the secret's own name; `version_id` and `version_stage`
//! request metadata pick a version. Bulk reads list every secret and read each.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use tempest_building_blocks::secrets::{Secret, SecretError, SecretStore};

use crate::ComponentError;
use crate::aws::{describe, sdk_config};
use crate::metadata::Metadata;

/// AWS Secrets Manager as a secret store.
pub struct SecretsManagerStore {
    client: Client,
}

impl SecretsManagerStore {
    /// Connects from Dapr's AWS metadata (`region`, `endpoint`, `accessKey`, `secretKey`,
    /// `sessionToken`).
    pub async fn connect(md: &Metadata) -> Result<Self, ComponentError> {
        Ok(SecretsManagerStore {
            client: Client::new(&sdk_config(md).await?),
        })
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn get(
        &self,
        name: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Secret, SecretError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(name)
            .set_version_id(metadata.get("version_id").cloned())
            .set_version_stage(metadata.get("version_stage").cloned())
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception())
                {
                    SecretError::NotFound(name.to_owned())
                } else {
                    SecretError::Backend(describe(&e))
                }
            })?;
        Ok(BTreeMap::from([(
            name.to_owned(),
            out.secret_string.unwrap_or_default(),
        )]))
    }

    async fn bulk(
        &self,
        metadata: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, Secret>, SecretError> {
        let mut names = Vec::new();
        let mut pages = self.client.list_secrets().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| SecretError::Backend(describe(&e)))?;
            names.extend(
                page.secret_list
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|s| s.name),
            );
        }
        let mut all = BTreeMap::new();
        for name in names {
            match self.get(&name, metadata).await {
                Ok(secret) => {
                    all.insert(name, secret);
                }
                // Deleted between the listing and the read.
                Err(SecretError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(all)
    }
}
