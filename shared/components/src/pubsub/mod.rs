//! Pub/sub broker backends.

#[cfg(feature = "redis")]
pub mod redis;
pub mod sqlite;
