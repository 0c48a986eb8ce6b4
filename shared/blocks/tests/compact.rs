//! Merging blocks: every distinct span of the inputs exactly once, in stored order, with small
//! read and write batches (so the merge crosses batch and row-group edges many times), exact
//! duplicates dropped, Zipkin's shared client/server spans kept, and the same output block id
//! when the same inputs are merged again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use tempest_blocks::compact::{MergeOptions, merge};
use tempest_blocks::scan::Footer;
use tempest_blocks::store::Location;
use tempest_blocks::{BlockMeta, reader, writer};
use tempest_core::TenantId;
use tempest_traces::{KeyValue, Resource, Scope, Span, SpanKind};

fn span(trace: u8, n: u8, kind: SpanKind, start: u64) -> Span {
    let resource = Arc::new(Resource {
        attributes: vec![KeyValue::str("service.name", &format!("svc-{}", n % 3))],
        dropped_attributes_count: 0,
    });
    Span {
        trace_id: [trace; 16],
        span_id: [n; 8],
        parent_span_id: (n > 0).then_some([0; 8]),
        name: format!("op-{n}"),
        kind,
        start_unix_nano: start,
        end_unix_nano: start + 1_000,
        attributes: vec![KeyValue::str("k", &format!("v{trace}-{n}"))],
        resource,
        scope: Arc::new(Scope::default()),
        ..Span::default()
    }
}

/// What identifies a stored span: trace, start, span, kind, attributes, parent.
type Identity = ([u8; 16], u64, [u8; 8], i32, String, Option<[u8; 8]>);

/// What identifies a stored span.
fn identity(s: &Span) -> Identity {
    (
        s.trace_id,
        s.start_unix_nano,
        s.span_id,
        s.kind as i32,
        format!("{:?}", s.attributes),
        s.parent_span_id,
    )
}

/// Writes each batch as one block.
async fn write_blocks(loc: &Location, tenant: &TenantId, blocks: &[Vec<Span>]) -> Vec<BlockMeta> {
    let mut metas = Vec::new();
    for spans in blocks {
        metas.push(
            writer::write_block(loc, tenant, spans.clone())
                .await
                .expect("write")
                .expect("block"),
        );
    }
    metas
}

/// A local folder store in a temporary directory, and a tenant.
fn local_folder() -> (tempfile::TempDir, Location, TenantId) {
    let dir = tempfile::tempdir().expect("dir");
    let loc = Location::open(&dir.path().to_string_lossy()).expect("store");
    (dir, loc, TenantId::parse(Some("t")).expect("tenant"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_keeps_every_distinct_span_once_in_order() {
    let loc = Location::open("memory://").expect("store");
    let tenant = TenantId::parse(Some("t")).expect("tenant");
    let base = 1_700_000_000_000_000_000u64;
    // Six blocks; traces spread over them; block 5 repeats block 2's spans (a retried write).
    let mut blocks: Vec<Vec<Span>> = vec![Vec::new(); 5];
    for trace in 0..40u8 {
        for n in 0..6u8 {
            let b = usize::from((trace + n) % 5);
            blocks[b].push(span(trace, n, SpanKind::Server, base + u64::from(n) * 10));
        }
    }
    // Zipkin's shared span: one id, client and server, same start.
    blocks[0].push(span(7, 9, SpanKind::Client, base + 500));
    blocks[3].push(span(7, 9, SpanKind::Server, base + 500));
    blocks.push(blocks[2].clone());
    blocks[5].push(span(99, 1, SpanKind::Internal, base));
    let metas = write_blocks(&loc, &tenant, &blocks).await;
    let want: BTreeSet<_> = blocks.iter().flatten().map(identity).collect();

    let opts = MergeOptions {
        batch_rows: 7,
        window_rows: 11,
        output_rows: 5,
        row_group_spans: 13,
    };
    let out = merge(&loc, &tenant, &metas, opts)
        .await
        .expect("merge")
        .expect("output");
    assert_eq!(out.compaction_level, 1);
    assert_eq!(out.span_count as usize, want.len());
    assert_eq!(out.trace_count, 41);
    assert_eq!(out.row_groups, out.span_count.div_ceil(13));

    let got = reader::read_spans(&loc, &out).await.expect("read");
    let ids: Vec<_> = got.iter().map(identity).collect();
    assert_eq!(ids.len(), want.len(), "a span written twice or lost");
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), want);
    let order: Vec<_> = got
        .iter()
        .map(|s| (s.trace_id, s.start_unix_nano, s.span_id))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "not in stored order"
    );
    // The whole block reads back field for field (attributes, resources).
    let sample = got
        .iter()
        .find(|s| s.trace_id == [3; 16] && s.span_id == [4; 8])
        .expect("span");
    assert_eq!(sample.resource.service_name(), Some("svc-1"));
    assert_eq!(sample.attributes, vec![KeyValue::str("k", "v3-4")]);

    // Its bloom and footer serve lookups like any block's.
    let bloom = reader::read_bloom(&loc, &out).await.expect("bloom");
    assert!((0..40u8).all(|t| bloom.may_contain(&[t; 16])));
    let trace7 = reader::read_trace(&loc, &out, &Footer::default(), &[7; 16])
        .await
        .expect("trace");
    assert_eq!(
        trace7.len(),
        8,
        "six spans plus the shared client and server span"
    );

    // The same inputs merge into the same block (a retried compaction overwrites, not adds).
    let again = merge(&loc, &tenant, &metas, MergeOptions::default())
        .await
        .expect("merge")
        .expect("output");
    assert_eq!(again.block_id, out.block_id);
    assert_eq!(again.span_count, out.span_count);
    // Committed, the output hides its inputs from readers (marking them comes next).
    let listed = reader::list_blocks(&loc, &tenant).await.expect("list");
    assert_eq!(listed, vec![again]);
    let mut replaced = out.replaces.clone();
    replaced.sort_unstable();
    let mut inputs: Vec<String> = metas.iter().map(|m| m.block_id.clone()).collect();
    inputs.sort_unstable();
    assert_eq!(replaced, inputs);
}

