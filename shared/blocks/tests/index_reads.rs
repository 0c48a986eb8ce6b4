//! Trace lookup cost does not grow with the number of blocks: with the tenant index warm, one
//! lookup among 150 blocks is one listing plus at most two reads per block whose bloom admits
//! the trace (the footer, then the trace's row group; one for a block smaller than the footer
//! read). The object store here counts every request.

use object_store::ObjectStoreExt;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use tempest_blocks::compact::{CompactOptions, Compactor, SystemClock};
use tempest_blocks::index::BlockIndex;
use tempest_blocks::store::Location;
use tempest_blocks::{reader, writer};
use tempest_core::TenantId;
use tempest_traces::{KeyValue, Resource, Scope, Span, SpanKind};

/// An object store that counts requests by kind.
#[derive(Debug, Default)]
struct Counting {
    inner: InMemory,
    gets: AtomicU64,
    ranged_gets: AtomicU64,
    lists: AtomicU64,
}

impl fmt::Display for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting")
    }
}

impl Counting {
    fn reset(&self) {
        for c in [&self.gets, &self.ranged_gets, &self.lists] {
            c.store(0, Ordering::SeqCst);
        }
    }
    fn counts(&self) -> (u64, u64, u64) {
        (
            self.lists.load(Ordering::SeqCst),
            self.gets.load(Ordering::SeqCst),
            self.ranged_gets.load(Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl ObjectStore for Counting {
    async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(l, p, o).await
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(l, o).await
    }
    async fn get_opts(&self, l: &Path, o: GetOptions) -> Result<GetResult> {
        let counter = if o.range.is_some() {
            &self.ranged_gets
        } else {
            &self.gets
        };
        counter.fetch_add(1, Ordering::SeqCst);
        self.inner.get_opts(l, o).await
    }
    async fn get_ranges(&self, l: &Path, ranges: &[Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        // One request per coalesced range, as object_store's HTTP stores do.
        let merged = object_store::coalesce_ranges(
            ranges,
            |r| async move {
                self.ranged_gets.fetch_add(1, Ordering::SeqCst);
                self.inner.get_range(l, r).await
            },
            object_store::OBJECT_STORE_COALESCE_DEFAULT,
        )
        .await?;
        Ok(merged)
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, o).await
    }
}

fn trace_id(block: u32, trace: u32) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&block.to_be_bytes());
    id[4..8].copy_from_slice(&trace.to_be_bytes());
    id[15] = 1;
    id
}

fn spans(block: u32, resource: &Arc<Resource>, scope: &Arc<Scope>) -> Vec<Span> {
    (0..50u32)
        .flat_map(|t| {
            (0..4u8).map(move |i| Span {
                trace_id: trace_id(block, t),
                span_id: [i + 1, 0, 0, 0, 0, 0, t as u8, block as u8],
                parent_span_id: (i > 0).then_some([1, 0, 0, 0, 0, 0, t as u8, block as u8]),
                flags: 1,
                name: format!("op-{i}"),
                kind: SpanKind::Server,
                start_unix_nano: 1_700_000_000_000_000_000 + u64::from(block) * 1_000_000,
                end_unix_nano: 1_700_000_000_000_000_000 + u64::from(block) * 1_000_000 + 500,
                attributes: vec![KeyValue::str("k", "v")],
                resource: resource.clone(),
                scope: scope.clone(),
                ..Span::default()
            })
        })
        .collect()
}

#[tokio::test]
async fn lookup_reads_a_fixed_number_of_objects() {
    let store = Arc::new(Counting::default());
    let loc = Location::new(store.clone(), Path::from("traces"));
    let tenant = TenantId::parse(Some("t")).expect("tenant");
    let resource = Arc::new(Resource {
        attributes: vec![KeyValue::str("service.name", "svc")],
        dropped_attributes_count: 0,
    });
    let scope = Arc::new(Scope::default());
    const BLOCKS: u32 = 150;
    for b in 0..BLOCKS {
        writer::write_block(&loc, &tenant, spans(b, &resource, &scope))
            .await
            .expect("write");
    }
    let index = BlockIndex::new(loc.clone());
    // Cold, before any compaction: one listing and the (absent) tenant index, then each
    // block's meta (with a look for a compaction mark beside it, at the same time) and bloom.
    store.reset();
    assert_eq!(
        index.blocks(&tenant).await.expect("index").len(),
        BLOCKS as usize
    );
    assert_eq!(store.counts(), (1, 1 + 3 * u64::from(BLOCKS), 0));
    // Once `compact` has written the tenant index (here merging nothing: no block fits the
    // size limit), a cold process reads the listing and the index: one request each.
    let mut opts = CompactOptions::default();
    opts.plan.max_block_bytes = 1;
    // The spans are from 2023: kept.
    opts.retention = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
    let report = Compactor::new(loc.clone(), opts, Arc::new(SystemClock))
        .run(None, &|_| {})
        .await
        .expect("compact");
    assert_eq!(report[0].indexed_blocks, u64::from(BLOCKS));
    store.reset();
    let cold = BlockIndex::new(loc.clone());
    assert_eq!(
        cold.blocks(&tenant).await.expect("index").len(),
        BLOCKS as usize
    );
    assert_eq!(store.counts(), (1, 1, 0));
    // The warm index sees in its listing that `compact` rewrote the tenant index, and reads
    // it once (it names the blocks the run marked).
    store.reset();
    index.blocks(&tenant).await.expect("index");
    assert_eq!(store.counts(), (1, 1, 0));
    for (block, trace) in [(0, 0), (77, 13), (149, 49)] {
        let wanted = trace_id(block, trace);
        store.reset();
        let blocks = index.blocks(&tenant).await.expect("index");
        let candidates: Vec<_> = blocks
            .iter()
            .filter(|b| b.bloom.may_contain(&wanted))
            .collect();
        let mut found = Vec::new();
        let mut holders = 0u64;
        for c in &candidates {
            let spans = reader::read_trace(&loc, &c.meta, &c.footer, &wanted)
                .await
                .expect("read");
            holders += u64::from(!spans.is_empty());
            found.extend(spans);
        }
        assert_eq!(found.len(), 4, "every span of the trace, once");
        // Warm: the index costs one listing and no reads. Per candidate block, one read:
        // these blocks are smaller than a footer read, which fetches the whole file, and the
        // row group holding the trace is then served from it.
        assert_eq!(store.counts(), (1, candidates.len() as u64, 0));
        // Again: the index keeps each block's footer, so only the row group is read, and
        // only where the row group's trace-id range holds the id: a block the bloom let
        // through by chance is then mostly ruled out without any read.
        store.reset();
        for c in &candidates {
            reader::read_trace(&loc, &c.meta, &c.footer, &wanted)
                .await
                .expect("read");
        }
        let (lists, gets, ranged) = store.counts();
        assert_eq!((lists, gets), (0, 0));
        assert!(
            (holders..=candidates.len() as u64).contains(&ranged),
            "{ranged} ranged reads for {holders} blocks holding the trace among {} candidates",
            candidates.len()
        );
        assert!(
            candidates.len() <= 3,
            "bloom filters let {} of {BLOCKS} blocks through",
            candidates.len()
        );
    }
    // A trace in no block: no block is read at all beyond what the blooms let through.
    store.reset();
    let absent = trace_id(9999, 0);
    let blocks = index.blocks(&tenant).await.expect("index");
    let through = blocks
        .iter()
        .filter(|b| b.bloom.may_contain(&absent))
        .count();
    assert!(through <= 3, "{through}");
    assert_eq!(store.counts(), (1, 0, 0));
}
