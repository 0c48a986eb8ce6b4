//! Writes a batch of spans as one committed block: data, then bloom, then `meta.json`.

use object_store::ObjectStoreExt;
use std::collections::BTreeSet;

use arrow_array::{FixedSizeBinaryArray, Int64Array, RecordBatch, StringArray};
use arrow_schema::ArrowError;
use arrow_select::interleave::interleave_record_batch;
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
use crate::schema::{self, columns};
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
    id_of(&hasher)
}

fn id_of(hasher: &xxhash_rust::xxh3::Xxh3) -> String {
    uuid::Builder::from_random_bytes(hasher.digest128().to_be_bytes())
        .into_uuid()
        .to_string()
}

/// What a block's id, bloom and `meta.json` say of its rows, gathered from its batches in
/// block order as they are encoded, whichever way the batches were made.
struct Rows {
    /// The block id: the tenant, then each row's trace id, span id, start, end and name, so
    /// writing the same batch twice (a retried request) produces the same block rather than a
    /// second copy.
    id: xxhash_rust::xxh3::Xxh3,
    /// Distinct trace ids: rows are in trace order, so each trace starts where the id changes.
    traces: Vec<[u8; 16]>,
    start: u64,
    end: u64,
    count: u64,
}

impl Rows {
    fn new(tenant: &TenantId) -> Self {
        let mut id = xxhash_rust::xxh3::Xxh3::new();
        id.update(tenant.as_str().as_bytes());
        Rows {
            id,
            traces: Vec::new(),
            start: u64::MAX,
            end: 0,
            count: 0,
        }
    }

    fn add(&mut self, batch: &RecordBatch) -> Result<(), BlockError> {
        let trace = column::<FixedSizeBinaryArray>(batch, columns::TRACE_ID)?;
        let span = column::<FixedSizeBinaryArray>(batch, columns::SPAN_ID)?;
        let start = column::<Int64Array>(batch, columns::START)?;
        let duration = column::<Int64Array>(batch, columns::DURATION)?;
        let name = column::<StringArray>(batch, columns::NAME)?;
        for row in 0..batch.num_rows() {
            let trace_id: [u8; 16] = fixed(trace.value(row))?;
            if self.traces.last() != Some(&trace_id) {
                self.traces.push(trace_id);
            }
            // Stored as the columns hold them: the end is the start plus the duration, which
            // the span model keeps at zero when an end precedes its start.
            let begin = start.value(row) as u64;
            let end = begin.saturating_add(duration.value(row) as u64);
            self.start = self.start.min(begin);
            self.end = self.end.max(end);
            // One update for the fixed-size fields: the hash of the bytes is the same, and
            // each update of the streaming hash has a cost of its own.
            let mut fields = [0u8; 40];
            fields[..16].copy_from_slice(&trace_id);
            fields[16..24].copy_from_slice(&fixed::<8>(span.value(row))?);
            fields[24..32].copy_from_slice(&begin.to_le_bytes());
            fields[32..].copy_from_slice(&end.to_le_bytes());
            self.id.update(&fields);
            self.id.update(name.value(row).as_bytes());
        }
        self.count += batch.num_rows() as u64;
        Ok(())
    }
}

/// A batch of this module's own making that is not what the schema says.
fn invalid(message: String) -> BlockError {
    BlockError::Arrow(ArrowError::InvalidArgumentError(message))
}

/// An id from a fixed-size binary column of the schema's width `N`.
fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], BlockError> {
    <[u8; N]>::try_from(bytes).map_err(|_| invalid(format!("an id of {} bytes", bytes.len())))
}

/// Column `name` of `batch` as the Arrow array type `T`.
fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, BlockError> {
    schema::column(batch, name).map_err(invalid)
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
/// keys rather than the spans themselves keeps each span where it is until it is encoded. The
/// first sort is by the trace id's first eight bytes alone, which are random and so almost
/// always decide (16-byte keys sort faster than full ones); each run of spans sharing them, a
/// trace's spans, is then put in full order.
fn sort_order(spans: &[Span]) -> Vec<usize> {
    let mut prefixes: Vec<(u64, usize)> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| ((u128::from_be_bytes(s.trace_id) >> 64) as u64, i))
        .collect();
    prefixes.sort_unstable();
    let key = |i: usize| {
        let s = &spans[i];
        (order_key(s.trace_id, s.start_unix_nano, s.span_id), i)
    };
    let mut order = Vec::with_capacity(spans.len());
    for run in prefixes.chunk_by(|a, b| a.0 == b.0) {
        let from = order.len();
        order.extend(run.iter().map(|p| p.1));
        if run.len() > 1 {
            order[from..].sort_unstable_by_key(|&i| key(i));
        }
    }
    order
}

