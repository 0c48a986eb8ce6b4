//! Writes a batch of spans as one committed block: data, then bloom, then `meta.json`.

use object_store::ObjectStoreExt;
use std::collections::BTreeSet;

use bytes::Bytes;
use object_store::PutPayload;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use tempest_core::TenantId;
use tempest_traces::Span;

use crate::BlockError;
use crate::bloom::Bloom;
use crate::footer;
use crate::listing::{BLOOM, DATA, META, block_path};
use crate::meta::{BlockMeta, FORMAT};
use crate::schema;
use crate::store::Location;

/// Spans per Parquet row group: small enough for range reads of one group, large enough
/// for good compression.
pub const ROW_GROUP_SPANS: usize = 64 * 1024;

/// A 128-bit content hash (XXH3-128, a fixed published algorithm) of what `feed` is given, as
/// a block id: the same content always names the same block. (A byte-at-a-time hash here was
/// ~2% of an ingest call, BENCHMARKS.md.)
pub(crate) fn content_id(fill: impl FnOnce(&mut dyn FnMut(&[u8]))) -> String {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    fill(&mut |bytes: &[u8]| hasher.update(bytes));
    uuid::Builder::from_random_bytes(hasher.digest128().to_be_bytes())
        .into_uuid()
        .to_string()
}

/// A block id derived from the tenant and the spans, so writing the same batch twice (a
/// retried request) produces the same block rather than a second copy.
fn block_id<'a>(tenant: &TenantId, spans: impl Iterator<Item = &'a Span>) -> String {
    content_id(|feed| {
        feed(tenant.as_str().as_bytes());
        for s in spans {
            feed(&s.trace_id);
            feed(&s.span_id);
            feed(&s.start_unix_nano.to_le_bytes());
            feed(&s.end_unix_nano.to_le_bytes());
            feed(s.name.as_bytes());
        }
    })
}

/// Commits a block: stores its `files` (the data file and the bloom, or only the bloom when
/// the data file is already stored), then `meta.json` — until that exists, readers do not see
/// the block. The files do not depend on each other, so a remote store gets them at once: a
/// call then waits for two round trips instead of one per file. In a local folder they are
/// created in the same new directory, and writing them at once only makes the writers spin on
/// that directory's lock (BENCHMARKS.md).
pub(crate) async fn commit(
    loc: &Location,
    meta: &BlockMeta,
    files: Vec<(&str, Vec<u8>)>,
) -> Result<(), BlockError> {
    let meta_json =
        serde_json::to_vec_pretty(meta).map_err(|e| crate::reader::corrupt(&meta.block_id, e))?;
    let (t, id) = (meta.tenant.as_str(), meta.block_id.as_str());
    let put = |name: &str, bytes: Vec<u8>| {
        let path = block_path(loc, t, id, name);
        async move {
            loc.store
                .put(&path, PutPayload::from(Bytes::from(bytes)))
                .await
        }
    };
    if loc.remote {
        futures::future::try_join_all(files.into_iter().map(|(name, bytes)| put(name, bytes)))
            .await?;
    } else {
        for (name, bytes) in files {
            put(name, bytes).await?;
        }
    }
    put(META, meta_json).await?;
    Ok(())
}

/// Spans converted to Arrow at a time: the column writers keep only encoded pages, so memory
/// stays near one chunk of spans in Arrow form however large the block.
const ENCODE_CHUNK: usize = 8 * 1024;
// A block small enough to be read whole is one chunk, so its first batch shows every column
// (and whether the block needs an offset index).
const _: () = assert!(ENCODE_CHUNK >= schema::PAGE_ROWS);

/// The order spans are stored in: by trace id, then start time, then span id. Sorting small
/// keys rather than the spans themselves keeps each span where it is until it is encoded.
fn sort_order(spans: &[Span]) -> Vec<usize> {
    let mut keys: Vec<([u8; 16], u64, [u8; 8], usize)> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.trace_id, s.start_unix_nano, s.span_id, i))
        .collect();
    keys.sort_unstable();
    keys.into_iter().map(|k| k.3).collect()
}

