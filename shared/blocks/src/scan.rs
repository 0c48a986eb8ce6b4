//! Filtered reads of a block: row filters checked first against row-group statistics, then on
//! the few columns they name, so a search converts only the rows of traces that can match.
//!
//! [`scan`] answers, per trace fragment in a block, how many of its rows pass each filter,
//! reading the trace id column and the filtered columns of the row groups whose statistics
//! admit some filter; [`read_rows`] then reads every column of chosen rows only.

use std::cmp::Ordering;
use std::ops::Range;

use crate::data_file::DataFile;
use arrow_array::types::Int32Type;
use arrow_array::{
    Array, DictionaryArray, FixedSizeBinaryArray, Int8Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use futures::TryStreamExt;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector,
};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::statistics::Statistics;
use regex::Regex;
use tempest_traces::Span;

use crate::BlockError;
use crate::meta::BlockMeta;
use crate::reader::corrupt;
use crate::schema;
use crate::store::Location;

/// A comparison of a column's value with a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Cmp {
    fn holds(self, ord: Ordering) -> bool {
        match self {
            Cmp::Eq => ord == Ordering::Equal,
            Cmp::Ne => ord != Ordering::Equal,
            Cmp::Lt => ord == Ordering::Less,
            Cmp::Le => ord != Ordering::Greater,
            Cmp::Gt => ord == Ordering::Greater,
            Cmp::Ge => ord != Ordering::Less,
        }
    }

    /// Whether some value in `min..=max` may compare true with `v` (`max_exact` false: the
    /// stored max was truncated and only bounds the prefix).
    fn may_hold<T: PartialOrd + ?Sized>(self, min: &T, max: &T, max_exact: bool, v: &T) -> bool {
        let below_max = !max_exact || v <= max;
        match self {
            Cmp::Eq => min <= v && below_max,
            Cmp::Ne => true,
            Cmp::Lt => min < v,
            Cmp::Le => min <= v,
            Cmp::Gt => !max_exact || max > v,
            Cmp::Ge => below_max,
        }
    }
}

/// A number compared with an integer column; floats compare numerically.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
}

impl Number {
    fn cmp_with(self, x: i64) -> Option<Ordering> {
        match self {
            Number::Int(v) => Some(x.cmp(&v)),
            Number::Float(v) => (x as f64).partial_cmp(&v),
        }
    }
}

/// A condition on one row, over the columns of `schema`. A filter may pass rows the query
/// later rejects, never the reverse: readers evaluate the query on what passes.
#[derive(Debug, Clone)]
pub enum RowFilter {
    /// Every row.
    Always,
    /// No row.
    Never,
    /// Every part.
    All(Vec<RowFilter>),
    /// Some part.
    Any(Vec<RowFilter>),
    /// A string column compared with a literal; a null passes only `Ne`.
    Str {
        /// The column.
        column: &'static str,
        /// The comparison.
        op: Cmp,
        /// The literal.
        value: String,
    },
    /// An integer column compared with a number; a null passes only `Ne`.
    Num {
        /// The column.
        column: &'static str,
        /// The comparison.
        op: Cmp,
        /// The literal.
        value: Number,
    },
    /// A string column matching (or, negated, not matching) a pattern; nulls never pass.
    Regex {
        /// The column.
        column: &'static str,
        /// The pattern.
        regex: Regex,
        /// `!~`.
        negate: bool,
    },
    /// The column is set.
    NotNull {
        /// The column.
        column: &'static str,
    },
    /// An attribute list column (`attributes`, `resource_attributes`) holds `key`.
    HasKey {
        /// The column.
        column: &'static str,
        /// The attribute key.
        key: String,
    },
}

impl RowFilter {
    fn columns(&self, out: &mut Vec<&'static str>) {
        match self {
            RowFilter::Always | RowFilter::Never => {}
            RowFilter::All(parts) | RowFilter::Any(parts) => {
                for p in parts {
                    p.columns(out);
                }
            }
            RowFilter::Str { column, .. }
            | RowFilter::Num { column, .. }
            | RowFilter::Regex { column, .. }
            | RowFilter::NotNull { column }
            | RowFilter::HasKey { column, .. } => {
                if !out.contains(column) {
                    out.push(column);
                }
            }
        }
    }

