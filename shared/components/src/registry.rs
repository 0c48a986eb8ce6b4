//! Builds a `Runtime` from configuration: the resources folder (or Dapr's default component
//! names on the embedded stores), secret references resolved, declarative subscriptions expanded.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tempest_building_blocks::pubsub::{Broker, SubscriptionKind};
use tempest_building_blocks::resources::{
    ComponentSpec, ResourceError, Resources, scalar_to_string,
};
use tempest_building_blocks::runtime::{
    KeyPrefix, PubSubComponent, SecretComponent, StateComponent,
};
use tempest_building_blocks::secrets::SecretStore;
use tempest_building_blocks::state::StateStore;
use tempest_building_blocks::{Runtime, pubsub::routing};
use tempest_core::Config;

use crate::metadata::Metadata;
#[cfg(feature = "sqlite")]
use crate::sqlite::Db;

/// Why components could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// The resources folder could not be read.
    #[error(transparent)]
    Resources(#[from] tempest_building_blocks::resources::ResourceError),
    /// A component's configuration is wrong.
    #[error("component {component}: {message}")]
    Invalid {
        /// Component name.
        component: String,
        /// What was wrong.
        message: String,
    },
    /// A component type Tempest does not provide.
    #[error("component {component}: unsupported type {type_name} (supported: {supported})")]
    UnsupportedType {
        /// Component name.
        component: String,
        /// Its type.
        type_name: String,
        /// What is supported for that building block, in this build.
        supported: String,
    },
    /// A backend could not be reached or initialised.
    #[error("component {component}: cannot initialise: {message}")]
    Init {
        /// Component name.
        component: String,
        /// Cause.
        message: String,
    },
}

/// Every component type of a building block, and whether this build has it.
type Types = &'static [(&'static str, bool)];

const STATE_TYPES: Types = &[
    ("state.sqlite", cfg!(feature = "sqlite")),
    ("state.in-memory", cfg!(feature = "sqlite")),
    ("state.redis", cfg!(feature = "redis")),
    ("state.postgresql", cfg!(feature = "postgres")),
    ("state.aws.dynamodb", cfg!(feature = "aws")),
    ("state.azure.tablestorage", cfg!(feature = "azure")),
];
const PUBSUB_TYPES: Types = &[
    ("pubsub.sqlite", cfg!(feature = "sqlite")),
    ("pubsub.in-memory", cfg!(feature = "sqlite")),
    ("pubsub.redis", cfg!(feature = "redis")),
    ("pubsub.aws.snssqs", cfg!(feature = "aws")),
    ("pubsub.azure.storagequeues", cfg!(feature = "azure")),
];
const SECRET_TYPES: Types = &[
    ("secretstores.local.env", true),
    ("secretstores.local.file", true),
    ("secretstores.aws.secretmanager", cfg!(feature = "aws")),
    ("secretstores.azure.keyvault", cfg!(feature = "azure")),
];

/// The types of `types` this build has, comma-separated.
fn built(types: Types) -> String {
    types
        .iter()
        .filter(|(_, here)| *here)
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A type that is not one of `types` in this build; one this build lacks says so.
fn unsupported(spec: &ComponentSpec, types: Types) -> ComponentError {
    let missing = types
        .iter()
        .any(|(name, here)| !here && *name == spec.type_name);
    ComponentError::UnsupportedType {
        component: spec.name.clone(),
        type_name: if missing {
            format!(
                "{} (not in this build: its driver needs native sockets or C)",
                spec.type_name
            )
        } else {
            spec.type_name.clone()
        },
        supported: built(types),
    }
}

/// The components `tempest serve` provides when no resources folder is given: Dapr's default
/// names on the embedded durable stores in the data folder (none in a build without them).
#[cfg(feature = "sqlite")]
pub fn default_resources(data_dir: &Path) -> Resources {
    let path = |f: &str| data_dir.join(f).to_string_lossy().into_owned();
    Resources {
        components: vec![
            ComponentSpec::new(
                "statestore",
                "state.sqlite",
                &[("connectionString", &path("state.db"))],
            ),
            ComponentSpec::new(
                "pubsub",
                "pubsub.sqlite",
                &[("connectionString", &path("pubsub.db"))],
            ),
        ],
        ..Resources::default()
    }
}

/// Without the embedded stores there are no default components: the building blocks answer
/// that no store is configured, as Dapr does.
#[cfg(not(feature = "sqlite"))]
pub fn default_resources(_data_dir: &Path) -> Resources {
    Resources::default()
}

#[cfg(feature = "sqlite")]
fn init_err(component: &str) -> impl Fn(String) -> ComponentError + '_ {
    move |message| ComponentError::Init {
        component: component.to_owned(),
        message,
    }
}