/// A span's place in block order: trace id, start, span id.
type OrderKey = (u128, u64, u64);

/// The ids as big-endian integers: the same order as their bytes, compared in one instruction.
fn order_key(trace_id: [u8; 16], start: u64, span_id: [u8; 8]) -> OrderKey {
    (
        u128::from_be_bytes(trace_id),
        start,
        u64::from_be_bytes(span_id),
    )
}

/// `spans` in `order` as Arrow batches of at most [`ENCODE_CHUNK`] rows, adding to `generic`
/// the dedicated attributes some of whose values went to the generic lists. One chunk is
/// converted from the spans where they are; past one, each chunk's spans are moved out and
/// freed once converted, so memory holds about one chunk in both forms.
fn into_batches<'a>(
    spans: Vec<Span>,
    order: &'a [usize],
    generic: &'a mut BTreeSet<String>,
) -> impl Iterator<Item = Result<RecordBatch, BlockError>> + 'a {
    let (mut whole, mut slots) = if order.len() > ENCODE_CHUNK {
        (None, spans.into_iter().map(Some).collect())
    } else {
        (Some(spans), Vec::new())
    };
    order.chunks(ENCODE_CHUNK).map(move |part| {
        let batch = match whole.take() {
            Some(spans) => schema::to_batch_noting(part.iter().map(|&i| &spans[i]), generic),
            None => {
                let chunk: Vec<Span> = part.iter().filter_map(|&i| slots[i].take()).collect();
                schema::to_batch_noting(chunk.iter(), generic)
            }
        };
        Ok(batch?)
    })
}

/// Encodes `batches` (in block order) as a Parquet file, noting each in `rows`; returns the
/// bytes and the number of row groups. Without a `shape` given, the first batch must hold the
/// whole block, and its columns decide the shape.
fn encode_parquet(
    mut batches: impl Iterator<Item = Result<RecordBatch, BlockError>>,
    shape: Option<schema::BlockShape>,
    rows: &mut Rows,
    row_group_spans: usize,
) -> Result<(Vec<u8>, u64), BlockError> {
    let Some(first) = batches.next().transpose()? else {
        return Err(invalid("no spans to encode".into()));
    };
    let shape = shape.unwrap_or_else(|| schema::BlockShape::of(std::slice::from_ref(&first)));
    let options = ArrowWriterOptions::new()
        .with_properties(schema::writer_properties(row_group_spans, &shape))
        .with_parquet_schema(schema::parquet_schema()?)
        // The Arrow schema is the Parquet schema here; embedding it only grows every footer.
        .with_skip_arrow_metadata(true);
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new_with_options(&mut buf, schema::schema(), options)?;
    // The writer cuts a row group every ROW_GROUP_SPANS rows.
    for batch in std::iter::once(Ok(first)).chain(batches) {
        let batch = batch?;
        rows.add(&batch)?;
        writer.write(&batch)?;
    }
    writer.flush()?;
    let groups = writer.flushed_row_groups().len() as u64;
    let metadata = writer.close()?;
    footer::slim(&mut buf, metadata)?;
    Ok((buf, groups))
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
    let encoded = cpu_bound(|| {
        let order = sort_order(&spans);
        // A block larger than one batch is written batch by batch: which of its columns are
        // empty is found from the spans before the first batch is encoded.
        let shape = (order.len() > ENCODE_CHUNK).then(|| schema::BlockShape::of_spans(&spans));
        let (mut generic, mut rows) = (BTreeSet::new(), Rows::new(tenant));
        let (data, groups) = encode_parquet(
            into_batches(spans, &order, &mut generic),
            shape,
            &mut rows,
            row_group_spans,
        )?;
        Ok::<_, BlockError>((data, groups, rows, generic))
    })?;
    commit_encoded(loc, tenant, encoded).await.map(Some)
}

/// A request's spans in block order as Arrow batches, made on the thread that decoded them
/// (where their memory is freed as it was allocated, and still in cache) for a group commit
/// to merge with other requests' ([`write_sorted`]).
pub struct SortedSpans {
    batches: Vec<RecordBatch>,
    generic: BTreeSet<String>,
    len: usize,
}

impl SortedSpans {
    /// Sorts and converts `spans`, freeing them.
    pub fn new(spans: Vec<Span>) -> Result<Self, BlockError> {
        let len = spans.len();
        let order = sort_order(&spans);
        let mut generic = BTreeSet::new();
        let batches = into_batches(spans, &order, &mut generic).collect::<Result<_, _>>()?;
        Ok(SortedSpans {
            batches,
            generic,
            len,
        })
    }