    /// Whether a row of `rg` may pass, by its statistics.
    fn may_pass(&self, rg: &RowGroupMetaData) -> bool {
        let stats = |column: &str| {
            let idx = rg
                .columns()
                .iter()
                .position(|c| c.column_path().string() == column)?;
            rg.column(idx).statistics()
        };
        let all_null = |st: &Statistics| st.null_count_opt() == Some(rg.num_rows() as u64);
        match self {
            RowFilter::Always => true,
            RowFilter::Never => false,
            RowFilter::All(parts) => parts.iter().all(|p| p.may_pass(rg)),
            RowFilter::Any(parts) => parts.iter().any(|p| p.may_pass(rg)),
            RowFilter::Str { column, op, value } => match stats(column) {
                Some(st) if *op != Cmp::Ne && all_null(st) => false,
                Some(Statistics::ByteArray(st)) => match (st.min_opt(), st.max_opt()) {
                    (Some(min), Some(max)) => {
                        op.may_hold(min.data(), max.data(), st.max_is_exact(), value.as_bytes())
                    }
                    _ => true,
                },
                _ => true,
            },
            RowFilter::Num { column, op, value } => {
                let range = match stats(column) {
                    Some(st) if *op != Cmp::Ne && all_null(st) => return false,
                    Some(Statistics::Int32(st)) => st
                        .min_opt()
                        .zip(st.max_opt())
                        .map(|(a, b)| (i64::from(*a), i64::from(*b))),
                    Some(Statistics::Int64(st)) => {
                        st.min_opt().zip(st.max_opt()).map(|(a, b)| (*a, *b))
                    }
                    _ => None,
                };
                match (range, value) {
                    (None, _) => true,
                    (Some((min, max)), Number::Int(v)) => op.may_hold(&min, &max, true, v),
                    (Some((min, max)), Number::Float(v)) => {
                        op.may_hold(&(min as f64), &(max as f64), true, v)
                    }
                }
            }
            RowFilter::Regex { column, .. } | RowFilter::NotNull { column } => {
                !stats(column).is_some_and(all_null)
            }
            RowFilter::HasKey { .. } => true,
        }
    }

    /// Which rows of `batch` pass.
    fn eval(&self, batch: &RecordBatch) -> Result<Vec<bool>, String> {
        let n = batch.num_rows();
        Ok(match self {
            RowFilter::Always => vec![true; n],
            RowFilter::Never => vec![false; n],
            RowFilter::All(parts) => {
                let mut out = vec![true; n];
                for p in parts {
                    for (o, v) in out.iter_mut().zip(p.eval(batch)?) {
                        *o &= v;
                    }
                }
                out
            }
            RowFilter::Any(parts) => {
                let mut out = vec![false; n];
                for p in parts {
                    for (o, v) in out.iter_mut().zip(p.eval(batch)?) {
                        *o |= v;
                    }
                }
                out
            }
            RowFilter::Str { column, op, value } => strings(batch, column, *op == Cmp::Ne, |v| {
                op.holds(v.cmp(value.as_str()))
            })?,
            RowFilter::Num { column, op, value } => {
                let col = batch
                    .column_by_name(column)
                    .ok_or_else(|| format!("column {column} missing"))?;
                let at = ints(col.as_ref())
                    .ok_or_else(|| format!("column {column} is not an integer"))?;
                (0..n)
                    .map(|i| match at(i) {
                        None => *op == Cmp::Ne,
                        Some(x) => value.cmp_with(x).is_some_and(|o| op.holds(o)),
                    })
                    .collect()
            }
            RowFilter::Regex {
                column,
                regex,
                negate,
            } => strings(batch, column, false, |v| regex.is_match(v) != *negate)?,
            RowFilter::NotNull { column } => {
                let col = batch
                    .column_by_name(column)
                    .ok_or_else(|| format!("column {column} missing"))?;
                (0..n).map(|i| !col.is_null(i)).collect()
            }
            RowFilter::HasKey { column, key } => {
                // Attribute lists are `[["key",value],…]`: a key is always `["key",` there.
                let mut needle = String::from("[");
                crate::attrs::push_json_str(&mut needle, key);
                needle.push(',');
                let finder = memchr::memmem::Finder::new(needle.as_bytes());
                strings(batch, column, false, |v| {
                    finder.find(v.as_bytes()).is_some()
                })?
            }
        })
    }
}