#[cfg(feature = "sqlite")]
/// SQLite `connectionString`: a path, optionally `file:` prefixed and with `?` options (ignored).
fn sqlite_db(md: &Metadata, data_dir: &Path, default_file: &str) -> Result<Db, ComponentError> {
    let raw = md.get("connectionString").unwrap_or(default_file);
    let raw = raw.strip_prefix("file:").unwrap_or(raw);
    let raw = raw.split('?').next().unwrap_or(raw);
    let path = if raw == ":memory:" {
        return Db::in_memory().map_err(|e| init_err(&md.component)(e.to_string()));
    } else if Path::new(raw).is_absolute() {
        Path::new(raw).to_path_buf()
    } else {
        data_dir.join(raw)
    };
    Db::open(&path).map_err(|e| init_err(&md.component)(format!("{}: {e}", path.display())))
}

// Only the embedded stores take the data folder (and the redelivery interval, below).
#[cfg_attr(not(feature = "sqlite"), allow(unused_variables))]
async fn state_store(
    spec: &ComponentSpec,
    md: &Metadata,
    data_dir: &Path,
) -> Result<Arc<dyn StateStore>, ComponentError> {
    Ok(match spec.type_name.as_str() {
        #[cfg(feature = "sqlite")]
        "state.sqlite" => {
            use crate::state::sqlite::SqliteStateStore;
            let err = init_err(&spec.name);
            let db = sqlite_db(md, data_dir, "state.db")?;
            Arc::new(
                SqliteStateStore::new(db, md.get("tableName").unwrap_or("state"))
                    .map_err(|e| err(e.to_string()))?,
            )
        }
        #[cfg(feature = "sqlite")]
        "state.in-memory" => {
            use crate::state::sqlite::SqliteStateStore;
            let err = init_err(&spec.name);
            let db = Db::in_memory().map_err(|e| err(e.to_string()))?;
            Arc::new(SqliteStateStore::new(db, "state").map_err(|e| err(e.to_string()))?)
        }
        #[cfg(feature = "redis")]
        "state.redis" => Arc::new(crate::state::redis::RedisStateStore::connect(md).await?),
        #[cfg(feature = "postgres")]
        "state.postgresql" | "state.postgres" => {
            Arc::new(crate::state::postgres::PostgresStateStore::connect(md).await?)
        }
        #[cfg(feature = "aws")]
        "state.aws.dynamodb" => {
            Arc::new(crate::state::dynamodb::DynamoStateStore::connect(md).await?)
        }
        #[cfg(feature = "azure")]
        "state.azure.tablestorage" => {
            Arc::new(crate::state::tablestorage::TableStateStore::connect(md).await?)
        }
        _ => return Err(unsupported(spec, STATE_TYPES)),
    })
}

