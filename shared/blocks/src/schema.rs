//! The Parquet layout of `data.parquet` — one row per span — and the conversions between spans
//! and Arrow record batches. Frequently queried fields have their own columns (service name,
//! span name, status, kind, duration and the common http/db attributes); the remaining
//! attributes and events are compact JSON columns (see `attrs`), and what is rarely set (trace
//! state, links, dropped counts, scope attributes) shares one JSON object column, `other`.
//!
//! Every column chunk costs a fixed amount of CPU (an encoder, a compression context) and of
//! footer bytes, whatever its size: ingest writes small blocks, so the layout keeps the column
//! count low and compresses only the columns where zstd pays (BENCHMARKS.md).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock};

use arrow_array::builder::{
    FixedSizeBinaryBuilder, Int8Builder, Int32Builder, Int64Builder, StringBuilder,
};
use arrow_array::{
    Array, ArrayRef, FixedSizeBinaryArray, Int8Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowSchemaConverter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::{ColumnPath, SchemaDescriptor};
use serde_json::Value;
use tempest_traces::{AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanKind};

use crate::attrs;

/// The type of a dedicated attribute column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Strings (`Utf8`).
    Str,
    /// 64-bit integers.
    Int,
}

/// Column names, for readers that pick columns (the trace id, the intrinsic span fields, the
/// service name and the generic attribute lists).
pub mod columns {
    /// The trace id (16 bytes).
    pub const TRACE_ID: &str = "trace_id";
    /// The span id (8 bytes).
    pub const SPAN_ID: &str = "span_id";
    /// The span's start (Unix nanoseconds, `Int64`).
    pub const START: &str = "start_unix_nano";
    /// The span name.
    pub const NAME: &str = "name";
    /// The span kind (OTLP numbering, `Int8`).
    pub const KIND: &str = "kind";
    /// Nanoseconds (`Int64`).
    pub const DURATION: &str = "duration_nano";
    /// The status code (OTLP numbering, `Int32`).
    pub const STATUS_CODE: &str = "status_code";
    /// The status message.
    pub const STATUS_MESSAGE: &str = "status_message";
    /// The resource's `service.name` when it is a string.
    pub const SERVICE_NAME: &str = "service_name";
    /// The instrumentation scope's name.
    pub const SCOPE_NAME: &str = "scope_name";
    /// The instrumentation scope's version.
    pub const SCOPE_VERSION: &str = "scope_version";
    /// Span attributes without a dedicated column (an attribute list, see `attrs`).
    pub const SPAN_ATTRIBUTES: &str = "attributes";
    /// Resource attributes other than a string `service.name` (an attribute list).
    pub const RESOURCE_ATTRIBUTES: &str = "resource_attributes";
}

/// Span attributes with their own column: (attribute key, column name, type). An attribute of
/// another type than its column's, or a repeated key, stays in the generic column.
const DEDICATED: &[(&str, &str, ValueType)] = &[
    ("http.request.method", "http_request_method", ValueType::Str),
    (
        "http.response.status_code",
        "http_response_status_code",
        ValueType::Int,
    ),
    ("http.route", "http_route", ValueType::Str),
    ("url.full", "url_full", ValueType::Str),
    ("http.method", "http_method", ValueType::Str),
    ("http.status_code", "http_status_code", ValueType::Int),
    ("http.url", "http_url", ValueType::Str),
    ("db.system", "db_system", ValueType::Str),
    ("db.statement", "db_statement", ValueType::Str),
];

/// The first bytes of the dedicated keys: most attribute keys of a span are not dedicated, and
/// one table lookup turns most of them away before any string comparison.
const DEDICATED_FIRST_BYTES: [bool; 256] = {
    let mut first = [false; 256];
    let mut i = 0;
    while i < DEDICATED.len() {
        first[DEDICATED[i].0.as_bytes()[0] as usize] = true;
        i += 1;
    }
    first
};

/// The dedicated column an attribute key belongs to.
fn dedicated_index(key: &str) -> Option<usize> {
    let first = *key.as_bytes().first()?;
    if !DEDICATED_FIRST_BYTES[usize::from(first)] {
        return None;
    }
    DEDICATED.iter().position(|(k, _, _)| *k == key)
}

