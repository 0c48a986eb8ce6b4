//! The state building block: the `StateStore` trait every backend implements, and the request
//! types the Dapr state API is decoded into.

pub mod query;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

pub use query::{Query, QueryResult};

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// The value exactly as saved: JSON text.
    pub value: Bytes,
    /// Opaque version; every store returns one.
    pub etag: String,
    /// When the value expires, if it has a TTL.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Dapr's `options.concurrency`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Concurrency {
    /// Without an ETag the write succeeds only if the key does not exist.
    FirstWrite,
    /// Without an ETag the write always succeeds (Dapr's default).
    #[default]
    LastWrite,
}

/// Save one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetRequest {
    /// Full store key (prefix applied).
    pub key: String,
    /// JSON text.
    pub value: Bytes,
    /// If present, the write succeeds only when the stored ETag matches.
    pub etag: Option<String>,
    /// First-write or last-write.
    pub concurrency: Concurrency,
    /// Time to live in seconds; `None` stores without expiry (and clears an existing TTL).
    pub ttl_seconds: Option<u64>,
}

/// Delete one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    /// Full store key (prefix applied).
    pub key: String,
    /// If present, the delete succeeds only when the stored ETag matches.
    pub etag: Option<String>,
    /// First-write or last-write.
    pub concurrency: Concurrency,
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionOp {
    /// Insert or update.
    Upsert(SetRequest),
    /// Delete.
    Delete(DeleteRequest),
}

/// Capabilities reported in `/v1.0/metadata`, with Dapr's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// ETags / optimistic concurrency.
    Etag,
    /// Multi-key transactions.
    Transactional,
    /// The state query API.
    QueryApi,
    /// Per-item TTL.
    Ttl,
}

impl Feature {
    /// Dapr's capability string.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Etag => "ETAG",
            Feature::Transactional => "TRANSACTIONAL",
            Feature::QueryApi => "QUERY_API",
            Feature::Ttl => "TTL",
        }
    }
}

/// Why a state operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The ETag (or first-write) condition did not hold.
    #[error("possible etag mismatch. error from state store: {0}")]
    EtagMismatch(String),
    /// The ETag is not of the form this store uses.
    #[error("invalid etag value: {0}")]
    EtagInvalid(String),
    /// The store cannot do this operation.
    #[error("{0}")]
    NotSupported(String),
    /// The request is not valid for this store.
    #[error("{0}")]
    InvalidRequest(String),
    /// The backend failed.
    #[error("{0}")]
    Backend(String),
}

impl StateError {
    /// A backend failure from any displayable error.
    pub fn backend(e: impl std::fmt::Display) -> Self {
        StateError::Backend(e.to_string())
    }
}

impl From<String> for StateError {
    fn from(message: String) -> Self {
        StateError::Backend(message)
    }
}

/// A state backend. Keys arrive fully prefixed; values are JSON text stored byte for byte.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Capabilities of this backend.
    fn features(&self) -> &'static [Feature];

    /// Reads one key; `None` when absent or expired.
    async fn get(&self, key: &str) -> Result<Option<StateEntry>, StateError>;

    /// Writes one key.
    async fn set(&self, req: SetRequest) -> Result<(), StateError>;

    /// Deletes one key; deleting an absent key without an ETag succeeds.
    async fn delete(&self, req: DeleteRequest) -> Result<(), StateError>;

    /// Applies every operation or none, in order.
    async fn transact(&self, ops: Vec<TransactionOp>) -> Result<(), StateError> {
        let _ = ops;
        Err(StateError::NotSupported(
            "state store does not support transactions".into(),
        ))
    }

    /// Every live entry whose key starts with `prefix`, for the query API.
    async fn scan(&self, prefix: &str) -> Result<Vec<(String, StateEntry)>, StateError> {
        let _ = prefix;
        Err(StateError::NotSupported(
            "state store does not support querying".into(),
        ))
    }
}

/// Parses Dapr's `ttlInSeconds` metadata: absent or `-1` means no TTL.
pub fn parse_ttl(value: Option<&str>) -> Result<Option<u64>, StateError> {
    let Some(raw) = value else { return Ok(None) };
    let secs: i64 = raw.trim().parse().map_err(|_| {
        StateError::InvalidRequest(format!(
            "incorrect value for metadata 'ttlInSeconds': {raw:?} is not an integer"
        ))
    })?;
    match secs {
        -1 => Ok(None),
        s if s < -1 => Err(StateError::InvalidRequest(format!(
            "incorrect value for metadata 'ttlInSeconds': {s} (must be -1 or greater)"
        ))),
        s => Ok(Some(s as u64)),
    }
}

/// The expiry instant for a TTL starting now.
pub fn expiry_from_ttl(ttl_seconds: Option<u64>) -> Option<DateTime<Utc>> {
    ttl_seconds
        .map(|s| Utc::now() + chrono::Duration::seconds(s.min(i64::MAX as u64 / 2000) as i64))
}
