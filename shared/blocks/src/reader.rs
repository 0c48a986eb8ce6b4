//! Reads committed blocks: list a tenant's blocks, read one block's spans, find a trace.

use std::collections::HashSet;

use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tempest_core::TenantId;
use tempest_traces::Span;

use crate::BlockError;
use crate::bloom::Bloom;
use crate::meta::BlockMeta;
use crate::schema;
use crate::store::Location;

fn corrupt(block: &str, message: impl std::fmt::Display) -> BlockError {
    BlockError::Corrupt {
        block: block.to_owned(),
        message: message.to_string(),
    }
}

/// Every committed block of `tenant` (folders without `meta.json` are not blocks yet).
pub async fn list_blocks(loc: &Location, tenant: &TenantId) -> Result<Vec<BlockMeta>, BlockError> {
    let listing = loc
        .store
        .list_with_delimiter(Some(&loc.path(&[tenant.as_str()])))
        .await?;
    let mut metas = Vec::new();
    for dir in listing.common_prefixes {
        let meta_path = dir.child("meta.json");
        match loc.store.get(&meta_path).await {
            Ok(got) => {
                let bytes = got.bytes().await?;
                let meta: BlockMeta =
                    serde_json::from_slice(&bytes).map_err(|e| corrupt(meta_path.as_ref(), e))?;
                metas.push(meta);
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    metas.sort_by(|a, b| {
        (a.start_time_unix_nano, &a.block_id).cmp(&(b.start_time_unix_nano, &b.block_id))
    });
    Ok(metas)
}

/// Every span of a block, in stored order.
pub async fn read_spans(loc: &Location, meta: &BlockMeta) -> Result<Vec<Span>, BlockError> {
    let path = loc.path(&[&meta.tenant, &meta.block_id, "data.parquet"]);
    let data: Bytes = loc.store.get(&path).await?.bytes().await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)?.build()?;
    let mut spans = Vec::with_capacity(meta.span_count as usize);
    for batch in reader {
        spans.extend(schema::from_batch(&batch?).map_err(|e| corrupt(&meta.block_id, e))?);
    }
    Ok(spans)
}

/// Whether the block's bloom filter admits `trace_id`.
pub async fn may_contain(
    loc: &Location,
    meta: &BlockMeta,
    trace_id: &[u8; 16],
) -> Result<bool, BlockError> {
    let path = loc.path(&[&meta.tenant, &meta.block_id, "bloom"]);
    let bytes = loc.store.get(&path).await?.bytes().await?;
    Ok(Bloom::from_bytes(&bytes)
        .map_err(|e| corrupt(&meta.block_id, e))?
        .may_contain(trace_id))
}

/// All spans of one trace across the tenant's blocks, each span once (blocks may overlap while
/// a retried write or a compaction leaves two copies), in start-time order.
pub async fn find_trace(
    loc: &Location,
    tenant: &TenantId,
    trace_id: &[u8; 16],
) -> Result<Vec<Span>, BlockError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for meta in list_blocks(loc, tenant).await? {
        if !may_contain(loc, &meta, trace_id).await? {
            continue;
        }
        for span in read_spans(loc, &meta).await? {
            if &span.trace_id == trace_id
                && seen.insert((span.span_id, span.kind as i32, span.start_unix_nano))
            {
                out.push(span);
            }
        }
    }
    out.sort_by_key(|a| (a.start_unix_nano, a.span_id));
    Ok(out)
}

/// The tenants that have data under this location.
pub async fn list_tenants(loc: &Location) -> Result<Vec<String>, BlockError> {
    let prefix = (!loc.prefix.as_ref().is_empty()).then_some(&loc.prefix);
    let listing = loc.store.list_with_delimiter(prefix).await?;
    Ok(listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_owned))
        .collect())
}