    /// Spans held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no span is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Writes the spans of `parts` for `tenant` as one block, in block order, and commits it;
/// `None` when the parts hold no span. The block is the one [`write_block`] writes for all
/// their spans at once.
pub async fn write_sorted(
    loc: &Location,
    tenant: &TenantId,
    parts: Vec<SortedSpans>,
) -> Result<Option<BlockMeta>, BlockError> {
    if parts.iter().all(SortedSpans::is_empty) {
        return Ok(None);
    }
    let encoded = cpu_bound(|| {
        let single = parts.len() == 1;
        let (mut generic, mut batches) = (BTreeSet::new(), Vec::new());
        for part in parts {
            generic.extend(part.generic);
            batches.extend(part.batches);
        }
        let shape = Some(schema::BlockShape::of(&batches));
        let mut rows = Rows::new(tenant);
        let (data, groups) = if single {
            encode_parquet(
                batches.into_iter().map(Ok),
                shape,
                &mut rows,
                ROW_GROUP_SPANS,
            )?
        } else {
            let order = merged_order(&batches)?;
            let batches: Vec<&RecordBatch> = batches.iter().collect();
            let merged = order
                .chunks(ENCODE_CHUNK)
                .map(|chunk| Ok(interleave_record_batch(&batches, chunk)?));
            encode_parquet(merged, shape, &mut rows, ROW_GROUP_SPANS)?
        };
        Ok::<_, BlockError>((data, groups, rows, generic))
    })?;
    commit_encoded(loc, tenant, encoded).await.map(Some)
}

/// The rows of `batches` (each in block order) as (batch, row) in block order.
fn merged_order(batches: &[RecordBatch]) -> Result<Vec<(usize, usize)>, BlockError> {
    let mut keys = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for (b, batch) in batches.iter().enumerate() {
        let trace = column::<FixedSizeBinaryArray>(batch, columns::TRACE_ID)?;
        let span = column::<FixedSizeBinaryArray>(batch, columns::SPAN_ID)?;
        let start = column::<Int64Array>(batch, columns::START)?;
        for row in 0..batch.num_rows() {
            let key = order_key(
                fixed(trace.value(row))?,
                start.value(row) as u64,
                fixed(span.value(row))?,
            );
            keys.push((key, b, row));
        }
    }
    keys.sort_unstable();
    Ok(keys.into_iter().map(|(_, b, row)| (b, row)).collect())
}

/// Stores an encoded block's data file and bloom, then its `meta.json`.
async fn commit_encoded(
    loc: &Location,
    tenant: &TenantId,
    (data, row_groups, rows, generic): (Vec<u8>, u64, Rows, BTreeSet<String>),
) -> Result<BlockMeta, BlockError> {
    // Sized for the traces, not the spans (a trace has several), or it would be several times
    // larger.
    let mut bloom = Bloom::with_capacity(rows.traces.len());
    rows.traces.iter().for_each(|id| bloom.insert(id));
    let bloom = bloom.to_bytes();
    let meta = BlockMeta {
        format: FORMAT.into(),
        block_id: id_of(&rows.id),
        tenant: tenant.to_string(),
        start_time_unix_nano: rows.start,
        end_time_unix_nano: rows.end,
        span_count: rows.count,
        trace_count: rows.traces.len() as u64,
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
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A span of a trace whose id is `hi` then `lo` (big-endian halves).
    fn span(hi: u64, lo: u64, start: u64, id: u8) -> Span {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&hi.to_be_bytes());
        trace_id[8..].copy_from_slice(&lo.to_be_bytes());
        Span {
            trace_id,
            span_id: [id; 8],
            start_unix_nano: start,
            ..Span::default()
        }
    }

    proptest! {
        /// Sorting by the trace id's first half, then each run by the full key, gives the
        /// order of a sort by the full key, also when traces share their first half and their
        /// spans are interleaved (few distinct halves and starts force such runs and ties).
        #[test]
        fn sort_order_is_the_full_key_order(
            spans in prop::collection::vec((0u64..3, 0u64..3, 0u64..4, 0u8..4), 0..60)
        ) {
            let spans: Vec<Span> = spans
                .into_iter()
                .map(|(hi, lo, start, id)| span(hi, lo, start, id))
                .collect();
            let mut expected: Vec<usize> = (0..spans.len()).collect();
            expected.sort_by_key(|&i| {
                let s = &spans[i];
                (order_key(s.trace_id, s.start_unix_nano, s.span_id), i)
            });
            prop_assert_eq!(sort_order(&spans), expected);
        }
    }
}
