//! Merging blocks: the core of compaction. Input blocks are each sorted by trace id, so a
//! streaming k-way merge of their rows yields one sorted output block while holding only one
//! batch per input and the output's current row group — memory set by [`MergeOptions`], not by
//! block sizes. Rows are moved as Arrow data (never converted to spans), the fragments of one
//! trace end up adjacent, and exact duplicate spans (the same span in two inputs, as after a
//! retried write or an interrupted compaction) are written once.

use object_store::ObjectStoreExt;
use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::collections::BinaryHeap;

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, FixedSizeBinaryArray, Int8Array, Int64Array, RecordBatch};
use object_store::buffered::BufWriter;
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use tempest_core::TenantId;

use super::window::Windowed;
use crate::BlockError;
use crate::bloom::Bloom;
use crate::listing::{BLOOM, DATA, block_path};
use crate::meta::{BlockMeta, FORMAT};
use crate::reader::corrupt;
use crate::schema::{self, columns};
use crate::store::Location;

/// How much a merge holds in memory.
#[derive(Debug, Clone, Copy)]
pub struct MergeOptions {
    /// Rows read from each input at a time.
    pub batch_rows: usize,
    /// Rows of an input whose pages are fetched at a time.
    pub window_rows: usize,
    /// Rows per output batch handed to the Parquet writer.
    pub output_rows: usize,
    /// Rows per output row group (the writer keeps one encoded row group in memory).
    pub row_group_spans: usize,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            batch_rows: 256,
            window_rows: schema::PAGE_ROWS,
            output_rows: 8192,
            row_group_spans: crate::writer::ROW_GROUP_SPANS,
        }
    }
}

/// Bytes per upload part of the output to a remote store (S3's minimum part size).
const UPLOAD_PART: usize = 5 << 20;

/// Bytes per part of the output written to a local folder, which takes parts of any size: the
/// writer holds a part being filled and two being written, so smaller parts hold less.
const LOCAL_PART: usize = 1 << 20;

/// One input: its stream and the batch being merged.
struct Input {
    stream: Windowed,
    batch: Option<RecordBatch>,
    row: usize,
    /// The key of `row`, once computed.
    key: Option<(Key, i8)>,
    /// `batch`'s key columns.
    columns: Option<KeyColumns>,
}

/// The merge key of a row: the stored order (trace id, start, span id). Rows with equal keys
/// are duplicates unless their kinds differ (Zipkin's shared client and server spans).
/// Ids are compared as big-endian integers, which orders them as their bytes.
#[derive(PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
struct Key {
    trace_id: u128,
    start: i64,
    span_id: u64,
}

/// The columns of a batch that make up the merge key, looked up once per batch.
struct KeyColumns {
    trace_id: FixedSizeBinaryArray,
    span_id: FixedSizeBinaryArray,
    start: Int64Array,
    kind: Int8Array,
}

impl KeyColumns {
    fn of(batch: &RecordBatch) -> Result<Self, String> {
        fn get<T: Clone + 'static>(batch: &RecordBatch, name: &str) -> Result<T, String> {
            crate::schema::column::<T>(batch, name).cloned()
        }
        Ok(KeyColumns {
            trace_id: get(batch, columns::TRACE_ID)?,
            span_id: get(batch, columns::SPAN_ID)?,
            start: get(batch, columns::START)?,
            kind: get(batch, columns::KIND)?,
        })
    }

    fn key(&self, row: usize) -> Result<(Key, i8), String> {
        Ok((
            Key {
                trace_id: u128::from_be_bytes(
                    self.trace_id
                        .value(row)
                        .try_into()
                        .map_err(|_| "trace id width")?,
                ),
                start: self.start.value(row),
                span_id: u64::from_be_bytes(
                    self.span_id
                        .value(row)
                        .try_into()
                        .map_err(|_| "span id width")?,
                ),
            },
            self.kind.value(row),
        ))
    }
}

/// Names the input block in a merge error.
fn with_block(e: BlockError, meta: &BlockMeta) -> BlockError {
    match e {
        BlockError::Corrupt { message, .. } => corrupt(&meta.block_id, message),
        e => e,
    }
}