/// Applies `test` to each row of a string column (plain or dictionary-encoded: then once per
/// distinct value); nulls get `null`.
fn strings(
    batch: &RecordBatch,
    column: &str,
    null: bool,
    test: impl Fn(&str) -> bool,
) -> Result<Vec<bool>, String> {
    let col = batch
        .column_by_name(column)
        .ok_or_else(|| format!("column {column} missing"))?;
    let any = col.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        return Ok((0..a.len())
            .map(|i| if a.is_null(i) { null } else { test(a.value(i)) })
            .collect());
    }
    let d = any
        .downcast_ref::<DictionaryArray<Int32Type>>()
        .ok_or_else(|| format!("column {column} is not a string column"))?;
    let values = d
        .values()
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| format!("column {column} has non-string dictionary values"))?;
    let per_value: Vec<bool> = (0..values.len())
        .map(|j| {
            if values.is_null(j) {
                null
            } else {
                test(values.value(j))
            }
        })
        .collect();
    let keys = d.keys();
    Ok((0..keys.len())
        .map(|i| {
            if keys.is_null(i) {
                null
            } else {
                usize::try_from(keys.value(i))
                    .ok()
                    .and_then(|k| per_value.get(k).copied())
                    .unwrap_or(null)
            }
        })
        .collect())
}

/// Reads row `i` of an integer column of any width; `None` for nulls.
fn ints(col: &dyn Array) -> Option<Box<dyn Fn(usize) -> Option<i64> + '_>> {
    let any = col.as_any();
    if let Some(a) = any.downcast_ref::<Int64Array>() {
        return Some(Box::new(move |i| (!a.is_null(i)).then(|| a.value(i))));
    }
    if let Some(a) = any.downcast_ref::<Int32Array>() {
        return Some(Box::new(move |i| {
            (!a.is_null(i)).then(|| i64::from(a.value(i)))
        }));
    }
    let a = any.downcast_ref::<Int8Array>()?;
    Some(Box::new(move |i| {
        (!a.is_null(i)).then(|| i64::from(a.value(i)))
    }))
}

/// What a scan found: per trace fragment of the block (in stored order, so by trace id), its
/// rows and how many of them pass each filter. Flat arrays: a block has thousands of traces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scanned {
    /// The traces, ascending.
    pub trace_ids: Vec<[u8; 16]>,
    /// Each trace's rows (block row numbers) among the row groups read: all of them when the
    /// scan had no filters.
    pub rows: Vec<Range<u64>>,
    /// Per trace, one count per filter.
    counts: Vec<u32>,
    /// Filters per trace in `counts`.
    width: usize,
    /// What the scan read.
    pub stats: ScanStats,
}

impl Scanned {
    /// How many rows of the `i`th trace pass each filter.
    pub fn counts(&self, i: usize) -> &[u32] {
        &self.counts[i * self.width..(i + 1) * self.width]
    }

    /// The index of `trace_id`, if the scan found it.
    pub fn find(&self, trace_id: &[u8; 16]) -> Option<usize> {
        self.trace_ids.binary_search(trace_id).ok()
    }

    fn push(&mut self, trace_id: [u8; 16], rows: Range<u64>, counts: &[u32]) {
        // Without filters every trace is kept; with them, only those with a passing row.
        if counts.is_empty() || counts.iter().any(|&c| c > 0) {
            self.trace_ids.push(trace_id);
            self.rows.push(rows);
            self.counts.extend_from_slice(counts);
        }
    }
}

