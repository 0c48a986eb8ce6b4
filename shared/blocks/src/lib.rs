//! Trace blocks in object storage, as Tempo lays them out: `<tenant>/<block-id>/` holding
//! `data.parquet` (one row per span, sorted by trace id), `bloom` (trace-id bloom filter) and
//! `meta.json`, written last: a block without `meta.json` does not exist for readers.

pub mod attrs;
pub mod bloom;
pub mod compact;
pub mod data_file;
pub mod folder;
mod footer;
pub mod index;
pub mod ingest;
pub mod listing;
pub mod malloc;
pub mod marks;
pub mod meta;
pub mod reader;
pub mod scan;
pub mod schema;
pub mod store;
pub mod tenant_index;
#[cfg(target_arch = "wasm32")]
pub mod wasi_http;
pub mod writer;

pub use meta::{BlockMeta, CompactedMeta};

/// Why a block operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The object store failed.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// Parquet encoding or decoding failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Arrow failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A stored object is not what the format says.
    #[error("corrupt block {block}: {message}")]
    Corrupt {
        /// Block id or path.
        block: String,
        /// What is wrong.
        message: String,
    },
    /// A compactor's lease on a tenant ran out before its work was done; it stops without
    /// changing what readers see.
    #[error("compaction lease of tenant {tenant} expired")]
    LeaseExpired {
        /// The tenant.
        tenant: String,
    },
    /// The storage URL is not usable.
    #[error("invalid storage URL {url:?}: {message}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
}
