//! Spans written as a block read back identical, on a local folder and in memory.

mod common;

use std::sync::Arc;

use tempest_blocks::store::Location;
use tempest_blocks::{reader, writer};
use tempest_core::TenantId;
use tempest_traces::{AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanKind};

fn span(
    trace: u8,
    id: u8,
    parent: Option<u8>,
    service: &Arc<Resource>,
    scope: &Arc<Scope>,
) -> Span {
    Span {
        trace_id: [trace; 16],
        span_id: [id; 8],
        parent_span_id: parent.map(|p| [p; 8]),
        trace_state: "k=v".into(),
        flags: 1,
        name: format!("op-{id}"),
        kind: SpanKind::Server,
        start_unix_nano: 1_700_000_000_000_000_000 + u64::from(id) * 1000,
        end_unix_nano: 1_700_000_000_000_000_000 + u64::from(id) * 1000 + 500,
        attributes: vec![
            KeyValue::str("http.request.method", "GET"),
            KeyValue {
                key: "http.response.status_code".into(),
                value: AnyValue::Int(200),
            },
            KeyValue {
                key: "http.route".into(),
                value: AnyValue::Int(7),
            },
            KeyValue {
                key: "custom".into(),
                value: AnyValue::Double(1.5),
            },
        ],
        dropped_attributes_count: 2,
        events: vec![Event {
            time_unix_nano: 5,
            name: "evt".into(),
            attributes: vec![KeyValue::str("a", "b")],
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 3,
        links: vec![Link {
            trace_id: [9; 16],
            span_id: [8; 8],
            trace_state: "x=y".into(),
            attributes: vec![],
            dropped_attributes_count: 0,
            flags: 1,
        }],
        dropped_links_count: 4,
        status_code: 2,
        status_message: "boom".into(),
        resource: service.clone(),
        scope: scope.clone(),
    }
}

fn normalise(mut spans: Vec<Span>) -> Vec<Span> {
    // Dedicated attributes come back after the generic ones; order of attributes carries no meaning.
    for s in &mut spans {
        s.attributes.sort_by(|a, b| a.key.cmp(&b.key));
    }
    spans.sort_by_key(|s| (s.trace_id, s.start_unix_nano, s.span_id));
    spans
}

async fn round_trip(loc: Location) {
    let resource = Arc::new(Resource {
        attributes: vec![
            KeyValue::str("service.name", "checkout"),
            KeyValue::str("host.name", "h1"),
        ],
        dropped_attributes_count: 1,
    });
    let scope = Arc::new(Scope {
        name: "lib".into(),
        version: "1.0".into(),
        attributes: vec![KeyValue::str("s", "t")],
        dropped_attributes_count: 2,
    });
    let spans = vec![
        span(2, 3, Some(1), &resource, &scope),
        span(1, 1, None, &resource, &scope),
        span(2, 2, None, &resource, &scope),
    ];
    let tenant = TenantId::parse(Some("team-a")).expect("tenant");
    let meta = writer::write_block(&loc, &tenant, spans.clone())
        .await
        .expect("write")
        .expect("non-empty");
    assert_eq!(
        (meta.span_count, meta.trace_count, meta.compaction_level),
        (3, 2, 0)
    );
    let metas = reader::list_blocks(&loc, &tenant).await.expect("list");
    assert_eq!(metas, vec![meta.clone()]);
    let back = reader::read_spans(&loc, &meta).await.expect("read");
    assert_eq!(normalise(back), normalise(spans.clone()));
    let trace = reader::find_trace(&loc, &tenant, &[2; 16])
        .await
        .expect("find");
    assert_eq!(trace.len(), 2);
    assert!(
        reader::find_trace(&loc, &tenant, &[7; 16])
            .await
            .expect("find")
            .is_empty()
    );
    // Writing the same batch again (a retry) lands on the same block, and no span shows twice.
    let again = writer::write_block(&loc, &tenant, spans)
        .await
        .expect("write")
        .expect("non-empty");
    assert_eq!(again.block_id, meta.block_id);
    assert_eq!(
        reader::list_blocks(&loc, &tenant)
            .await
            .expect("list")
            .len(),
        1
    );
    // Another tenant sees nothing.
    let other = TenantId::parse(Some("team-b")).expect("tenant");
    assert!(
        reader::list_blocks(&loc, &other)
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn local_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    round_trip(Location::open(&dir.path().to_string_lossy()).expect("open")).await;
    // A folder without meta.json is not a block.
    std::fs::create_dir_all(dir.path().join("team-a/half-written")).expect("mkdir");
    std::fs::write(
        dir.path().join("team-a/half-written/data.parquet"),
        b"partial",
    )
    .expect("write");
    let loc = Location::open(&format!("file://{}", dir.path().display())).expect("open");
    assert_eq!(
        reader::list_blocks(&loc, &TenantId::parse(Some("team-a")).expect("t"))
            .await
            .expect("list")
            .len(),
        1
    );
}

#[tokio::test]
async fn memory() {
    round_trip(Location::open("memory://").expect("open")).await;
}

/// `count` spans in `traces` traces (trace ids 0..traces, spread evenly), each with its own
/// span id, every one a child of its trace's first span.
fn spans_in_traces(count: u32, traces: u32) -> Vec<Span> {
    let resource = Arc::new(Resource {
        attributes: vec![KeyValue::str("service.name", "checkout")],
        dropped_attributes_count: 0,
    });
    let scope = Arc::new(Scope::default());
    (0..count)
        .map(|n| {
            let trace = n % traces;
            let mut s = span(0, 0, Some(0), &resource, &scope);
            s.trace_id = u128::from(trace).to_be_bytes();
            s.span_id = u64::from(n + 1).to_be_bytes();
            s.parent_span_id = (n >= traces).then(|| u64::from(trace + 1).to_be_bytes());
            s.start_unix_nano += u64::from(n);
            s.end_unix_nano += u64::from(n);
            s
        })
        .collect()
}

/// The bloom filter is sized for the block's traces, not its spans (a trace has several), and
/// still admits every trace of the block and few others. A block small enough to be read whole
/// has no offset index, a footer without the optional parts (encoding and size statistics) and
/// no compression on columns without a value, but keeps its min/max statistics; a larger one
/// has an offset index, for readers that fetch part of a column chunk.
#[tokio::test]
async fn bloom_sized_for_traces_and_offset_index_only_where_it_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let loc = Location::open(&dir.path().to_string_lossy()).expect("open");
    let tenant = TenantId::parse(Some("sizes")).expect("tenant");
    let spans = spans_in_traces(1400, 200);
    let meta = writer::write_block(&loc, &tenant, spans.clone())
        .await
        .expect("write")
        .expect("non-empty");
    assert_eq!((meta.span_count, meta.trace_count), (1400, 200));
    // 16 header bytes and 20 bits per trace.
    assert_eq!(meta.bloom_size, 16 + 500);
    let bloom = reader::read_bloom(&loc, &meta).await.expect("bloom");
    assert!((0..200u128).all(|t| bloom.may_contain(&t.to_be_bytes())));
    let false_positives = (1_000..11_000u128)
        .filter(|t| bloom.may_contain(&(t * 0x9e37_79b9).to_be_bytes()))
        .count();
    assert!(
        false_positives < 20,
        "{false_positives} of 10,000 absent ids admitted"
    );
    let chunks = common::column_chunks(dir.path(), &meta);
    assert!(chunks.iter().all(|c| c.offset_index_length().is_none()
        && c.page_encoding_stats().is_none()
        && c.unencoded_byte_array_data_bytes().is_none()
        && c.definition_level_histogram().is_none()));
    let trace_ids = chunks
        .iter()
        .find(|c| c.column_path().string() == "trace_id")
        .and_then(|c| c.statistics())
        .expect("trace_id statistics");
    // Columns without a value in the block are not compressed; the others are.
    let codec = |chunks: &[parquet::file::metadata::ColumnChunkMetaData], name: &str| {
        chunks
            .iter()
            .find(|c| c.column_path().string() == name)
            .map(|c| c.compression())
            .expect("column")
    };
    use parquet::basic::Compression;
    assert_eq!(codec(&chunks, "url_full"), Compression::UNCOMPRESSED);
    assert_eq!(codec(&chunks, "db_statement"), Compression::UNCOMPRESSED);
    assert!(matches!(codec(&chunks, "trace_id"), Compression::ZSTD(_)));
    assert!(matches!(codec(&chunks, "attributes"), Compression::ZSTD(_)));
    assert!(matches!(codec(&chunks, "events"), Compression::ZSTD(_)));
    // ... nor dictionary-encoded (an empty dictionary is a page header and footer fields).
    let dictionary_in = |chunks: &[parquet::file::metadata::ColumnChunkMetaData], name: &str| {
        chunks
            .iter()
            .find(|c| c.column_path().string() == name)
            .map(|c| c.dictionary_page_offset().is_some())
            .expect("column")
    };
    assert!(!dictionary_in(&chunks, "http_method") && !dictionary_in(&chunks, "db_system"));
    assert!(
        dictionary_in(&chunks, "service_name") && dictionary_in(&chunks, "resource_attributes")
    );
    assert!(matches!(
        codec(&chunks, "resource_attributes"),
        Compression::ZSTD(_)
    ));
    assert_eq!(trace_ids.min_bytes_opt(), Some(&[0u8; 16][..]));
    assert_eq!(trace_ids.max_bytes_opt(), Some(&199u128.to_be_bytes()[..]));
    assert_eq!(
        normalise(reader::read_spans(&loc, &meta).await.expect("read")),
        normalise(spans)
    );

    let big = spans_in_traces(5000, 500);
    let meta = writer::write_block(&loc, &tenant, big.clone())
        .await
        .expect("write")
        .expect("non-empty");
    let chunks = common::column_chunks(dir.path(), &meta);
    assert!(chunks.iter().all(|c| c.offset_index_length().is_some()));
    // Read in windows of pages, but written in one batch: the empty columns are known.
    assert_eq!(codec(&chunks, "url_full"), Compression::UNCOMPRESSED);
    assert!(matches!(codec(&chunks, "attributes"), Compression::ZSTD(_)));
    assert_eq!(
        normalise(reader::read_spans(&loc, &meta).await.expect("read")),
        normalise(big)
    );

    // More spans than one encoding batch: the empty columns are found from the spans before
    // the first batch is written.
    let bigger = spans_in_traces(9000, 900);
    let meta = writer::write_block(&loc, &tenant, bigger.clone())
        .await
        .expect("write")
        .expect("non-empty");
    let chunks = common::column_chunks(dir.path(), &meta);
    assert_eq!(codec(&chunks, "url_full"), Compression::UNCOMPRESSED);
    assert!(!dictionary_in(&chunks, "http_method") && !dictionary_in(&chunks, "db_system"));
    // `http.route` is an int here, so it stays in the generic list and its column is empty.
    assert!(!dictionary_in(&chunks, "http_route"));
    assert!(matches!(
        codec(&chunks, "parent_span_id"),
        Compression::ZSTD(_)
    ));
    assert!(dictionary_in(&chunks, "service_name"));
    assert!(matches!(codec(&chunks, "attributes"), Compression::ZSTD(_)));
    assert_eq!(
        normalise(reader::read_spans(&loc, &meta).await.expect("read")),
        normalise(bigger)
    );
}

/// A group commit converts each request's spans on its own thread and merges the requests'
/// sorted batches when it writes (`writer::write_sorted`): the block is the one a single call
/// writes for all the spans (same id, same bytes, same meta), whether it is one encoding batch
/// or several, and whether a trace's spans came in one request or several.
#[tokio::test]
async fn merged_requests_make_the_block_one_call_writes() {
    let tenant = TenantId::parse(Some("merged")).expect("tenant");
    let other_resource = Arc::new(Resource {
        attributes: vec![KeyValue::str("host.name", "h2")],
        dropped_attributes_count: 0,
    });
    for (spans, traces, requests) in [(40, 7, 3), (1400, 200, 1), (9000, 300, 4)] {
        let mut all = spans_in_traces(spans, traces);
        // A request without a service name and another dedicated attribute, so the requests'
        // batches differ in which columns they fill.
        for s in all.iter_mut().skip(1).step_by(5) {
            s.resource = other_resource.clone();
            s.attributes.push(KeyValue::str("db.system", "postgresql"));
        }
        // Round-robin, so every request holds spans of most traces.
        let mut parts = vec![Vec::new(); requests];
        for (n, s) in all.iter().enumerate() {
            parts[n % requests].push(s.clone());
        }
        let (grouped, single) = (
            Location::open("memory://").expect("open"),
            Location::open("memory://").expect("open"),
        );
        let parts = parts
            .into_iter()
            .map(writer::SortedSpans::new)
            .collect::<Result<Vec<_>, _>>()
            .expect("convert");
        let merged = writer::write_sorted(&grouped, &tenant, parts)
            .await
            .expect("write")
            .expect("non-empty");
        let whole = writer::write_block(&single, &tenant, all.clone())
            .await
            .expect("write")
            .expect("non-empty");
        let data = |loc: &Location, meta: &tempest_blocks::BlockMeta| {
            let path = tempest_blocks::listing::block_path(
                loc,
                &meta.tenant,
                &meta.block_id,
                tempest_blocks::listing::DATA,
            );
            let store = loc.store.clone();
            async move {
                use object_store::ObjectStoreExt;
                store
                    .get(&path)
                    .await
                    .expect("get")
                    .bytes()
                    .await
                    .expect("bytes")
            }
        };
        assert_eq!(
            data(&grouped, &merged).await,
            data(&single, &whole).await,
            "{spans} spans"
        );
        let created = whole.created_at.clone();
        assert_eq!(
            tempest_blocks::BlockMeta {
                created_at: created,
                ..merged.clone()
            },
            whole
        );
        assert_eq!(
            (merged.span_count, merged.trace_count),
            (u64::from(spans), u64::from(traces))
        );
        let back = reader::read_spans(&grouped, &merged).await.expect("read");
        assert_eq!(normalise(back), normalise(all));
    }
    // No spans, no block.
    let empty = writer::SortedSpans::new(Vec::new()).expect("convert");
    let loc = Location::open("memory://").expect("open");
    assert!(
        writer::write_sorted(&loc, &tenant, vec![empty])
            .await
            .expect("write")
            .is_none()
    );
}
