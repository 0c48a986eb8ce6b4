//! Pub/sub broker backends.

#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "aws")]
pub mod snssqs;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "azure")]
pub mod storagequeues;