/// Whether dedicated column `i` takes `value` (a value of another type stays generic).
fn takes(i: usize, value: &AnyValue) -> bool {
    matches!(
        (value, DEDICATED[i].2),
        (AnyValue::Str(_), ValueType::Str) | (AnyValue::Int(_), ValueType::Int)
    )
}

/// The dedicated column `kv` has a value in, by its key and the type of its value.
fn dedicated_slot(kv: &KeyValue) -> Option<usize> {
    dedicated_index(&kv.key).filter(|&i| takes(i, &kv.value))
}

/// The dedicated column of a span attribute key and the type of value it holds. A value of that
/// type under that key is always in the column; values of other types are in the generic
/// attribute list.
pub fn dedicated_column(key: &str) -> Option<(&'static str, ValueType)> {
    DEDICATED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, col, t)| (*col, *t))
}

/// The attribute keys that have dedicated columns, for `meta.json`.
pub fn dedicated_keys() -> Vec<String> {
    DEDICATED.iter().map(|(k, _, _)| (*k).to_owned()).collect()
}

/// How one column is stored.
struct Column {
    name: &'static str,
    data_type: DataType,
    nullable: bool,
    /// Dictionary encoding: for columns with few distinct values per block.
    dictionary: bool,
    /// An explicit encoding (instead of plain) for columns without a dictionary.
    encoding: Option<Encoding>,
    /// zstd, for the columns where it pays for its per-chunk context.
    zstd: bool,
    /// Min/max statistics, for the columns queries prune on.
    statistics: bool,
}

const fn col(name: &'static str, data_type: DataType) -> Column {
    Column {
        name,
        data_type,
        nullable: false,
        dictionary: true,
        encoding: None,
        zstd: false,
        statistics: true,
    }
}

/// Every column, in file order: built once (each block's writer settings and batches use it).
fn columns() -> &'static [Column] {
    static COLUMNS: LazyLock<Vec<Column>> = LazyLock::new(build_columns);
    &COLUMNS
}

fn build_columns() -> Vec<Column> {
    let plain = |c: Column| Column {
        dictionary: false,
        ..c
    };
    let mut out = vec![
        // Sorted, each id repeated for the spans of its trace: zstd folds the repeats.
        Column {
            zstd: true,
            ..plain(col(columns::TRACE_ID, DataType::FixedSizeBinary(16)))
        },
        // Random bytes: nothing compresses them.
        Column {
            statistics: false,
            ..plain(col(columns::SPAN_ID, DataType::FixedSizeBinary(8)))
        },
        // Siblings share their parent and sit next to each other: zstd folds the repeats. A
        // dictionary would store each parent once too, but its random ids and indices take
        // more room than zstd's back-references (BENCHMARKS.md).
        Column {
            nullable: true,
            zstd: true,
            statistics: false,
            ..plain(col("parent_span_id", DataType::FixedSizeBinary(8)))
        },
        // Often high-cardinality (`GET /items/57`) with shared prefixes: zstd pays.
        Column {
            zstd: true,
            ..col(columns::NAME, DataType::Utf8)
        },
        col(columns::KIND, DataType::Int8),
        // Close together within a trace: deltas are small. Durations are not, but delta
        // packing stores them in their significant bits without a compression context.
        // (Byte-stream-split and zstd store durations ~10% smaller, but DuckDB reads that
        // encoding on integers only since 2026: the format stays readable by older readers.)
        Column {
            encoding: Some(Encoding::DELTA_BINARY_PACKED),
            ..plain(col(columns::START, DataType::Int64))
        },
        Column {
            encoding: Some(Encoding::DELTA_BINARY_PACKED),
            ..plain(col(columns::DURATION, DataType::Int64))
        },
        col(columns::STATUS_CODE, DataType::Int32),
        col(columns::STATUS_MESSAGE, DataType::Utf8),
        Column {
            nullable: true,
            ..col(columns::SERVICE_NAME, DataType::Utf8)
        },
    ];
    for (_, name, kind) in DEDICATED {
        let dt = match kind {
            ValueType::Str => DataType::Utf8,
            ValueType::Int => DataType::Int64,
        };
        out.push(Column {
            nullable: true,
            // URLs and statements are high-cardinality text with shared prefixes.
            zstd: matches!(*name, "url_full" | "http_url" | "db_statement"),
            ..col(name, dt)
        });
    }
    let json = |name| Column {
        zstd: true,
        statistics: false,
        ..plain(col(name, DataType::Utf8))
    };
    out.extend([
        json(columns::SPAN_ATTRIBUTES),
        json("events"),
        // Few distinct lists a block, but each is long JSON sharing its keys with the others:
        // zstd shrinks the dictionary page (0.23 B/span at ~700-span blocks, BENCHMARKS.md).
        Column {
            statistics: false,
            zstd: true,
            ..col(columns::RESOURCE_ATTRIBUTES, DataType::Utf8)
        },
        col(columns::SCOPE_NAME, DataType::Utf8),
        col(columns::SCOPE_VERSION, DataType::Utf8),
        Column {
            statistics: false,
            ..col("other", DataType::Utf8)
        },
    ]);
    out
}

