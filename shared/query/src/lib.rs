//! Tempo's query side as a library: the HTTP API Grafana's Tempo data source calls (trace by
//! ID, TraceQL search, tag names and values), over the blocks in object storage. The `query`
//! function serves it; search fans out into jobs (`search-worker` on the cloud hosts).

pub mod json;
pub mod params;
pub mod pushdown;
pub mod router;
pub mod search;
pub mod tags;
pub mod tempopb;
pub mod trace_by_id;
pub mod worker;

pub use async_trait::async_trait;
pub use router::{QueryApi, router};

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request is malformed (400, message shown to the user).
    #[error("{0}")]
    BadRequest(String),
    /// Reading blocks failed (500).
    #[error("reading blocks: {0}")]
    Storage(#[from] tempest_blocks::BlockError),
    /// A `search-worker` failed or answered something unreadable (500).
    #[error("search worker: {0}")]
    Worker(String),
}
