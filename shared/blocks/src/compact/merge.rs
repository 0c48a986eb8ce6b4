//! Merging blocks: the core of compaction. Input blocks are each sorted by trace id, so a
//! streaming k-way merge of their rows yields one sorted output block while holding only one
//! batch per input and the output's current row group — memory set by [`MergeOptions`], not by
//! block sizes. Rows are moved as Arrow data (never converted to spans), the fragments of one
//! trace end up adjacent, and exact duplicate spans (the same span in two inputs, as after a
//! retried write or an interrupted compaction) are written once.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use arrow_array::{Array, FixedSizeBinaryArray, Int8Array, Int64Array, RecordBatch};
use futures::StreamExt;
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use parquet::arrow::async_writer::ParquetObjectWriter;
use tempest_core::TenantId;

use crate::BlockError;
use crate::bloom::Bloom;
use crate::listing::{DATA, block_path};
use crate::meta::{BlockMeta, FORMAT};
use crate::reader::corrupt;
use crate::scan::{Footer, open};
use crate::schema::{self, columns};
use crate::store::Location;

/// How much a merge holds in memory.
#[derive(Debug, Clone, Copy)]
pub struct MergeOptions {
    /// Rows read from each input at a time.
    pub batch_rows: usize,
    /// Rows per output batch handed to the Parquet writer.
    pub output_rows: usize,
    /// Rows per output row group (the writer keeps one encoded row group in memory).
    pub row_group_spans: usize,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            batch_rows: 512,
            output_rows: 8192,
            row_group_spans: crate::writer::ROW_GROUP_SPANS,
        }
    }
}

/// One input: its stream and the batch being merged.
struct Input {
    stream: ParquetRecordBatchStream<ParquetObjectReader>,
    batch: Option<RecordBatch>,
    row: usize,
    /// The key of `row`, once computed.
    key: Option<(Key, i8)>,
    /// `batch`'s key columns.
    columns: Option<KeyColumns>,
}

/// The merge key of a row: the stored order (trace id, start, span id). Rows with equal keys
/// are duplicates unless their kinds differ (Zipkin's shared client and server spans).
#[derive(PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
struct Key {
    trace_id: [u8; 16],
    start: i64,
    span_id: [u8; 8],
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
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<T>())
                .cloned()
                .ok_or_else(|| format!("column {name}"))
        }
        Ok(KeyColumns {
            trace_id: get(batch, columns::TRACE_ID)?,
            span_id: get(batch, "span_id")?,
            start: get(batch, "start_unix_nano")?,
            kind: get(batch, columns::KIND)?,
        })
    }

    fn key(&self, row: usize) -> Result<(Key, i8), String> {
        Ok((
            Key {
                trace_id: self
                    .trace_id
                    .value(row)
                    .try_into()
                    .map_err(|_| "trace id width")?,
                start: self.start.value(row),
                span_id: self
                    .span_id
                    .value(row)
                    .try_into()
                    .map_err(|_| "span id width")?,
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
            match self.stream.next().await {
                Some(batch) => {
                    let batch = batch?;
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
        crate::writer::commit(loc, &self.meta, self.bloom.clone()).await
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
        let stream = open(loc, meta, &Footer::default())
            .await?
            .with_batch_size(opts.batch_rows.max(1))
            .build()?;
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
        .with_properties(schema::writer_properties(opts.row_group_spans.max(1)))
        .with_skip_arrow_metadata(true);
    let mut writer = AsyncArrowWriter::try_new_with_options(
        ParquetObjectWriter::new(loc.store.clone(), data_path),
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
    for (i, s) in sources.iter_mut().enumerate() {
        s.refresh().await.map_err(|e| with_block(e, &inputs[i]))?;
    }
    loop {
        // The smallest current row among the inputs: a scan over their cached keys.
        let mut best: Option<(usize, Key, i8)> = None;
        for (i, s) in sources.iter().enumerate() {
            if let Some((key, kind)) = s.key
                && best
                    .as_ref()
                    .is_none_or(|(_, k, _)| key.cmp(k) == Ordering::Less)
            {
                best = Some((i, key, kind));
            }
        }
        let Some((i, key, kind)) = best else { break };
        let source = &mut sources[i];
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
                    bloom.insert(&key.trace_id);
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
        // An input moving to its next batch, or a full output batch: write what is picked.
        let batch_done = source
            .batch
            .as_ref()
            .is_none_or(|b| source.row >= b.num_rows());
        if picks.len() >= opts.output_rows.max(1) || batch_done {
            flush(&mut writer, &mut held, &mut picks, &mut held_of).await?;
        }
        sources[i]
            .refresh()
            .await
            .map_err(|e| with_block(e, &inputs[i]))?;
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
    writer: &mut AsyncArrowWriter<ParquetObjectWriter>,
    held: &mut Vec<RecordBatch>,
    picks: &mut Vec<(usize, usize)>,
    held_of: &mut [Option<usize>],
) -> Result<(), BlockError> {
    if !picks.is_empty() {
        let refs: Vec<&RecordBatch> = held.iter().collect();
        let out = arrow_select::interleave::interleave_record_batch(&refs, picks)?;
        writer.write(&out).await?;
        picks.clear();
    }
    held.clear();
    held_of.fill(None);
    Ok(())
}