/// What a scan read, for search metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Row groups read.
    pub row_groups_read: usize,
    /// Row groups skipped by their statistics.
    pub row_groups_skipped: usize,
    /// Rows whose filtered columns were decoded.
    pub rows_scanned: u64,
}

/// A block's Parquet footer, decoded once and kept with the block (the tenant index holds
/// one per block), so a warm reader goes straight to the column chunks it needs.
#[derive(Default)]
pub struct Footer {
    /// As stored.
    plain: tokio::sync::OnceCell<ArrowReaderMetadata>,
    /// With [`schema::scan_schema`]'s dictionary columns, for filtering scans.
    scan: std::sync::OnceLock<ArrowReaderMetadata>,
}

impl std::fmt::Debug for Footer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.plain.initialized() {
            "Footer(read)"
        } else {
            "Footer(unread)"
        })
    }
}

/// Opens a block's data file for reading, through its footer (read on first use).
pub(crate) async fn open(
    loc: &Location,
    meta: &BlockMeta,
    footer: &Footer,
) -> Result<ParquetRecordBatchStreamBuilder<DataFile>, BlockError> {
    let (file, md) = open_file(loc, meta, footer).await?;
    Ok(ParquetRecordBatchStreamBuilder::new_with_metadata(file, md))
}

async fn open_file(
    loc: &Location,
    meta: &BlockMeta,
    footer: &Footer,
) -> Result<(DataFile, ArrowReaderMetadata), BlockError> {
    let mut file = DataFile::of(loc, meta);
    let md = footer
        .plain
        .get_or_try_init(|| ArrowReaderMetadata::load_async(&mut file, Default::default()))
        .await?
        .clone();
    Ok((file, md))
}

/// The fragments of the block's traces that have a row passing some filter (every fragment
/// when `filters` is empty), with per-filter counts. Reads the footer, then the trace id and
/// filtered columns of the row groups whose statistics admit a filter.
pub async fn scan(
    loc: &Location,
    meta: &BlockMeta,
    footer: &Footer,
    filters: &[RowFilter],
) -> Result<Scanned, BlockError> {
    let (file, plain) = open_file(loc, meta, footer).await?;
    let md = plain.metadata().clone();
    let groups = md.row_groups();
    let offsets: Vec<u64> = groups
        .iter()
        .scan(0u64, |acc, rg| {
            let start = *acc;
            *acc += rg.num_rows() as u64;
            Some(start)
        })
        .collect();
    let keep: Vec<usize> = (0..groups.len())
        .filter(|&g| filters.is_empty() || filters.iter().any(|f| f.may_pass(&groups[g])))
        .collect();
    let mut out = Scanned {
        width: filters.len(),
        stats: ScanStats {
            row_groups_read: keep.len(),
            row_groups_skipped: groups.len() - keep.len(),
            rows_scanned: 0,
        },
        ..Scanned::default()
    };
    if keep.is_empty() {
        return Ok(out);
    }
    // Sized for every trace at once: a block knows how many it has.
    let traces = usize::try_from(meta.trace_count).unwrap_or(0).min(1 << 24);
    out.trace_ids.reserve(traces);
    out.rows.reserve(traces);
    out.counts.reserve(traces * filters.len());
    let scan_md = match footer.scan.get() {
        Some(md) => md.clone(),
        None => {
            static SCHEMA: std::sync::OnceLock<arrow_schema::SchemaRef> =
                std::sync::OnceLock::new();
            let schema = SCHEMA.get_or_init(schema::scan_schema).clone();
            let md = ArrowReaderMetadata::try_new(
                md.clone(),
                ArrowReaderOptions::new().with_schema(schema),
            )?;
            footer.scan.get_or_init(|| md).clone()
        }
    };
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(file, scan_md);
    let mut names = vec![schema::columns::TRACE_ID];
    for f in filters {
        f.columns(&mut names);
    }
    let leaves: Vec<usize> = builder
        .parquet_schema()
        .columns()
        .iter()
        .enumerate()
        .filter(|(_, c)| names.contains(&c.name()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::leaves(builder.parquet_schema(), leaves);
    // Row positions: the rows of kept row groups arrive in order.
    let mut positions = keep.iter().flat_map(|&g| {
        let (start, n) = (offsets[g], groups[g].num_rows() as u64);
        start..start + n
    });
    let mut stream = builder
        .with_projection(mask)
        .with_row_groups(keep.clone())
        .build()?;
    // The fragment being built: its trace, rows and counts.
    let mut cur: Option<([u8; 16], Range<u64>)> = None;
    let mut counts = vec![0u32; filters.len()];
    while let Some(batch) = stream.try_next().await? {
        let passes: Vec<Vec<bool>> = filters
            .iter()
            .map(|f| f.eval(&batch))
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt(&meta.block_id, e))?;
        let ids = batch
            .column_by_name(schema::columns::TRACE_ID)
            .and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>())
            .ok_or_else(|| corrupt(&meta.block_id, "trace_id column"))?;
        out.stats.rows_scanned += batch.num_rows() as u64;
        for i in 0..batch.num_rows() {
            let row = positions
                .next()
                .ok_or_else(|| corrupt(&meta.block_id, "more rows than row groups hold"))?;
            let id: [u8; 16] = ids
                .value(i)
                .try_into()
                .map_err(|_| corrupt(&meta.block_id, "trace id width"))?;
            match &mut cur {
                Some((t, rows)) if *t == id => rows.end = row + 1,
                _ => {
                    if let Some((t, rows)) = cur.take() {
                        out.push(t, rows, &counts);
                    }
                    counts.fill(0);
                    cur = Some((id, row..row + 1));
                }
            }
            for (c, p) in counts.iter_mut().zip(&passes) {
                *c += u32::from(p[i]);
            }
        }
    }
    if let Some((t, rows)) = cur.take() {
        out.push(t, rows, &counts);
    }
    Ok(out)
}

