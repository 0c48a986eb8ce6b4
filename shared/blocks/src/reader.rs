//! Reads committed blocks: list a tenant's blocks, read one block's spans, find a trace.

use object_store::ObjectStoreExt;
use std::collections::HashSet;

use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tempest_core::TenantId;
use tempest_traces::Span;

use crate::BlockError;
use crate::bloom::Bloom;
use crate::listing::{self, BLOOM, DATA, META, TenantListing, block_path};
use crate::meta::BlockMeta;
use crate::scan::Footer;
use crate::schema;
use crate::store::Location;

pub(crate) fn corrupt(block: &str, message: impl std::fmt::Display) -> BlockError {
    BlockError::Corrupt {
        block: block.to_owned(),
        message: message.to_string(),
    }
}

/// The top level of a tenant's folder: its block folders and its tenant index object.
pub struct TenantRoot {
    /// Block folder names, committed or not.
    pub block_ids: Vec<String>,
    /// The tenant index object's listing entry (its version), if there is one.
    pub index: Option<object_store::ObjectMeta>,
}

/// The block folders of `tenant` and its index object's version: one listing request, one
/// entry per block.
pub async fn list_tenant_root(loc: &Location, tenant: &TenantId) -> Result<TenantRoot, BlockError> {
    let listing = loc
        .store
        .list_with_delimiter(Some(&loc.path(&[tenant.as_str()])))
        .await?;
    Ok(TenantRoot {
        block_ids: listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename())
            .filter(|name| uuid::Uuid::parse_str(name).is_ok())
            .map(str::to_owned)
            .collect(),
        index: listing
            .objects
            .into_iter()
            .find(|o| o.location.filename() == Some(crate::tenant_index::INDEX)),
    })
}

/// A block's `meta.json`; `None` while the block is not committed.
pub async fn read_meta(
    loc: &Location,
    tenant: &TenantId,
    block_id: &str,
) -> Result<Option<BlockMeta>, BlockError> {
    loc.read_json(&block_path(loc, tenant.as_str(), block_id, META))
        .await
}

/// Every block of `tenant` readers see (committed, not marked compacted, not replaced by
/// another such block), oldest first.
pub async fn list_blocks(loc: &Location, tenant: &TenantId) -> Result<Vec<BlockMeta>, BlockError> {
    let listing = TenantListing::of(loc, tenant).await?;
    let mut metas = Vec::new();
    for id in listing.live() {
        metas.extend(read_meta(loc, tenant, id).await?);
    }
    metas.sort_by(|a, b| {
        (a.start_time_unix_nano, &a.block_id).cmp(&(b.start_time_unix_nano, &b.block_id))
    });
    Ok(listing::visible(&metas, |m| m, std::iter::empty())
        .into_iter()
        .cloned()
        .collect())
}

/// Every span of a block, in stored order.
pub async fn read_spans(loc: &Location, meta: &BlockMeta) -> Result<Vec<Span>, BlockError> {
    let path = block_path(loc, &meta.tenant, &meta.block_id, DATA);
    let data: Bytes = loc.store.get(&path).await?.bytes().await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)?.build()?;
    let mut spans = Vec::with_capacity(meta.span_count as usize);
    for batch in reader {
        spans.extend(schema::from_batch(&batch?).map_err(|e| corrupt(&meta.block_id, e))?);
    }
    Ok(spans)
}

/// The spans of one trace in a block, reading only what is needed: the footer (one ranged
/// read, unless `footer` holds it already), then the row groups whose trace-id statistics
/// admit the trace (one ranged read each, coalesced).
pub async fn read_trace(
    loc: &Location,
    meta: &BlockMeta,
    footer: &Footer,
    trace_id: &[u8; 16],
) -> Result<Vec<Span>, BlockError> {
    use arrow_array::Array as _;
    use futures::TryStreamExt;
    use parquet::file::statistics::Statistics;
    let builder = crate::scan::open(loc, meta, footer).await?;
    let column = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.name() == "trace_id")
        .ok_or_else(|| corrupt(&meta.block_id, "no trace_id column"))?;
    let groups: Vec<usize> = builder
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, rg)| match rg.column(column).statistics() {
            Some(Statistics::FixedLenByteArray(st)) => match (st.min_opt(), st.max_opt()) {
                (Some(min), Some(max)) => {
                    min.data() <= trace_id.as_slice() && trace_id.as_slice() <= max.data()
                }
                _ => true,
            },
            _ => true,
        })
        .map(|(i, _)| i)
        .collect();
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let batches: Vec<_> = builder
        .with_row_groups(groups)
        .build()?
        .try_collect()
        .await?;
    let mut spans = Vec::new();
    for batch in &batches {
        // Rows are sorted by trace id: the trace is one contiguous run, found by binary search,
        // and only its rows are converted (their JSON columns parsed).
        let ids = batch
            .column_by_name("trace_id")
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<arrow_array::FixedSizeBinaryArray>()
            })
            .ok_or_else(|| corrupt(&meta.block_id, "trace_id column"))?;
        let first = partition_point(ids.len(), |i| ids.value(i) < trace_id.as_slice());
        let end = partition_point(ids.len(), |i| ids.value(i) <= trace_id.as_slice());
        if first < end {
            spans.extend(
                schema::from_batch(&batch.slice(first, end - first))
                    .map_err(|e| corrupt(&meta.block_id, e))?,
            );
        }
    }
    Ok(spans)
}

/// The first index in `0..len` where `before` turns false (`before` is true, then false).
fn partition_point(len: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// A block's bloom filter.
pub async fn read_bloom(loc: &Location, meta: &BlockMeta) -> Result<Bloom, BlockError> {
    let path = block_path(loc, &meta.tenant, &meta.block_id, BLOOM);
    let bytes = loc.store.get(&path).await?.bytes().await?;
    Bloom::from_bytes(&bytes).map_err(|e| corrupt(&meta.block_id, e))
}

/// Whether the block's bloom filter admits `trace_id`.
pub async fn may_contain(
    loc: &Location,
    meta: &BlockMeta,
    trace_id: &[u8; 16],
) -> Result<bool, BlockError> {
    Ok(read_bloom(loc, meta).await?.may_contain(trace_id))
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