/// The Arrow schema of a block's data file.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let fields: Vec<Field> = columns()
            .iter()
            .map(|c| Field::new(c.name, c.data_type.clone(), c.nullable))
            .collect();
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// The Parquet schema of a block's data file, [`schema`] converted once rather than by every
/// writer.
pub fn parquet_schema() -> Result<SchemaDescriptor, ParquetError> {
    static PARQUET: LazyLock<Result<SchemaDescriptor, String>> = LazyLock::new(|| {
        ArrowSchemaConverter::new()
            .convert(&schema())
            .map_err(|e| e.to_string())
    });
    PARQUET.clone().map_err(ParquetError::General)
}

/// The schema for filtering scans: string columns stored with a dictionary are read as Arrow
/// dictionaries, so a filter tests each distinct value once instead of every row's copy.
pub fn scan_schema() -> SchemaRef {
    let fields: Vec<Field> = columns()
        .iter()
        .map(|c| {
            let data_type = match c.data_type.clone() {
                DataType::Utf8 if c.dictionary => {
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
                }
                other => other,
            };
            Field::new(c.name, data_type, c.nullable)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Most rows in a data page (also the window compaction reads its inputs in).
pub const PAGE_ROWS: usize = 4096;

/// Most bytes in a column chunk's dictionary page. Ingested blocks (hundreds to thousands of
/// spans) stay far below it; only large compacted row groups of high-cardinality columns reach it.
pub const DICTIONARY_PAGE_BYTES: usize = 8 << 10;

/// What a block's file carries besides the data, decided by how it will be read and, when
/// all of it is known before writing, by what it holds.
#[derive(Debug, Clone)]
pub struct BlockShape {
    /// Page locations, which a reader needs to read part of a column chunk. A block of at
    /// most [`PAGE_ROWS`] spans is read whole (every chunk is one page or a few), so its
    /// offset index would only grow the file.
    offset_index: bool,
    /// Columns null in every row of the block: stored plain and uncompressed (their
    /// definition levels are a few bytes). A reader creates a compression context for every
    /// compressed column chunk it opens, whatever its size (and holds it while it reads the
    /// chunk), and an empty dictionary still costs a page header and footer fields.
    empty: Vec<&'static str>,
}

impl BlockShape {
    /// A block written batch by batch (a merge output, or an ingested block larger than one
    /// encoding batch), read in windows of pages; `empty` says which columns are known,
    /// before the first batch, to be null in every row.
    pub fn streamed(empty: impl Fn(&str) -> bool) -> Self {
        BlockShape {
            offset_index: true,
            empty: empty_columns(empty),
        }
    }

    /// A block whose spans are all in `batches`, known before the first is written.
    pub fn of(batches: &[RecordBatch]) -> Self {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        BlockShape {
            offset_index: rows > PAGE_ROWS,
            empty: empty_columns(|name| {
                batches
                    .iter()
                    .all(|b| b.column_by_name(name).is_some_and(no_value))
            }),
        }
    }

    /// A block of `spans` written batch by batch: which columns no span gives a value is
    /// found from the spans before the first batch is encoded. (Only the nullable columns can
    /// be empty: the parent id, the service name and the dedicated attributes.)
    pub fn of_spans(spans: &[Span]) -> Self {
        let mut parent = false;
        let mut service = false;
        let mut dedicated = [false; DEDICATED.len()];
        let mut last: *const Resource = std::ptr::null();
        for s in spans {
            parent |= s.parent_span_id.is_some();
            // Neighbouring spans mostly share their resource: it is looked at once for them.
            let resource = Arc::as_ptr(&s.resource);
            if !service && resource != last {
                last = resource;
                service = s.resource.service_name().is_some();
            }
            for kv in &s.attributes {
                if let Some(i) = dedicated_slot(kv) {
                    dedicated[i] = true;
                }
            }
        }
        BlockShape::streamed(|name| match name {
            "parent_span_id" => !parent,
            columns::SERVICE_NAME => !service,
            _ => DEDICATED
                .iter()
                .position(|(_, column, _)| *column == name)
                .is_some_and(|i| !dedicated[i]),
        })
    }
}

/// The columns stored differently when `empty` (those with a dictionary or compression).
fn empty_columns(empty: impl Fn(&str) -> bool) -> Vec<&'static str> {
    columns()
        .iter()
        .filter(|c| c.zstd || c.dictionary)
        .filter(|c| empty(c.name))
        .map(|c| c.name)
        .collect()
}

/// Whether a column holds nothing: every row null. (Empty strings are not nothing: stored
/// plain, each costs its 4-byte length, which zstd folds away.)
fn no_value(array: &ArrayRef) -> bool {
    array.null_count() == array.len()
}

/// Writer settings: each column's encoding, compression and statistics, and `max_row_group`
/// spans per row group; the offset index and compression as `shape` says.
pub fn writer_properties(max_row_group: usize, shape: &BlockShape) -> WriterProperties {
    // zstd level 1: most of level 3's size at a fraction of its CPU (BENCHMARKS.md).
    let zstd = Compression::ZSTD(ZstdLevel::default());
    let zstd = ZstdLevel::try_new(1).map_or(zstd, Compression::ZSTD);
    let mut props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(max_row_group))
        // Pages of at most 64 KiB and 4,096 rows: compaction reads its inputs a few thousand
        // rows at a time and fetches whole pages, so small pages keep its memory flat.
        .set_data_page_size_limit(64 << 10)
        .set_data_page_row_count_limit(PAGE_ROWS)
        // A reader holds each column chunk's dictionary for as long as it reads the chunk, and
        // compaction reads every input at once: a capped dictionary keeps that memory set by
        // configuration. Past the cap the rest of the chunk is plain (zstd where enabled).
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
        .set_compression(Compression::UNCOMPRESSED)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_statistics_truncate_length(Some(64))
        .set_offset_index_disabled(!shape.offset_index);
    for c in columns() {
        let path = ColumnPath::from(c.name);
        let empty = shape.empty.contains(&c.name);
        props = props.set_column_dictionary_enabled(path.clone(), c.dictionary && !empty);
        if let Some(encoding) = c.encoding {
            props = props.set_column_encoding(path.clone(), encoding);
        }
        if c.zstd && !empty {
            props = props.set_column_compression(path.clone(), zstd);
        }
        if !c.statistics {
            props = props.set_column_statistics_enabled(path, EnabledStatistics::None);
        }
    }
    props.build()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A resource's columns, computed once per resource rather than once per span.
struct ResourceColumns {
    service: Option<String>,
    attributes: String,
    /// Some `service.name` stays in the generic list (not a string, or repeated).
    generic_service: bool,
}

/// How the generic lists name an attribute that also has a dedicated column (`BlockMeta::
/// generic_dedicated`).
pub const RESOURCE_SERVICE_NAME: &str = "resource.service.name";

impl ResourceColumns {
    fn of(r: &Resource) -> Self {
        let service = r.service_name().map(str::to_owned);
        // service.name (the first one, when a string) has its own column; the rest of the
        // resource stays generic.
        let first = r.attributes.iter().position(|kv| kv.key == "service.name");
        let rest: Vec<&KeyValue> = r
            .attributes
            .iter()
            .enumerate()
            .filter(|(i, _)| service.is_none() || Some(*i) != first)
            .map(|(_, kv)| kv)
            .collect();
        let generic_service = rest.iter().any(|kv| kv.key == "service.name");
        let mut attributes = String::new();
        if !rest.is_empty() {
            attrs::push_list(&mut attributes, rest);
        }
        ResourceColumns {
            service,
            attributes,
            generic_service,
        }
    }
}

/// Appends `"key":` (after a comma unless first) to a JSON object under construction.
fn push_key(out: &mut String, key: &str) {
    out.push(if out.is_empty() { '{' } else { ',' });
    attrs::push_json_str(out, key);
    out.push(':');
}

/// Appends the `other` object of a span: only the fields that differ from their defaults; the
/// empty string when none does.
fn push_other(out: &mut String, s: &Span) {
    if !s.trace_state.is_empty() {
        push_key(out, "trace_state");
        attrs::push_json_str(out, &s.trace_state);
    }
    for (key, n) in [
        ("flags", s.flags),
        ("dropped_attributes_count", s.dropped_attributes_count),
        ("dropped_events_count", s.dropped_events_count),
        ("dropped_links_count", s.dropped_links_count),
        (
            "resource_dropped_attributes_count",
            s.resource.dropped_attributes_count,
        ),
        (
            "scope_dropped_attributes_count",
            s.scope.dropped_attributes_count,
        ),
    ] {
        if n != 0 {
            push_key(out, key);
            attrs::push_int(out, n);
        }
    }
    if !s.scope.attributes.is_empty() {
        push_key(out, "scope_attributes");
        attrs::push_list(out, &s.scope.attributes);
    }
    if !s.links.is_empty() {
        push_key(out, "links");
        out.push('[');
        for (i, l) in s.links.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("[\"");
            tempest_core::hex::push(out, &l.trace_id);
            out.push_str("\",\"");
            tempest_core::hex::push(out, &l.span_id);
            out.push_str("\",");
            attrs::push_json_str(out, &l.trace_state);
            out.push(',');
            attrs::push_list(out, &l.attributes);
            out.push(',');
            attrs::push_int(out, l.dropped_attributes_count);
            out.push(',');
            attrs::push_int(out, l.flags);
            out.push(']');
        }
        out.push(']');
    }
    if !out.is_empty() {
        out.push('}');
    }
}

/// Appends a span's events, `[[time_unix_nano, name, attributes, dropped], …]`; nothing when
/// it has none.
fn push_events(out: &mut String, events: &[Event]) {
    if events.is_empty() {
        return;
    }
    out.push('[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        attrs::push_int(out, e.time_unix_nano);
        out.push(',');
        attrs::push_json_str(out, &e.name);
        out.push(',');
        attrs::push_list(out, &e.attributes);
        out.push(',');
        attrs::push_int(out, e.dropped_attributes_count);
        out.push(']');
    }
    out.push(']');
}

/// The builder of one dedicated attribute column, of its type.
enum DedicatedBuilder {
    Str(StringBuilder),
    Int(Int64Builder),
}

/// Converts spans (already sorted) into one record batch.
pub fn to_batch<'a>(
    spans: impl ExactSizeIterator<Item = &'a Span>,
) -> Result<RecordBatch, ArrowError> {
    to_batch_noting(spans, &mut BTreeSet::new())
}