/// Encodes spans in `order` as a Parquet file, consuming them chunk by chunk so each chunk's
/// strings are freed once encoded; returns the bytes and the number of row groups.
/// Also returns the dedicated attributes some of whose values went to the generic lists.
fn encode_parquet(
    spans: Vec<Span>,
    order: &[usize],
    row_group_spans: usize,
) -> Result<(Vec<u8>, u64, BTreeSet<String>), BlockError> {
    // A block of at most ENCODE_CHUNK spans is one batch here, so what its columns hold is
    // seen in that batch before the first page is written; a larger block's empty columns are
    // found from its spans. Either way its columns without a value need no compression or
    // dictionary (a reader creates a compression context for every compressed column chunk it
    // reads, BENCHMARKS.md); at most PAGE_ROWS spans, it needs no offset index.
    let streamed = (order.len() > ENCODE_CHUNK).then(|| schema::BlockShape::of_spans(&spans));
    let mut generic = BTreeSet::new();
    let mut slots: Vec<Option<Span>> = spans.into_iter().map(Some).collect();
    let mut batches = order.chunks(ENCODE_CHUNK).map(|part| {
        let chunk: Vec<Span> = part.iter().filter_map(|&i| slots[i].take()).collect();
        schema::to_batch_noting(chunk.iter(), &mut generic)
    });
    let Some(first) = batches.next().transpose()? else {
        return Err(BlockError::Arrow(
            arrow_schema::ArrowError::InvalidArgumentError("no spans to encode".into()),
        ));
    };
    let shape = streamed.unwrap_or_else(|| schema::BlockShape::of(&first));
    let options = ArrowWriterOptions::new()
        .with_properties(schema::writer_properties(row_group_spans, &shape))
        // The Arrow schema is the Parquet schema here; embedding it only grows every footer.
        .with_skip_arrow_metadata(true);
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new_with_options(&mut buf, schema::schema(), options)?;
    // The writer cuts a row group every ROW_GROUP_SPANS rows.
    writer.write(&first)?;
    drop(first);
    for batch in batches {
        writer.write(&batch?)?;
    }
    writer.flush()?;
    let groups = writer.flushed_row_groups().len() as u64;
    let metadata = writer.close()?;
    footer::slim(&mut buf, metadata)?;
    Ok((buf, groups, generic))
}

/// Runs CPU work of milliseconds (encoding a block) so it does not stall the other tasks of a
/// multi-threaded runtime: they move to other workers meanwhile. Unlike `spawn_blocking` the
/// work stays on this thread, which keeps the spans' memory freed where it was allocated.
#[cfg(not(target_arch = "wasm32"))]
fn cpu_bound<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// One thread on wasm32: the work runs where it is.
#[cfg(target_arch = "wasm32")]
fn cpu_bound<T>(work: impl FnOnce() -> T) -> T {
    work()
}

/// Writes `spans` for `tenant` as one block and commits it; `None` for an empty batch.
pub async fn write_block(
    loc: &Location,
    tenant: &TenantId,
    spans: Vec<Span>,
) -> Result<Option<BlockMeta>, BlockError> {
    write_block_with(loc, tenant, spans, ROW_GROUP_SPANS).await
}

/// [`write_block`] with at most `row_group_spans` spans per Parquet row group.
pub async fn write_block_with(
    loc: &Location,
    tenant: &TenantId,
    spans: Vec<Span>,
    row_group_spans: usize,
) -> Result<Option<BlockMeta>, BlockError> {
    if spans.is_empty() {
        return Ok(None);
    }
    let order = sort_order(&spans);
    let id = block_id(tenant, order.iter().map(|&i| &spans[i]));
    // Spans are in trace order: each trace starts where the id changes. The filter is sized
    // for the traces, not the spans (a trace has several), or it would be several times larger.
    let trace_ids = || {
        order
            .iter()
            .enumerate()
            .filter(|&(n, &i)| n == 0 || spans[order[n - 1]].trace_id != spans[i].trace_id)
            .map(|(_, &i)| &spans[i].trace_id)
    };
    let traces = trace_ids().count();
    let mut bloom = Bloom::with_capacity(traces);
    trace_ids().for_each(|id| bloom.insert(id));
    let traces = traces as u64;
    let start_time_unix_nano = spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
    let end_time_unix_nano = spans.iter().map(|s| s.end_unix_nano).max().unwrap_or(0);
    let span_count = spans.len() as u64;
    let (data, row_groups, generic) = cpu_bound(|| encode_parquet(spans, &order, row_group_spans))?;
    let bloom = bloom.to_bytes();
    let meta = BlockMeta {
        format: FORMAT.into(),
        block_id: id.clone(),
        tenant: tenant.to_string(),
        start_time_unix_nano,
        end_time_unix_nano,
        span_count,
        trace_count: traces,
        data_size: data.len() as u64,
        bloom_size: bloom.len() as u64,
        row_groups,
        compaction_level: 0,
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        dedicated_columns: schema::dedicated_keys(),
        generic_dedicated: Some(generic.into_iter().collect()),
        replaces: Vec::new(),
    };
    commit(loc, &meta, vec![(DATA, data), (BLOOM, bloom)]).await?;
    Ok(Some(meta))
}