/// Every column of the given rows (block row numbers, ascending, not overlapping), converted
/// to spans in stored order; only the row groups holding them are read.
pub async fn read_rows(
    loc: &Location,
    meta: &BlockMeta,
    footer: &Footer,
    rows: &[Range<u64>],
) -> Result<Vec<Span>, BlockError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let builder = open(loc, meta, footer).await?;
    let md = builder.metadata().clone();
    let groups = md.row_groups();
    let mut selected = Vec::new();
    let mut selectors: Vec<RowSelector> = Vec::new();
    let mut start = 0u64;
    let mut ranges = rows.iter().peekable();
    for (g, rg) in groups.iter().enumerate() {
        let end = start + rg.num_rows() as u64;
        let mut inside: Vec<Range<u64>> = Vec::new();
        while let Some(r) = ranges.peek() {
            if r.start >= end {
                break;
            }
            inside.push(r.start.max(start)..r.end.min(end));
            if r.end > end {
                break;
            }
            ranges.next();
        }
        if !inside.is_empty() {
            selected.push(g);
            let mut at = start;
            for r in inside {
                if r.start > at {
                    selectors.push(RowSelector::skip((r.start - at) as usize));
                }
                selectors.push(RowSelector::select((r.end - r.start) as usize));
                at = r.end;
            }
            if end > at {
                selectors.push(RowSelector::skip((end - at) as usize));
            }
        }
        start = end;
    }
    if selected.is_empty() {
        return Ok(Vec::new());
    }
    let batches: Vec<RecordBatch> = builder
        .with_row_groups(selected)
        .with_row_selection(RowSelection::from(selectors))
        .build()?
        .try_collect()
        .await?;
    let mut spans = Vec::new();
    for batch in &batches {
        spans.extend(schema::from_batch(batch).map_err(|e| corrupt(&meta.block_id, e))?);
    }
    Ok(spans)
}