/// [`to_batch`], adding to `generic` each dedicated attribute (see
/// `BlockMeta::generic_dedicated`) some of whose values went to a generic list.
pub fn to_batch_noting<'a>(
    spans: impl ExactSizeIterator<Item = &'a Span>,
    generic: &mut BTreeSet<String>,
) -> Result<RecordBatch, ArrowError> {
    let n = spans.len();
    let strings = || StringBuilder::with_capacity(n, n * 8);
    let mut trace_id = FixedSizeBinaryBuilder::with_capacity(n, 16);
    let mut span_id = FixedSizeBinaryBuilder::with_capacity(n, 8);
    let mut parent = FixedSizeBinaryBuilder::with_capacity(n, 8);
    let (mut name, mut status_message, mut service) = (strings(), strings(), strings());
    let mut kind = Int8Builder::with_capacity(n);
    let (mut start, mut duration) = (
        Int64Builder::with_capacity(n),
        Int64Builder::with_capacity(n),
    );
    let mut status = Int32Builder::with_capacity(n);
    let mut dedicated: Vec<DedicatedBuilder> = DEDICATED
        .iter()
        .map(|(_, _, t)| match t {
            ValueType::Str => DedicatedBuilder::Str(strings()),
            ValueType::Int => DedicatedBuilder::Int(Int64Builder::with_capacity(n)),
        })
        .collect();
    let mut attributes = StringBuilder::with_capacity(n, n * 64);
    let (mut events, mut res_attrs, mut scope_name, mut scope_version, mut other) =
        (strings(), strings(), strings(), strings(), strings());
    let mut resources: HashMap<*const Resource, ResourceColumns> = HashMap::new();
    // Scratch buffers reused for every span's JSON columns.
    let (mut buf, mut rest) = (String::new(), Vec::<&KeyValue>::new());
    for s in spans {
        trace_id.append_value(s.trace_id)?;
        span_id.append_value(s.span_id)?;
        match &s.parent_span_id {
            Some(p) => parent.append_value(p)?,
            None => parent.append_null(),
        }
        name.append_value(&s.name);
        kind.append_value(s.kind as i8);
        start.append_value(s.start_unix_nano as i64);
        duration.append_value(s.duration_nano() as i64);
        status.append_value(s.status_code);
        status_message.append_value(&s.status_message);
        let res = resources
            .entry(Arc::as_ptr(&s.resource))
            .or_insert_with(|| ResourceColumns::of(&s.resource));
        service.append_option(res.service.as_deref());
        if res.generic_service && !generic.contains(RESOURCE_SERVICE_NAME) {
            generic.insert(RESOURCE_SERVICE_NAME.to_owned());
        }
        res_attrs.append_value(&res.attributes);
        // Dedicated attributes move to their columns (first occurrence of the right type).
        let mut strs: [Option<&str>; DEDICATED.len()] = [None; DEDICATED.len()];
        let mut ints: [Option<i64>; DEDICATED.len()] = [None; DEDICATED.len()];
        rest.clear();
        for kv in &s.attributes {
            let dedicated = dedicated_index(&kv.key);
            let taken = match (dedicated, &kv.value) {
                (Some(i), AnyValue::Str(v)) if takes(i, &kv.value) && strs[i].is_none() => {
                    strs[i] = Some(v);
                    true
                }
                (Some(i), AnyValue::Int(v)) if takes(i, &kv.value) && ints[i].is_none() => {
                    ints[i] = Some(*v);
                    true
                }
                _ => false,
            };
            if !taken {
                if dedicated.is_some() {
                    let noted = format!("span.{}", kv.key);
                    if !generic.contains(&noted) {
                        generic.insert(noted);
                    }
                }
                rest.push(kv);
            }
        }
        for (i, column) in dedicated.iter_mut().enumerate() {
            match column {
                DedicatedBuilder::Str(b) => b.append_option(strs[i]),
                DedicatedBuilder::Int(b) => b.append_option(ints[i]),
            }
        }
        buf.clear();
        if !rest.is_empty() {
            attrs::push_list(&mut buf, rest.iter().copied());
        }
        attributes.append_value(&buf);
        buf.clear();
        push_events(&mut buf, &s.events);
        events.append_value(&buf);
        scope_name.append_value(&s.scope.name);
        scope_version.append_value(&s.scope.version);
        buf.clear();
        push_other(&mut buf, s);
        other.append_value(&buf);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(parent.finish()),
        Arc::new(name.finish()),
        Arc::new(kind.finish()),
        Arc::new(start.finish()),
        Arc::new(duration.finish()),
        Arc::new(status.finish()),
        Arc::new(status_message.finish()),
        Arc::new(service.finish()),
    ];
    for column in &mut dedicated {
        columns.push(match column {
            DedicatedBuilder::Str(b) => Arc::new(b.finish()),
            DedicatedBuilder::Int(b) => Arc::new(b.finish()),
        });
    }
    for c in [
        &mut attributes,
        &mut events,
        &mut res_attrs,
        &mut scope_name,
        &mut scope_version,
        &mut other,
    ] {
        columns.push(Arc::new(c.finish()));
    }
    RecordBatch::try_new(schema(), columns)
}

