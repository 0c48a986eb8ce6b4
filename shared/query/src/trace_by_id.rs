//! Trace by ID: every fragment of one trace across the tenant's blocks, duplicates dropped.

use tempest_blocks::index::BlockIndex;
use tempest_blocks::reader;
use tempest_core::TenantId;
use tempest_traces::Span;

use crate::QueryError;
use crate::search::overlaps;
use crate::tempopb::Trace;

/// A found trace and what finding it read.
pub struct Found {
    /// Its spans, each once, in start-time order.
    pub spans: Vec<Span>,
    /// Bytes of the blocks read.
    pub inspected_bytes: u64,
}

/// Looks `trace_id` up in `tenant`'s blocks, only those overlapping `range` (Unix ns) when
/// given: the index (one listing while warm), then, concurrently, the blocks whose bloom filter
/// admits the trace, each with ranged reads of its footer and the row group holding the trace.
pub async fn find(
    index: &BlockIndex,
    tenant: &TenantId,
    trace_id: &[u8; 16],
    range: Option<(u64, u64)>,
) -> Result<Found, QueryError> {
    let blocks = index.blocks(tenant).await?;
    let candidates: Vec<_> = blocks
        .iter()
        .filter(|b| overlaps(&b.meta, range) && b.bloom.may_contain(trace_id))
        .collect();
    let loc = index.location();
    let reads = candidates
        .iter()
        .map(|b| reader::read_trace(loc, &b.meta, &b.footer, trace_id));
    let mut spans = Vec::new();
    let mut inspected_bytes = 0;
    for (found, b) in futures::future::join_all(reads)
        .await
        .into_iter()
        .zip(&candidates)
    {
        let found = found?;
        if !found.is_empty() {
            inspected_bytes += b.meta.data_size;
        }
        spans.extend(found);
    }
    Ok(Found {
        spans: dedupe(spans),
        inspected_bytes,
    })
}

/// Drops repeated spans (overlapping blocks while a compaction or a retried write leaves two
/// copies) and orders the rest by start time. A span is identified as Tempo does: by span id
/// and kind (Zipkin's shared client/server spans share an id), then start time.
pub fn dedupe(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.start_unix_nano, s.span_id, s.kind as i32));
    spans.dedup_by_key(|s| (s.start_unix_nano, s.span_id, s.kind as i32));
    spans
}

/// The spans as `tempopb.Trace`.
pub fn to_trace(spans: &[Span]) -> Trace {
    Trace {
        resource_spans: tempest_traces::otlp::encode_request(spans).resource_spans,
    }
}