#[tokio::test]
async fn merging_nothing_writes_nothing() {
    let loc = Location::open("memory://").expect("store");
    let tenant = TenantId::parse(Some("t")).expect("tenant");
    let out = merge(&loc, &tenant, &[], MergeOptions::default())
        .await
        .expect("merge");
    assert!(out.is_none());
    assert!(
        reader::list_blocks(&loc, &tenant)
            .await
            .expect("list")
            .is_empty()
    );
}

/// The dictionary of each column chunk of a block's data file: (column, values, decoded bytes).
async fn dictionaries(loc: &Location, tenant: &str, block_id: &str) -> Vec<(String, u32, usize)> {
    use parquet::column::page::Page;
    use parquet::file::reader::FileReader;
    let path = tempest_blocks::listing::block_path(loc, tenant, block_id, "data.parquet");
    let bytes = loc.get_if_present(&path).await.unwrap().expect("data file");
    let file = parquet::file::serialized_reader::SerializedFileReader::new(bytes).unwrap();
    let mut out = Vec::new();
    for rg in 0..file.num_row_groups() {
        let group = file.get_row_group(rg).unwrap();
        for c in 0..group.num_columns() {
            let name = group.metadata().column(c).column_path().string();
            let mut pages = group.get_column_page_reader(c).unwrap();
            if let Some(Page::DictionaryPage {
                buf, num_values, ..
            }) = pages.get_next_page().unwrap()
            {
                out.push((name, num_values, buf.len()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dictionaries_stay_within_their_cap_however_large_the_row_group() {
    // Compaction holds every input's current dictionaries at once: their size must be set by
    // the writer's cap, not by how many distinct values a large row group has.
    let loc = Location::open("memory://").expect("store");
    let tenant = TenantId::parse(Some("t")).expect("tenant");
    let mut metas = Vec::new();
    for block in 0..2u16 {
        let spans: Vec<Span> = (0..12_000u16)
            .map(|i| {
                let mut s = span((i % 200) as u8, (i % 250) as u8, SpanKind::Server, 1_000);
                s.trace_id[0] = block as u8;
                s.trace_id[1..3].copy_from_slice(&i.to_be_bytes());
                s.span_id[..2].copy_from_slice(&i.to_be_bytes());
                s.parent_span_id =
                    Some([(i / 3) as u8, (i / 768) as u8, block as u8, 1, 2, 3, 4, 5]);
                // Distinct high-cardinality names: a dictionary of them would be ~200 KB.
                s.name = format!("GET /items/{block}-{i}");
                s
            })
            .collect();
        metas.push(
            writer::write_block(&loc, &tenant, spans)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let out = merge(&loc, &tenant, &metas, MergeOptions::default())
        .await
        .unwrap()
        .expect("merged");
    assert_eq!(out.span_count, 24_000);
    let cap = tempest_blocks::schema::DICTIONARY_PAGE_BYTES;
    for meta in metas.iter().chain([&out]) {
        let dicts = dictionaries(&loc, "t", &meta.block_id).await;
        let names = dicts
            .iter()
            .find(|(c, _, _)| c == "name")
            .expect("a name dictionary");
        assert!(
            names.1 < 12_000,
            "the names past the cap are not in it: {names:?}"
        );
        for (column, values, bytes) in dicts {
            // The writer closes a dictionary at the first value that takes it past the cap.
            assert!(
                bytes <= cap + 64,
                "{column}: a dictionary of {values} values, {bytes} bytes"
            );
        }
    }
    // The names past the cap are stored plain, and read back whole.
    let spans = reader::read_trace(&loc, &out, &Footer::default(), &{
        let mut id = [0u8; 16];
        id[0] = 1;
        id[1..3].copy_from_slice(&11_999u16.to_be_bytes());
        id[3..].fill((11_999 % 200) as u8);
        id
    })
    .await
    .unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "GET /items/1-11999");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_null_in_every_input_is_stored_plain_in_the_output() {
    use parquet::basic::Compression;
    let (dir, loc, tenant) = local_folder();
    let base = 1_700_000_000_000_000_000u64;
    let blocks: Vec<Vec<Span>> = (0..3u8)
        .map(|b| {
            (0..20u8)
                .map(|n| span(b, n, SpanKind::Server, base + u64::from(n)))
                .collect()
        })
        .collect();
    let mut metas = write_blocks(&loc, &tenant, &blocks).await;
    let out = merge(&loc, &tenant, &metas, MergeOptions::default())
        .await
        .expect("merge")
        .expect("output");
    let chunks = common::column_chunks(dir.path(), &out);
    let shape = |name: &str| {
        chunks
            .iter()
            .find(|c| c.column_path().string() == name)
            .map(|c| (c.compression(), c.dictionary_page_offset().is_some()))
            .expect("column")
    };
    // No input has a URL or a statement: neither does the output, so nothing to compress.
    assert_eq!(shape("url_full"), (Compression::UNCOMPRESSED, false));
    assert_eq!(shape("db_system"), (Compression::UNCOMPRESSED, false));
    // Columns with values keep their codec and dictionary.
    assert!(matches!(shape("attributes").0, Compression::ZSTD(_)));
    assert!(shape("service_name").1);
    // parent_span_id keeps no statistics, so whether it is empty is not known: compressed.
    assert!(matches!(shape("parent_span_id").0, Compression::ZSTD(_)));

    // One input span with a URL: the output's column holds it, compressed as usual.
    let mut with_url = span(9, 1, SpanKind::Client, base);
    with_url
        .attributes
        .push(KeyValue::str("url.full", "https://example.com/a"));
    metas.push(
        writer::write_block(&loc, &tenant, vec![with_url.clone()])
            .await
            .expect("write")
            .expect("block"),
    );
    let out = merge(&loc, &tenant, &metas, MergeOptions::default())
        .await
        .expect("merge")
        .expect("output");
    assert!(
        common::column_chunks(dir.path(), &out)
            .iter()
            .any(|c| c.column_path().string() == "url_full"
                && matches!(c.compression(), Compression::ZSTD(_)))
    );
    let got = reader::read_spans(&loc, &out).await.expect("read");
    assert_eq!(got.len(), 61);
    let read = got
        .iter()
        .find(|s| s.trace_id == [9; 16])
        .expect("span with a URL");
    assert_eq!(read.attributes, with_url.attributes);
}

/// An output larger than one upload part (1 MiB into a local folder) is stored part by part
/// and reads back whole: every input span once, in stored order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_of_several_parts_reads_back_whole() {
    let (_dir, loc, tenant) = local_folder();
    let base = 1_700_000_000_000_000_000u64;
    // Random ids and attribute values, so the output does not compress below a few parts.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let blocks: Vec<Vec<Span>> = (0..4u64)
        .map(|b| {
            (0..8_000u64)
                .map(|n| {
                    let mut s = span(0, 1, SpanKind::Server, base + b * 8_000 + n);
                    s.trace_id = u128::from(random()).to_be_bytes();
                    s.span_id = random().to_be_bytes();
                    let value: String = (0..6).map(|_| format!("{:016x}", random())).collect();
                    s.attributes = vec![KeyValue::str("k", &value)];
                    s
                })
                .collect()
        })
        .collect();
    let metas = write_blocks(&loc, &tenant, &blocks).await;
    let out = merge(&loc, &tenant, &metas, MergeOptions::default())
        .await
        .expect("merge")
        .expect("output");
    assert!(out.data_size > 2 << 20, "output of {} bytes", out.data_size);
    let got = reader::read_spans(&loc, &out).await.expect("read");
    let mut want: Vec<Identity> = blocks.iter().flatten().map(identity).collect();
    want.sort();
    assert_eq!(got.iter().map(identity).collect::<Vec<_>>(), want);
}