impl Input {
    /// Moves to the next available row and caches its key (`None` once exhausted).
    async fn refresh(&mut self) -> Result<(), BlockError> {
        self.key = None;
        if self.ready().await? {
            let cols = self
                .columns
                .as_ref()
                .ok_or_else(|| corrupt("input", "no key columns"))?;
            self.key = Some(cols.key(self.row).map_err(|e| corrupt("input", e))?);
        }
        Ok(())
    }

    /// Makes sure a row is available; false when the input is exhausted.
    async fn ready(&mut self) -> Result<bool, BlockError> {
        loop {
            if let Some(b) = &self.batch
                && self.row < b.num_rows()
            {
                return Ok(true);
            }
            match self.stream.next().await? {
                Some(batch) => {
                    self.columns = Some(KeyColumns::of(&batch).map_err(|e| corrupt("input", e))?);
                    self.batch = Some(batch);
                    self.row = 0;
                }
                None => {
                    self.batch = None;
                    return Ok(false);
                }
            }
        }
    }
}

/// A compacted block's id: derived from its inputs, so a retried compaction of the same
/// blocks writes the same block again instead of a second copy.
fn merged_id(tenant: &TenantId, inputs: &[BlockMeta]) -> String {
    let mut ids: Vec<&str> = inputs.iter().map(|m| m.block_id.as_str()).collect();
    ids.sort_unstable();
    crate::writer::content_id(|feed| {
        feed(tenant.as_str().as_bytes());
        for id in ids {
            feed(id.as_bytes());
            feed(&[0]);
        }
    })
}

/// Merges `inputs` (blocks of `tenant`) into one committed block: data streamed to the store
/// in row groups, then the bloom filter, then `meta.json`. The inputs are left as they are
/// (marking and deleting them is the compactor's next step). `None` when the inputs hold no
/// rows.
pub async fn merge(
    loc: &Location,
    tenant: &TenantId,
    inputs: &[BlockMeta],
    opts: MergeOptions,
) -> Result<Option<BlockMeta>, BlockError> {
    let Some(merged) = merge_data(loc, tenant, inputs, opts).await? else {
        return Ok(None);
    };
    merged.commit(loc).await?;
    Ok(Some(merged.meta))
}

/// A merge's output whose data file is stored but which is not committed yet.
#[derive(Debug)]
pub struct Merged {
    /// The meta to commit.
    pub meta: BlockMeta,
    bloom: Vec<u8>,
}

impl Merged {
    /// Writes the bloom, then `meta.json`: from here on readers see the block, and it hides
    /// its inputs.
    pub async fn commit(&self, loc: &Location) -> Result<(), BlockError> {
        crate::writer::commit(loc, &self.meta, vec![(BLOOM, self.bloom.clone())]).await
    }

    /// The output's bloom filter.
    pub fn bloom(&self) -> Result<Bloom, BlockError> {
        Bloom::from_bytes(&self.bloom).map_err(|e| corrupt(&self.meta.block_id, e))
    }
}