#[cfg_attr(not(feature = "sqlite"), allow(unused_variables))]
async fn broker(
    spec: &ComponentSpec,
    md: &Metadata,
    data_dir: &Path,
) -> Result<Arc<dyn Broker>, ComponentError> {
    // Dapr's Redis component redelivers after 60 s; `redeliverInterval` overrides it everywhere.
    let redeliver = md.duration("redeliverInterval", Duration::from_secs(60))?;
    Ok(match spec.type_name.as_str() {
        #[cfg(feature = "sqlite")]
        "pubsub.sqlite" | "pubsub.in-memory" => {
            let err = init_err(&spec.name);
            let db = if spec.type_name == "pubsub.sqlite" {
                sqlite_db(md, data_dir, "pubsub.db")?
            } else {
                Db::in_memory().map_err(|e| err(e.to_string()))?
            };
            Arc::new(
                crate::pubsub::sqlite::SqliteBroker::new(db, redeliver)
                    .map_err(|e| err(e.to_string()))?,
            )
        }
        #[cfg(feature = "redis")]
        "pubsub.redis" => Arc::new(crate::pubsub::redis::RedisBroker::connect(md).await?),
        #[cfg(feature = "aws")]
        "pubsub.aws.snssqs" => Arc::new(crate::pubsub::snssqs::SnsSqsBroker::connect(md).await?),
        #[cfg(feature = "azure")]
        "pubsub.azure.storagequeues" => {
            Arc::new(crate::pubsub::storagequeues::StorageQueueBroker::connect(md).await?)
        }
        _ => return Err(unsupported(spec, PUBSUB_TYPES)),
    })
}

async fn secret_store(
    spec: &ComponentSpec,
    md: &Metadata,
) -> Result<Arc<dyn SecretStore>, ComponentError> {
    use crate::secrets::{env::EnvSecretStore, file::FileSecretStore};
    Ok(match spec.type_name.as_str() {
        "secretstores.local.env" => Arc::new(EnvSecretStore::new(md.get("prefix").unwrap_or(""))),
        "secretstores.local.file" => Arc::new(FileSecretStore::new(
            md.required("secretsFile")?.into(),
            md.get("nestedSeparator").unwrap_or(":"),
            md.flag("multiValued", false)?,
        )),
        #[cfg(feature = "aws")]
        "secretstores.aws.secretmanager" => {
            Arc::new(crate::secrets::aws::SecretsManagerStore::connect(md).await?)
        }
        #[cfg(feature = "azure")]
        "secretstores.azure.keyvault" => {
            Arc::new(crate::secrets::keyvault::KeyVaultStore::connect(md).await?)
        }
        _ => return Err(unsupported(spec, SECRET_TYPES)),
    })
}

/// Resolves a component's metadata, reading `secretKeyRef`s from its `auth.secretstore`
/// (or the only secret store, when there is exactly one).
async fn resolve_metadata(
    spec: &ComponentSpec,
    secrets: &BTreeMap<String, SecretComponent>,
) -> Result<Metadata, ComponentError> {
    let invalid = |message: String| ComponentError::Invalid {
        component: spec.name.clone(),
        message,
    };
    let mut values = BTreeMap::new();
    for item in &spec.metadata {
        let value = match (&item.value, &item.secret_key_ref) {
            (_, Some(r)) => {
                let store_name = spec
                    .auth_secret_store
                    .clone()
                    .or_else(|| {
                        (secrets.len() == 1)
                            .then(|| secrets.keys().next().cloned())
                            .flatten()
                    })
                    .ok_or_else(|| {
                        invalid(format!(
                            "metadata {:?} uses secretKeyRef but auth.secretstore is not set",
                            item.name
                        ))
                    })?;
                let store = secrets.get(&store_name).ok_or_else(|| {
                    invalid(format!(
                        "auth.secretstore {store_name:?} is not a loaded secret store"
                    ))
                })?;
                let secret = store
                    .store
                    .get(&r.name, &BTreeMap::new())
                    .await
                    .map_err(|e| invalid(format!("secretKeyRef {}: {e}", r.name)))?;
                let key = r.key.clone().unwrap_or_else(|| r.name.clone());
                secret
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| invalid(format!("secret {} has no key {key:?}", r.name)))?
            }
            (Some(v), None) => scalar_to_string(v),
            (None, None) => String::new(),
        };
        values.insert(item.name.clone(), value);
    }
    Ok(Metadata {
        component: spec.name.clone(),
        values,
    })
}