/// Column `name` of `batch` as the Arrow array type `T`.
pub(crate) fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, String> {
    batch
        .column_by_name(name)
        .ok_or_else(|| format!("column {name} missing"))?
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| format!("column {name} has an unexpected type"))
}

/// The fields of a span's `other` object.
#[derive(Clone, Default)]
struct Other {
    trace_state: String,
    flags: u32,
    dropped_attributes_count: u32,
    dropped_events_count: u32,
    dropped_links_count: u32,
    resource_dropped_attributes_count: u32,
    scope_dropped_attributes_count: u32,
    scope_attributes: Vec<KeyValue>,
    links: Vec<Link>,
}

impl Other {
    fn parse(text: &str) -> Result<Other, String> {
        let mut o = Other::default();
        if text.is_empty() {
            return Ok(o);
        }
        let v: Value = serde_json::from_str(text).map_err(|e| format!("other: {e}"))?;
        let map = v.as_object().ok_or("other is not an object")?;
        let count = |key: &str| -> Result<u32, String> {
            match map.get(key) {
                None => Ok(0),
                Some(n) => n
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("other.{key} is not a count")),
            }
        };
        o.flags = count("flags")?;
        o.dropped_attributes_count = count("dropped_attributes_count")?;
        o.dropped_events_count = count("dropped_events_count")?;
        o.dropped_links_count = count("dropped_links_count")?;
        o.resource_dropped_attributes_count = count("resource_dropped_attributes_count")?;
        o.scope_dropped_attributes_count = count("scope_dropped_attributes_count")?;
        if let Some(ts) = map.get("trace_state") {
            o.trace_state = ts.as_str().ok_or("other.trace_state")?.to_owned();
        }
        if let Some(a) = map.get("scope_attributes") {
            o.scope_attributes = attrs::decode_list(a)?;
        }
        for l in map
            .get("links")
            .map(|l| l.as_array().ok_or("other.links is not an array"))
            .transpose()?
            .into_iter()
            .flatten()
        {
            o.links.push(Link {
                trace_id: l[0].as_str().and_then(unhex::<16>).ok_or("link trace id")?,
                span_id: l[1].as_str().and_then(unhex::<8>).ok_or("link span id")?,
                trace_state: l[2].as_str().ok_or("link trace state")?.to_owned(),
                attributes: attrs::decode_list(&l[3])?,
                dropped_attributes_count: l[4]
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or("link dropped count")?,
                flags: l[5]
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or("link flags")?,
            });
        }
        Ok(o)
    }
}