/// [`merge`] up to, not including, the commit, so the caller can check it still owns the
/// work (its lease) before the output becomes visible.
pub async fn merge_data(
    loc: &Location,
    tenant: &TenantId,
    inputs: &[BlockMeta],
    opts: MergeOptions,
) -> Result<Option<Merged>, BlockError> {
    if inputs.iter().any(|m| m.tenant != tenant.as_str()) {
        return Err(corrupt(tenant.as_str(), "merge inputs of another tenant"));
    }
    let mut sources = Vec::with_capacity(inputs.len());
    for meta in inputs {
        let stream = Windowed::open(loc, meta, opts.window_rows, opts.batch_rows)
            .await
            .map_err(|e| with_block(e, meta))?;
        sources.push(Input {
            stream,
            batch: None,
            row: 0,
            key: None,
            columns: None,
        });
    }
    let id = merged_id(tenant, inputs);
    let t = tenant.as_str();
    let data_path = block_path(loc, t, &id, DATA);
    let options = ArrowWriterOptions::new()
        .with_properties(schema::writer_properties(
            opts.row_group_spans.max(1),
            // A column null in every row of every input is null in the output.
            &schema::BlockShape::streamed(|column| {
                sources.iter().all(|s| s.stream.all_null(column))
            }),
        ))
        .with_parquet_schema(schema::parquet_schema()?)
        .with_skip_arrow_metadata(true);
    let part = if loc.remote { UPLOAD_PART } else { LOCAL_PART };
    let mut writer = AsyncArrowWriter::try_new_with_options(
        // Two parts in flight: the default (10 MiB, eight in flight) would hold up to 90 MiB
        // of a large output.
        BufWriter::with_capacity(loc.store.clone(), data_path, part).with_max_concurrency(2),
        schema::schema(),
        options,
    )?;
    let capacity: u64 = inputs.iter().map(|m| m.trace_count).sum();
    let mut bloom = Bloom::with_capacity(usize::try_from(capacity).unwrap_or(usize::MAX >> 8));
    let (mut spans, mut traces) = (0u64, 0u64);
    let mut last: Option<(Key, Vec<i8>)> = None;
    // Rows chosen for the next output batch: (input, row) into `held`, the batches they are in.
    let mut held: Vec<RecordBatch> = Vec::new();
    let mut picks: Vec<(usize, usize)> = Vec::new();
    let mut held_of: Vec<Option<usize>> = vec![None; sources.len()];
    // The inputs' current keys in a min-heap: O(log k) per row for k inputs.
    let mut heap = BinaryHeap::with_capacity(sources.len());
    for (i, s) in sources.iter_mut().enumerate() {
        s.refresh().await.map_err(|e| with_block(e, &inputs[i]))?;
        if let Some((key, _)) = s.key {
            heap.push(Reverse((key, i)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        // Take rows from input `i` while it stays the smallest: runs need no heap work.
        loop {
            let source = &mut sources[i];
            let Some((key, kind)) = source.key else { break };
            if heap.peek().is_some_and(|Reverse((top, _))| *top < key) {
                heap.push(Reverse((key, i)));
                break;
            }
            let duplicate = match &mut last {
                Some((k, kinds)) if *k == key => {
                    if kinds.contains(&kind) {
                        true
                    } else {
                        kinds.push(kind);
                        false
                    }
                }
                _ => {
                    if last
                        .as_ref()
                        .is_none_or(|(k, _)| k.trace_id != key.trace_id)
                    {
                        traces += 1;
                        bloom.insert(&key.trace_id.to_be_bytes());
                    }
                    last = Some((key, vec![kind]));
                    false
                }
            };
            if !duplicate {
                let slot = match held_of[i] {
                    Some(slot) => slot,
                    None => {
                        let batch = source
                            .batch
                            .clone()
                            .ok_or_else(|| corrupt(&inputs[i].block_id, "no batch"))?;
                        held.push(batch);
                        held_of[i] = Some(held.len() - 1);
                        held.len() - 1
                    }
                };
                picks.push((slot, source.row));
                spans += 1;
            }
            source.row += 1;
            // Moving to its next batch: rows picked from this one stay in `held` until the
            // output batch is written.
            if source
                .batch
                .as_ref()
                .is_none_or(|b| source.row >= b.num_rows())
            {
                held_of[i] = None;
            }
            if picks.len() >= opts.output_rows.max(1) {
                flush(&mut writer, &mut held, &mut picks, &mut held_of).await?;
            }
            source
                .refresh()
                .await
                .map_err(|e| with_block(e, &inputs[i]))?;
        }
    }
    flush(&mut writer, &mut held, &mut picks, &mut held_of).await?;
    if spans == 0 {
        writer.close().await?;
        loc.store.delete(&block_path(loc, t, &id, DATA)).await?;
        return Ok(None);
    }
    let written = writer.finish().await?;
    let row_groups = written.num_row_groups() as u64;
    // After finish: the footer is counted too.
    let data_size = writer.bytes_written() as u64;
    let generic: Option<Vec<String>> = inputs
        .iter()
        .try_fold(BTreeSet::new(), |mut all, m| {
            all.extend(m.generic_dedicated.clone()?);
            Some(all)
        })
        .map(|s| s.into_iter().collect());
    let bloom = bloom.to_bytes();
    let meta = BlockMeta {
        format: FORMAT.into(),
        block_id: id.clone(),
        tenant: t.to_owned(),
        start_time_unix_nano: inputs
            .iter()
            .map(|m| m.start_time_unix_nano)
            .min()
            .unwrap_or(0),
        end_time_unix_nano: inputs
            .iter()
            .map(|m| m.end_time_unix_nano)
            .max()
            .unwrap_or(0),
        span_count: spans,
        trace_count: traces,
        data_size,
        bloom_size: bloom.len() as u64,
        row_groups,
        compaction_level: inputs.iter().map(|m| m.compaction_level).max().unwrap_or(0) + 1,
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        dedicated_columns: schema::dedicated_keys(),
        generic_dedicated: generic,
        replaces: inputs.iter().map(|m| m.block_id.clone()).collect(),
    };
    Ok(Some(Merged { meta, bloom }))
}

/// Writes the picked rows as one batch and lets go of the input batches they came from.
async fn flush(
    writer: &mut AsyncArrowWriter<BufWriter>,
    held: &mut Vec<RecordBatch>,
    picks: &mut Vec<(usize, usize)>,
    held_of: &mut [Option<usize>],
) -> Result<(), BlockError> {
    if !picks.is_empty() {
        let out = interleave_batches(held, picks)?;
        writer.write(&out).await?;
        picks.clear();
    }
    held.clear();
    held_of.fill(None);
    Ok(())
}

/// The picked rows of `batches` as one batch. Arrow's `interleave` copies fixed-width binary
/// (the trace and span id columns) one row at a time through a generic path; those are
/// gathered directly here.
fn interleave_batches(
    batches: &[RecordBatch],
    picks: &[(usize, usize)],
) -> Result<RecordBatch, BlockError> {
    let Some(first) = batches.first() else {
        return Err(corrupt("merge", "no input batches"));
    };
    let schema = first.schema();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for c in 0..schema.fields().len() {
        let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
        let column = match schema.field(c).data_type() {
            arrow_schema::DataType::FixedSizeBinary(width) => {
                let fixed: Vec<&FixedSizeBinaryArray> = arrays
                    .iter()
                    .map(|a| {
                        a.as_any()
                            .downcast_ref::<FixedSizeBinaryArray>()
                            .ok_or_else(|| corrupt("merge", "fixed-size binary column"))
                    })
                    .collect::<Result<_, _>>()?;
                Arc::new(gather_fixed(&fixed, picks, *width)?) as ArrayRef
            }
            _ => arrow_select::interleave::interleave(&arrays, picks)?,
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `picks` of fixed-size binary arrays of `width` bytes, nulls kept.
fn gather_fixed(
    arrays: &[&FixedSizeBinaryArray],
    picks: &[(usize, usize)],
    width: i32,
) -> Result<FixedSizeBinaryArray, BlockError> {
    let w = usize::try_from(width).map_err(|_| corrupt("merge", "negative width"))?;
    let mut bytes = Vec::with_capacity(picks.len() * w);
    let mut nulls = arrays
        .iter()
        .any(|a| a.null_count() > 0)
        .then(|| arrow_buffer::BooleanBufferBuilder::new(picks.len()));
    for &(b, row) in picks {
        let a = arrays[b];
        // A null row still has `width` bytes of (ignored) value.
        bytes.extend_from_slice(a.value(row));
        if let Some(n) = &mut nulls {
            n.append(a.is_valid(row));
        }
    }
    Ok(FixedSizeBinaryArray::try_new(
        width,
        arrow_buffer::Buffer::from_vec(bytes),
        nulls.map(|mut n| arrow_buffer::NullBuffer::new(n.finish())),
    )?)
}
