//! The `ingest` function's storage side: every accepted batch becomes one committed block.

use async_trait::async_trait;
use tempest_core::TenantId;
use tempest_traces::Span;
use tempest_traces::receivers::SpanSink;

use crate::store::Location;
use crate::writer;

/// Commits each batch as its own block before the receiver answers.
pub struct BlockSink {
    loc: Location,
}

impl BlockSink {
    /// A sink writing blocks to `loc`.
    pub fn new(loc: Location) -> Self {
        BlockSink { loc }
    }
}

#[async_trait]
impl SpanSink for BlockSink {
    async fn commit(&self, tenant: TenantId, spans: Vec<Span>) -> Result<(), String> {
        let meta = writer::write_block(&self.loc, &tenant, spans)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(m) = meta {
            tracing::debug!(tenant = %tenant, block = %m.block_id, spans = m.span_count, "block committed");
        }
        Ok(())
    }
}