/// Builds the runtime for `config`: loads resources, connects every component, expands
/// declarative subscriptions to the declared apps.
pub async fn build_runtime(config: &Config) -> Result<Runtime, ComponentError> {
    let resources = match (&config.resources_path, &config.components) {
        (None, None) => default_resources(&config.data_dir),
        (dir, inline) => {
            let mut resources = match dir {
                Some(dir) => Resources::load(dir)?,
                None => Resources::default(),
            };
            if let Some(text) = inline {
                resources
                    .add_yaml(text)
                    .map_err(|message| ResourceError::Invalid {
                        path: "TEMPEST_COMPONENTS".into(),
                        message,
                    })?;
            }
            resources
        }
    };
    let mut rt = Runtime::new(&config.app_id);
    rt.apps = config.apps.clone();
    rt.api_token = config.dapr.api_token.clone();
    rt.app_api_token = config.dapr.app_api_token.clone();
    rt.max_body_size = config.dapr.max_body_size;

    // Secret stores first: other components may reference them.
    for spec in resources
        .components
        .iter()
        .filter(|c| c.kind() == "secretstores")
    {
        let md = resolve_metadata(spec, &rt.secrets).await?;
        let store = secret_store(spec, &md).await?;
        let scope = resources
            .secret_scopes
            .get(&spec.name)
            .cloned()
            .unwrap_or_default();
        rt.secrets.insert(
            spec.name.clone(),
            SecretComponent {
                type_name: spec.type_name.clone(),
                version: spec.version.clone(),
                store,
                scope,
            },
        );
    }
    for spec in &resources.components {
        if !spec.scopes.is_empty() {
            tracing::info!(component = %spec.name, "component scopes limit apps in Dapr; Tempest serves every declared app");
        }
        match spec.kind() {
            "state" => {
                let md = resolve_metadata(spec, &rt.secrets).await?;
                let store = state_store(spec, &md, &config.data_dir).await?;
                let key_prefix = KeyPrefix::parse(md.get("keyPrefix"));
                rt.state.insert(
                    spec.name.clone(),
                    StateComponent {
                        type_name: spec.type_name.clone(),
                        version: spec.version.clone(),
                        store,
                        key_prefix,
                    },
                );
            }
            "pubsub" => {
                let md = resolve_metadata(spec, &rt.secrets).await?;
                let broker = broker(spec, &md, &config.data_dir).await?;
                let delivery_retry = resources.pubsub_retries.get(&spec.name).cloned();
                rt.pubsub.insert(
                    spec.name.clone(),
                    PubSubComponent {
                        type_name: spec.type_name.clone(),
                        version: spec.version.clone(),
                        broker,
                        delivery_retry,
                    },
                );
            }
            "secretstores" => {}
            other => {
                return Err(ComponentError::UnsupportedType {
                    component: spec.name.clone(),
                    type_name: format!("{other} ({})", spec.type_name),
                    supported: "state.*, pubsub.*, secretstores.*".into(),
                });
            }
        }
    }
    let mut subs = Vec::new();
    for (spec, scopes) in &resources.subscriptions {
        let apps: Vec<&String> = if scopes.is_empty() {
            config.apps.keys().collect()
        } else {
            scopes.iter().collect()
        };
        for app in apps {
            if let Some(sub) = spec
                .clone()
                .into_subscription(app, SubscriptionKind::Declarative)
            {
                routing::validate(&sub).map_err(|e| ComponentError::Invalid {
                    component: format!("subscription {}", sub.topic),
                    message: e.to_string(),
                })?;
                subs.push(sub);
            }
        }
    }
    rt.add_subscriptions(subs);
    Ok(rt)
}
