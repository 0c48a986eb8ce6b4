//! `meta.json`: what a block holds. Written last; its presence is what makes a block exist.

use serde::{Deserialize, Serialize};

/// The block format this crate writes.
pub const FORMAT: &str = "tempest-parquet-v2";

/// A block's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// Format and version of the data file.
    pub format: String,
    /// Block id (a UUID, derived from the content so a retried write lands on the same block).
    pub block_id: String,
    /// Tenant.
    pub tenant: String,
    /// Earliest span start, Unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// Latest span end, Unix nanoseconds.
    pub end_time_unix_nano: u64,
    /// Spans in the block.
    pub span_count: u64,
    /// Distinct traces in the block.
    pub trace_count: u64,
    /// Size of `data.parquet` in bytes.
    pub data_size: u64,
    /// Size of `bloom` in bytes.
    pub bloom_size: u64,
    /// Parquet row groups.
    pub row_groups: u64,
    /// 0 for blocks written by ingest; compaction raises it.
    pub compaction_level: u32,
    /// When the block was written (RFC 3339).
    pub created_at: String,
    /// Span attributes stored in their own columns instead of the generic one.
    pub dedicated_columns: Vec<String>,
    /// Attributes with a dedicated column of which this block also stores some values in the
    /// generic attribute lists (a value of another type, or a repeated key), written as
    /// `span.<key>` or `resource.service.name`. Readers that filter on a dedicated column
    /// consult the generic list only for these. `None` (blocks written before it was
    /// recorded): any may be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic_dedicated: Option<Vec<String>>,
    /// The blocks this one was compacted from. Readers hide a live block that another live
    /// block replaces, so a crash between committing a compaction's output and marking its
    /// inputs never shows a span twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
}

/// `meta.compacted.json`: the meta of a block that compaction or retention has superseded,
/// with when that happened; the block is deleted a grace period later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactedMeta {
    /// The block's meta as it was.
    #[serde(flatten)]
    pub meta: BlockMeta,
    /// When it was marked, Unix milliseconds.
    pub compacted_at_unix_ms: u64,
}

impl BlockMeta {
    /// Whether some values of `attribute` (`span.<key>`, `resource.service.name`) may be in
    /// the generic attribute lists rather than in its dedicated column.
    pub fn has_generic(&self, attribute: &str) -> bool {
        self.generic_dedicated
            .as_ref()
            .is_none_or(|keys| keys.iter().any(|k| k == attribute))
    }
}
