//! Dapr component implementations: one module per backend, and the registry that builds a
//! `Runtime` from Dapr Component YAML by Dapr's type names.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
pub mod metadata;
pub mod pubsub;
pub mod registry;
pub mod secrets;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod state;

pub use registry::{ComponentError, build_runtime};