fn parse_events(text: &str) -> Result<Vec<Event>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(text).map_err(|e| format!("events: {e}"))?;
    v.as_array()
        .ok_or("events is not an array")?
        .iter()
        .map(|e| {
            Ok(Event {
                time_unix_nano: e[0].as_u64().ok_or("event time")?,
                name: e[1].as_str().ok_or("event name")?.to_owned(),
                attributes: attrs::decode_list(&e[2])?,
                dropped_attributes_count: e[3]
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or("event dropped count")?,
            })
        })
        .collect()
}

/// Converts a record batch of a block back into spans, sharing equal resources and scopes.
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<Span>, String> {
    let trace_id = column::<FixedSizeBinaryArray>(batch, columns::TRACE_ID)?;
    let span_id = column::<FixedSizeBinaryArray>(batch, columns::SPAN_ID)?;
    let parent = column::<FixedSizeBinaryArray>(batch, "parent_span_id")?;
    let s = |name| column::<StringArray>(batch, name);
    let (name, status_message, service) = (
        s(columns::NAME)?,
        s(columns::STATUS_MESSAGE)?,
        s(columns::SERVICE_NAME)?,
    );
    let (attributes, events, res_attrs, scope_name, scope_version, other) = (
        s(columns::SPAN_ATTRIBUTES)?,
        s("events")?,
        s(columns::RESOURCE_ATTRIBUTES)?,
        s(columns::SCOPE_NAME)?,
        s(columns::SCOPE_VERSION)?,
        s("other")?,
    );
    let kind = column::<Int8Array>(batch, columns::KIND)?;
    let start = column::<Int64Array>(batch, columns::START)?;
    let duration = column::<Int64Array>(batch, columns::DURATION)?;
    let status = column::<Int32Array>(batch, columns::STATUS_CODE)?;
    // Resources, scopes and `other` objects repeat from row to row: each distinct one is
    // decoded once, looked up by the stored text itself.
    let mut resources: HashMap<(Option<&str>, &str, u32), Arc<Resource>> = HashMap::new();
    let mut scopes: HashMap<(&str, &str, &str), Arc<Scope>> = HashMap::new();
    let mut others: HashMap<&str, Other> = HashMap::new();
    enum Dedicated<'a> {
        Str(&'a StringArray),
        Int(&'a Int64Array),
    }
    let dedicated: Vec<(&str, Dedicated)> = DEDICATED
        .iter()
        .map(|(key, col, k)| {
            Ok((
                *key,
                match k {
                    ValueType::Str => Dedicated::Str(column::<StringArray>(batch, col)?),
                    ValueType::Int => Dedicated::Int(column::<Int64Array>(batch, col)?),
                },
            ))
        })
        .collect::<Result<_, String>>()?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let other_text = other.value(row);
        let extra = match others.get(other_text) {
            Some(o) => o.clone(),
            None => {
                let o = Other::parse(other_text)?;
                others.insert(other_text, o.clone());
                o
            }
        };
        let svc = (!service.is_null(row)).then(|| service.value(row));
        let res_key = (
            svc,
            res_attrs.value(row),
            extra.resource_dropped_attributes_count,
        );
        let resource = match resources.get(&res_key) {
            Some(r) => r.clone(),
            None => {
                let mut attributes = Vec::new();
                if let Some(svc) = res_key.0 {
                    attributes.push(KeyValue::str("service.name", svc));
                }
                attributes.extend(attrs::decode(res_key.1)?);
                let r = Arc::new(Resource {
                    attributes,
                    dropped_attributes_count: res_key.2,
                });
                resources.insert(res_key, r.clone());
                r
            }
        };
        let scope_key = (scope_name.value(row), scope_version.value(row), other_text);
        let scope = match scopes.get(&scope_key) {
            Some(sc) => sc.clone(),
            None => {
                let sc = Arc::new(Scope {
                    name: scope_key.0.to_owned(),
                    version: scope_key.1.to_owned(),
                    attributes: extra.scope_attributes.clone(),
                    dropped_attributes_count: extra.scope_dropped_attributes_count,
                });
                scopes.insert(scope_key, sc.clone());
                sc
            }
        };
        let mut span_attrs = attrs::decode(attributes.value(row))?;
        for (key, col) in &dedicated {
            let value = match col {
                Dedicated::Str(c) => {
                    (!c.is_null(row)).then(|| AnyValue::Str(c.value(row).to_owned()))
                }
                Dedicated::Int(c) => (!c.is_null(row)).then(|| AnyValue::Int(c.value(row))),
            };
            if let Some(value) = value {
                span_attrs.push(KeyValue {
                    key: (*key).to_owned(),
                    value,
                });
            }
        }
        let start_ns = start.value(row) as u64;
        out.push(Span {
            trace_id: trace_id
                .value(row)
                .try_into()
                .map_err(|_| "trace id width")?,
            span_id: span_id.value(row).try_into().map_err(|_| "span id width")?,
            parent_span_id: if parent.is_null(row) {
                None
            } else {
                Some(
                    parent
                        .value(row)
                        .try_into()
                        .map_err(|_| "parent id width")?,
                )
            },
            trace_state: extra.trace_state,
            flags: extra.flags,
            name: name.value(row).to_owned(),
            kind: SpanKind::from_i32(i32::from(kind.value(row))),
            start_unix_nano: start_ns,
            end_unix_nano: start_ns + duration.value(row) as u64,
            attributes: span_attrs,
            dropped_attributes_count: extra.dropped_attributes_count,
            events: parse_events(events.value(row))?,
            dropped_events_count: extra.dropped_events_count,
            links: extra.links,
            dropped_links_count: extra.dropped_links_count,
            status_code: status.value(row),
            status_message: status_message.value(row).to_owned(),
            resource,
            scope,
        });
    }
    Ok(out)
}
