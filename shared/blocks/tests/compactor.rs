//! The compactor as a whole: every acknowledged span is readable exactly once after any number
//! of runs, even when a run is killed between any two object-store writes (a property test) or
//! two compactors run at once; retention under a fake clock deletes exactly what is older than
//! the tenant's retention, after the grace period; the tenant index lists what readers see.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use object_store::ObjectStoreExt;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};
use proptest::prelude::*;
use tempest_blocks::compact::{
    Acquired, Clock, CompactOptions, Compactor, Lease, MergeOptions, PlanOptions, Progress, plan,
};
use tempest_blocks::index::BlockIndex;
use tempest_blocks::listing::TenantListing;
use tempest_blocks::store::Location;
use tempest_blocks::tenant_index::TenantIndex;
use tempest_blocks::{BlockMeta, reader, writer};
use tempest_core::TenantId;
use tempest_traces::{KeyValue, Resource, Scope, Span, SpanKind};

const HOUR_NS: u64 = 3_600_000_000_000;
/// 2026-11-25T00:00:00Z.
const NOW_NS: u64 = 1_795_564_800_000_000_000;

/// A clock tests move by hand.
struct FakeClock(Mutex<SystemTime>);

impl FakeClock {
    fn at(ns: u64) -> Arc<Self> {
        Arc::new(FakeClock(Mutex::new(
            SystemTime::UNIX_EPOCH + Duration::from_nanos(ns),
        )))
    }
    fn advance(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

/// A store that dies after a number of writes: that write and everything after it fail, as
/// when the process is killed between two object-store writes.
struct Killable {
    inner: Arc<dyn ObjectStore>,
    writes_left: AtomicI64,
    dead: Arc<AtomicBool>,
}

impl Killable {
    fn new(inner: Arc<dyn ObjectStore>, writes: i64) -> Self {
        Killable {
            inner,
            writes_left: AtomicI64::new(writes),
            dead: Arc::default(),
        }
    }
    fn killed() -> object_store::Error {
        object_store::Error::Generic {
            store: "killable",
            source: "process killed".into(),
        }
    }
    fn alive(&self) -> Result<()> {
        if self.dead.load(Ordering::SeqCst) {
            Err(Self::killed())
        } else {
            Ok(())
        }
    }
    /// Counts one write; the one past the limit kills the store.
    fn write(&self) -> Result<()> {
        self.alive()?;
        if self.writes_left.fetch_sub(1, Ordering::SeqCst) <= 0 {
            self.dead.store(true, Ordering::SeqCst);
            return Err(Self::killed());
        }
        Ok(())
    }
}

impl fmt::Debug for Killable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Killable")
    }
}

impl fmt::Display for Killable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Killable")
    }
}

/// A multipart upload whose completion is the write (parts are invisible until then).
struct KillableUpload {
    inner: Box<dyn MultipartUpload>,
    store: Arc<Killable>,
}

impl fmt::Debug for KillableUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KillableUpload")
    }
}

#[async_trait]
impl MultipartUpload for KillableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        match self.store.alive() {
            Ok(()) => self.inner.put_part(data),
            Err(e) => Box::pin(futures::future::ready(Err(e))),
        }
    }
    async fn complete(&mut self) -> Result<PutResult> {
        self.store.write()?;
        self.inner.complete().await
    }
    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

/// `Killable` behind an `Arc` so uploads can count against it.
#[derive(Debug, Clone)]
struct Shared(Arc<Killable>);

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Killable")
    }
}

#[async_trait]
impl ObjectStore for Shared {
    async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> Result<PutResult> {
        self.0.write()?;
        self.0.inner.put_opts(l, p, o).await
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.0.alive()?;
        let inner = self.0.inner.put_multipart_opts(l, o).await?;
        Ok(Box::new(KillableUpload {
            inner,
            store: self.0.clone(),
        }))
    }
    async fn get_opts(&self, l: &Path, o: GetOptions) -> Result<GetResult> {
        self.0.alive()?;
        self.0.inner.get_opts(l, o).await
    }
    async fn get_ranges(&self, l: &Path, r: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.0.alive()?;
        self.0.inner.get_ranges(l, r).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // Each deletion is one write, counted as it happens.
        let store = self.0.clone();
        locations
            .then(move |location| {
                let store = store.clone();
                async move {
                    let location = location?;
                    store.write()?;
                    store.inner.delete(&location).await?;
                    Ok(location)
                }
            })
            .boxed()
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.0.alive() {
            Ok(()) => self.0.inner.list(prefix),
            Err(e) => futures::stream::once(futures::future::ready(Err(e))).boxed(),
        }
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.0.alive()?;
        self.0.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> Result<()> {
        self.0.write()?;
        self.0.inner.copy_opts(from, to, o).await
    }
}

fn tenant() -> TenantId {
    TenantId::parse(Some("team-a")).expect("tenant")
}

/// A span of trace `trace` ending at `end_ns`.
fn span(trace: u16, n: u16, end_ns: u64) -> Span {
    let mut trace_id = [0u8; 16];
    trace_id[..2].copy_from_slice(&trace.to_be_bytes());
    trace_id[15] = 1;
    let mut span_id = [0u8; 8];
    span_id[..2].copy_from_slice(&n.to_be_bytes());
    span_id[7] = 1;
    Span {
        trace_id,
        span_id,
        name: format!("op-{}", n % 7),
        kind: SpanKind::Server,
        start_unix_nano: end_ns - 1_000_000,
        end_unix_nano: end_ns,
        attributes: vec![KeyValue::str("n", &n.to_string())],
        resource: Arc::new(Resource {
            attributes: vec![KeyValue::str("service.name", &format!("svc-{}", trace % 3))],
            dropped_attributes_count: 0,
        }),
        scope: Arc::new(Scope::default()),
        ..Span::default()
    }
}

type Identity = ([u8; 16], [u8; 8]);

/// Every span of `blocks`, with how often.
async fn spans_in(loc: &Location, blocks: &[BlockMeta]) -> BTreeMap<Identity, usize> {
    let mut seen = BTreeMap::new();
    for meta in blocks {
        for s in reader::read_spans(loc, meta).await.expect("read") {
            *seen.entry((s.trace_id, s.span_id)).or_insert(0) += 1;
        }
    }
    seen
}

/// Every span readers see, with how often: read from every visible block.
async fn visible_spans(loc: &Location) -> BTreeMap<Identity, usize> {
    spans_in(
        loc,
        &reader::list_blocks(loc, &tenant()).await.expect("list"),
    )
    .await
}

/// Every span the query side's index `index` shows, with how often.
async fn indexed_spans(loc: &Location, index: &BlockIndex) -> BTreeMap<Identity, usize> {
    let blocks = index.blocks(&tenant()).await.expect("index");
    let metas: Vec<BlockMeta> = blocks.iter().map(|b| b.meta.clone()).collect();
    spans_in(loc, &metas).await
}

/// Ingests `batches` (each one block), returning the acknowledged spans.
async fn ingest(loc: &Location, batches: Vec<Vec<Span>>) -> Vec<Identity> {
    let mut acked = Vec::new();
    for batch in batches {
        let ids: Vec<Identity> = batch.iter().map(|s| (s.trace_id, s.span_id)).collect();
        writer::write_block_with(loc, &tenant(), batch, 5)
            .await
            .expect("ingest");
        acked.extend(ids);
    }
    acked
}

/// Batches of spans spread over `hours` hours before `NOW_NS`: traces cross batches, so
/// fragments of one trace are in several blocks.
fn batches(count: usize, spans_each: usize, hours: u64, seed: u64) -> Vec<Vec<Span>> {
    let mut out = Vec::new();
    let mut n: u16 = 0;
    for b in 0..count {
        let hour = (b as u64 + seed) % hours.max(1);
        let end = NOW_NS - (hour + 1) * HOUR_NS + HOUR_NS / 2 + b as u64 * 1_000;
        out.push(
            (0..spans_each)
                .map(|i| {
                    n += 1;
                    span(((b + i) % 11) as u16, n, end + i as u64)
                })
                .collect(),
        );
    }
    out
}

fn options() -> CompactOptions {
    CompactOptions {
        plan: PlanOptions {
            window: Duration::from_secs(3600),
            max_input_blocks: 4,
            max_block_bytes: 1 << 30,
        },
        merge: MergeOptions {
            batch_rows: 3,
            window_rows: 4,
            output_rows: 4,
            row_group_spans: 5,
        },
        ..CompactOptions::default()
    }
}

fn quiet(_: Progress<'_>) {}

fn expect_exactly_once(seen: &BTreeMap<Identity, usize>, acked: &[Identity], when: &str) {
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{when}: spans seen twice: {twice:?}");
    for id in acked {
        assert!(
            seen.contains_key(id),
            "{when}: acknowledged span {id:?} lost"
        );
    }
    assert_eq!(seen.len(), acked.len(), "{when}: spans nobody wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_merges_by_window_and_level_and_writes_the_index() {
    let loc = Location::open("memory://").expect("store");
    let acked = ingest(&loc, batches(12, 6, 3, 0)).await;
    let clock = FakeClock::at(NOW_NS);
    let compactor = Compactor::new(loc.clone(), options(), clock.clone());
    let before = reader::list_blocks(&loc, &tenant()).await.expect("list");
    assert_eq!(before.len(), 12);

    let reports = compactor.run(None, &quiet).await.expect("run");
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    // Three hourly windows of four level-0 blocks: one job each.
    assert_eq!(r.merged_jobs, 3, "{r:?}");
    assert_eq!(r.input_blocks, 12);
    assert_eq!(r.spans_written, acked.len() as u64);
    assert_eq!(r.jobs_left, 0);
    expect_exactly_once(&visible_spans(&loc).await, &acked, "after the run");

    let after = reader::list_blocks(&loc, &tenant()).await.expect("list");
    assert_eq!(after.len(), 3);
    for m in &after {
        assert_eq!(m.compaction_level, 1);
        assert_eq!(m.replaces.len(), 4);
        // One window per output.
        assert_eq!(
            m.start_time_unix_nano / HOUR_NS,
            (m.end_time_unix_nano - 1) / HOUR_NS
        );
    }
    // Inputs are marked, not yet deleted.
    let listing = TenantListing::of(&loc, &tenant()).await.expect("listing");
    assert_eq!(listing.marked().count(), 12);
    assert_eq!(listing.live().count(), 3);

    // The index holds exactly the live blocks, their blooms, and the marked blocks.
    let index = TenantIndex::read(&loc, &tenant())
        .await
        .expect("read")
        .expect("index written");
    let mut ids: Vec<&str> = index
        .blocks
        .iter()
        .map(|(m, _)| m.block_id.as_str())
        .collect();
    ids.sort_unstable();
    let mut live: Vec<&str> = listing.live().collect();
    live.sort_unstable();
    assert_eq!(ids, live);
    assert_eq!(index.compacted.len(), 12);
    for (meta, bloom) in &index.blocks {
        let stored = reader::read_bloom(&loc, meta).await.expect("bloom");
        assert_eq!(bloom.as_ref(), stored.to_bytes().as_slice());
    }
    // A cold reader uses it and sees the same blocks.
    let cold = BlockIndex::new(loc.clone());
    let blocks = cold.blocks(&tenant()).await.expect("blocks");
    assert_eq!(blocks.len(), 3);

    // Level-1 blocks of one window are not merged again until more arrive; a second run
    // with nothing to do changes nothing.
    let again = compactor.run(None, &quiet).await.expect("run");
    assert_eq!(again[0].merged_jobs, 0);
    expect_exactly_once(&visible_spans(&loc).await, &acked, "second run");

    // After the grace period the inputs are deleted.
    clock.advance(options().grace + Duration::from_secs(1));
    let later = compactor.run(None, &quiet).await.expect("run");
    assert_eq!(later[0].deleted_blocks, 12);
    let listing = TenantListing::of(&loc, &tenant()).await.expect("listing");
    assert_eq!(listing.blocks.len(), 3, "only the outputs remain");
    expect_exactly_once(&visible_spans(&loc).await, &acked, "after deletion");
}

#[test]
fn planning_follows_windows_levels_sizes_and_limits() {
    let meta = |id: &str, hour: u64, level: u32, size: u64| BlockMeta {
        format: "f".into(),
        block_id: id.into(),
        tenant: "t".into(),
        start_time_unix_nano: NOW_NS - hour * HOUR_NS - HOUR_NS / 2,
        end_time_unix_nano: NOW_NS - hour * HOUR_NS - HOUR_NS / 2 + 1,
        span_count: 1,
        trace_count: 1,
        data_size: size,
        bloom_size: 0,
        row_groups: 1,
        compaction_level: level,
        created_at: String::new(),
        dedicated_columns: vec![],
        generic_dedicated: None,
        replaces: vec![],
    };
    let opts = PlanOptions {
        window: Duration::from_secs(3600),
        max_input_blocks: 3,
        max_block_bytes: 100,
    };
    let now_ms = NOW_NS / 1_000_000;
    let blocks = vec![
        // Hour 2: four level-0 blocks (max 3 per job → one job of the 3 smallest) and two
        // level-1 blocks (their own job).
        meta("a", 2, 0, 10),
        meta("b", 2, 0, 5),
        meta("c", 2, 0, 30),
        meta("d", 2, 0, 20),
        meta("e", 2, 1, 40),
        meta("f", 2, 1, 50),
        // Hour 1: a lone block, nothing to merge.
        meta("g", 1, 0, 10),
        // Hour 30 (outside the active day): levels mixed; size cap 100 → 60+30 only.
        meta("h", 30, 0, 60),
        meta("i", 30, 2, 30),
        meta("j", 30, 1, 90),
    ];
    let jobs: Vec<Vec<String>> = plan(&blocks, now_ms, &opts)
        .into_iter()
        .map(|j| j.into_iter().map(|m| m.block_id).collect())
        .collect();
    assert_eq!(
        jobs,
        vec![
            // Oldest window first; levels ignored there, smallest first.
            vec!["i".to_owned(), "h".to_owned()],
            vec!["b".to_owned(), "a".to_owned(), "d".to_owned()],
            vec!["e".to_owned(), "f".to_owned()],
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_exactly_what_is_older_than_the_tenant_retention() {
    let loc = Location::open("memory://").expect("store");
    let other = TenantId::parse(Some("team-b")).expect("tenant");
    // Blocks ending 1..=10 days ago (one per day) for both tenants.
    let day = 24 * HOUR_NS;
    for d in 1..=10u64 {
        let end = NOW_NS - d * day;
        for t in [tenant(), other.clone()] {
            writer::write_block(&loc, &t, vec![span(d as u16, d as u16, end)])
                .await
                .expect("write");
        }
    }
    let clock = FakeClock::at(NOW_NS);
    let mut opts = options();
    opts.retention = Duration::from_secs(7 * 24 * 3600);
    opts.tenant_retention
        .insert("team-b".into(), Duration::from_secs(3 * 24 * 3600 + 60));
    let compactor = Compactor::new(loc.clone(), opts.clone(), clock.clone());
    // Days ago of the blocks readers see, and of every block folder still stored.
    let visible_days = |t: TenantId| {
        let loc = loc.clone();
        async move {
            let mut d: Vec<u64> = reader::list_blocks(&loc, &t)
                .await
                .expect("list")
                .iter()
                .map(|m| (NOW_NS - m.end_time_unix_nano) / day)
                .collect();
            d.sort_unstable();
            d
        }
    };
    let stored = |t: TenantId| {
        let loc = loc.clone();
        async move {
            TenantListing::of(&loc, &t)
                .await
                .expect("listing")
                .blocks
                .len()
        }
    };
    let marked = |reports: &[tempest_blocks::compact::TenantReport]| -> Vec<u64> {
        reports.iter().map(|r| r.marked_retention).collect()
    };
    let deleted = |reports: &[tempest_blocks::compact::TenantReport]| -> Vec<u64> {
        reports.iter().map(|r| r.deleted_blocks).collect()
    };

    // A query process that has been running all along.
    let warm = BlockIndex::new(loc.clone());
    assert_eq!(warm.blocks(&tenant()).await.expect("index").len(), 10);

    // At NOW: team-a keeps 7 days (8, 9, 10 go), team-b 3 days and a minute (4..=10 go).
    let run = compactor.run(None, &quiet).await.expect("run");
    assert_eq!(marked(&run), vec![3, 7]);
    assert_eq!(visible_days(tenant()).await, (1..=7).collect::<Vec<_>>());
    // It drops the marked blocks as soon as the run's tenant index is written.
    assert_eq!(warm.blocks(&tenant()).await.expect("index").len(), 7);
    assert_eq!(
        visible_days(other.clone()).await,
        (1..=3).collect::<Vec<_>>()
    );
    assert_eq!(stored(tenant()).await, 10, "marked, not deleted yet");
    assert_eq!(stored(other.clone()).await, 10);

    // Just within the grace period: nothing deleted; day 7 of team-a and day 3 of team-b
    // have now passed their retention (the clock moved on by almost an hour).
    clock.advance(opts.grace - Duration::from_secs(1));
    let run = compactor.run(None, &quiet).await.expect("run");
    assert_eq!(marked(&run), vec![1, 1]);
    assert_eq!(deleted(&run), vec![0, 0]);
    assert_eq!(stored(tenant()).await, 10);
    assert_eq!(visible_days(tenant()).await, (1..=6).collect::<Vec<_>>());
    assert_eq!(
        visible_days(other.clone()).await,
        (1..=2).collect::<Vec<_>>()
    );

    // Past the grace period of the first marks: exactly those are deleted.
    clock.advance(Duration::from_secs(2));
    let run = compactor.run(None, &quiet).await.expect("run");
    assert_eq!(deleted(&run), vec![3, 7]);
    assert_eq!(stored(tenant()).await, 7);
    assert_eq!(stored(other.clone()).await, 3);
    // And what remains stored beyond the visible blocks is exactly the later marks.
    clock.advance(opts.grace);
    let run = compactor.run(None, &quiet).await.expect("run");
    assert_eq!(deleted(&run), vec![1, 1]);
    assert_eq!(stored(tenant()).await, 6);
    assert_eq!(stored(other.clone()).await, 2);
    assert_eq!(visible_days(tenant()).await, (1..=6).collect::<Vec<_>>());
    assert_eq!(visible_days(other).await, (1..=2).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_admits_one_compactor_at_a_time() {
    let loc = Location::open("memory://").expect("store");
    let t = tenant();
    let now = NOW_NS / 1_000_000;
    let Acquired::Held(a) = Lease::acquire(&loc, &t, "a", now, 1_000).await.expect("a") else {
        panic!("a should get the free lease");
    };
    match Lease::acquire(&loc, &t, "b", now + 10, 1_000)
        .await
        .expect("b")
    {
        Acquired::Busy(holder) => assert_eq!(holder.owner, "a"),
        Acquired::Held(_) => panic!("b got a held lease"),
    }
    a.check(now + 999).expect("still held");
    assert!(a.check(now + 1_000).is_err(), "expired");
    // After expiry another compactor takes it over.
    let Acquired::Held(b) = Lease::acquire(&loc, &t, "b", now + 1_000, 1_000)
        .await
        .expect("b")
    else {
        panic!("b should take the expired lease");
    };
    b.release().await.expect("release");
    // Released: free at once.
    assert!(matches!(
        Lease::acquire(&loc, &t, "c", now + 1_001, 1_000)
            .await
            .expect("c"),
        Acquired::Held(_)
    ));
    // Many contenders at once: exactly one wins.
    let loc2 = Location::open("memory://").expect("store");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (loc, t) = (loc2.clone(), t.clone());
            tokio::spawn(async move {
                matches!(
                    Lease::acquire(&loc, &t, &format!("c{i}"), now, 60_000)
                        .await
                        .expect("acquire"),
                    Acquired::Held(_)
                )
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.expect("join"));
    }
    assert_eq!(winners, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_compactors_at_once_lose_and_duplicate_nothing() {
    for round in 0..4u64 {
        let loc = Location::open("memory://").expect("store");
        let acked = ingest(&loc, batches(16, 5, 2, round)).await;
        let clock = FakeClock::at(NOW_NS);
        let a = Compactor::new(loc.clone(), options(), clock.clone());
        let b = Compactor::new(loc.clone(), options(), clock.clone());
        let (ra, rb) = tokio::join!(a.run(None, &quiet), b.run(None, &quiet));
        let (ra, rb) = (ra.expect("a"), rb.expect("b"));
        let worked = [&ra[0], &rb[0]]
            .iter()
            .filter(|r| r.busy_with.is_none())
            .count();
        assert!(worked >= 1, "someone compacted: {ra:?} {rb:?}");
        expect_exactly_once(&visible_spans(&loc).await, &acked, "concurrent runs");
        // And again, with the clock past the grace period: deletions race merges.
        clock.advance(options().grace * 2);
        let (ra, rb) = tokio::join!(a.run(None, &quiet), b.run(None, &quiet));
        ra.expect("a");
        rb.expect("b");
        expect_exactly_once(&visible_spans(&loc).await, &acked, "concurrent runs 2");
    }
}

/// One case of the kill property: ingest, then compaction runs each killed after a random
/// number of writes, checking after each kill; then an undisturbed run.
async fn killed_runs_keep_every_span_once(kills: Vec<i64>, seed: u64) -> bool {
    let mut any_killed = false;
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let loc = Location::new(inner.clone(), Path::from("traces"));
    let acked = ingest(&loc, batches(10, 4, 2, seed)).await;
    let clock = FakeClock::at(NOW_NS);
    let mut opts = options();
    opts.plan.max_input_blocks = 3;
    let warm = BlockIndex::new(loc.clone());
    warm.blocks(&tenant()).await.expect("warm up");
    for (round, writes) in kills.into_iter().enumerate() {
        let killable = Arc::new(Killable::new(inner.clone(), writes));
        let dying = Location::new(Arc::new(Shared(killable.clone())), loc.prefix.clone());
        // A fresh process each time, as after a kill.
        let compactor = Compactor::new(dying, opts.clone(), clock.clone());
        let outcome = compactor.run(None, &quiet).await;
        let killed = killable.dead.load(Ordering::SeqCst);
        assert_eq!(
            outcome.is_err(),
            killed,
            "only a kill fails a run: {outcome:?}"
        );
        any_killed |= killed;
        let when = format!("after run {round} killed at write {writes}");
        expect_exactly_once(&visible_spans(&loc).await, &acked, &when);
        // The query side sees the same, whether it starts now or has been warm all along.
        for (index, which) in [(&BlockIndex::new(loc.clone()), "cold"), (&warm, "warm")] {
            let seen = indexed_spans(&loc, index).await;
            expect_exactly_once(&seen, &acked, &format!("{when}, {which} query index"));
        }
        // The killed compactor's lease is left behind; time passes beyond it.
        clock.advance(Duration::from_secs(400));
    }
    let compactor = Compactor::new(loc.clone(), opts.clone(), clock.clone());
    for _ in 0..6 {
        clock.advance(opts.grace);
        compactor.run(None, &quiet).await.expect("undisturbed run");
        // Marked blocks are deleted along the way; the warm reader still sees each span once.
        let seen = indexed_spans(&loc, &warm).await;
        expect_exactly_once(&seen, &acked, "undisturbed, warm query index");
    }
    expect_exactly_once(&visible_spans(&loc).await, &acked, "finally");
    let listing = TenantListing::of(&loc, &tenant()).await.expect("listing");
    let live: Vec<_> = listing.live().collect();
    assert!(live.len() <= 2, "two windows, merged: {live:?}");
    let index = TenantIndex::read(&loc, &tenant())
        .await
        .expect("index")
        .expect("written");
    assert_eq!(index.blocks.len(), live.len());
    any_killed
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn compaction_killed_between_any_two_writes_loses_and_duplicates_nothing(
        kills in proptest::collection::vec(0i64..60, 1..6),
        seed in 0u64..4,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(killed_runs_keep_every_span_once(kills, seed));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kill_point_of_one_run_is_safe() {
    // Exhaustive over the first run's writes: kill after 0, 1, 2, … writes until a run
    // finishes without reaching the limit.
    let mut writes = 0;
    while killed_runs_keep_every_span_once(vec![writes], 1).await {
        writes += 1;
    }
    // A run of this size makes dozens of writes; all of them were tried.
    assert!(writes > 20, "only {writes} writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_tenant_index_never_shows_a_span_twice() {
    // A completed run leaves X and Y live in the tenant index; then merges happen whose runs
    // die before writing the index: Z replaces X and Y (both marked), then Z2 replaces Z
    // (marked) and W. A reader starting now trusts the stale index's X and Y as live; Z's
    // mark, read beside its folder, still hides them.
    let loc = Location::open("memory://").expect("store");
    let t = tenant();
    let mut all = batches(5, 4, 1, 0);
    let last = all.pop().expect("five batches");
    let acked_first = ingest(&loc, all).await;
    let mut opts = options();
    opts.plan.max_input_blocks = 2;
    let clock = FakeClock::at(NOW_NS);
    Compactor::new(loc.clone(), opts.clone(), clock.clone())
        .run(None, &quiet)
        .await
        .expect("run");
    let index = TenantIndex::read(&loc, &t)
        .await
        .expect("read")
        .expect("index");
    let xy: Vec<BlockMeta> = index.blocks.iter().map(|(m, _)| m.clone()).collect();
    assert_eq!(xy.len(), 2, "X and Y");
    let at = NOW_NS / 1_000_000;
    let z = tempest_blocks::compact::merge(&loc, &t, &xy, opts.merge)
        .await
        .expect("merge")
        .expect("Z");
    for m in &xy {
        tempest_blocks::marks::mark_compacted(&loc, m, at)
            .await
            .expect("mark");
    }
    let mut acked = acked_first;
    acked.extend(ingest(&loc, vec![last]).await);
    let w = reader::list_blocks(&loc, &t)
        .await
        .expect("list")
        .into_iter()
        .find(|m| m.compaction_level == 0)
        .expect("W");
    tempest_blocks::compact::merge(&loc, &t, &[z.clone(), w], opts.merge)
        .await
        .expect("merge")
        .expect("Z2");
    tempest_blocks::marks::mark_compacted(&loc, &z, at)
        .await
        .expect("mark");
    let cold = BlockIndex::new(loc.clone());
    expect_exactly_once(&indexed_spans(&loc, &cold).await, &acked, "stale index");
    expect_exactly_once(&visible_spans(&loc).await, &acked, "full listing");
}

/// A clock ten minutes later each time it is read: a run outlives its lease at once.
struct Racing(Mutex<SystemTime>);

impl Clock for Racing {
    fn now(&self) -> SystemTime {
        let mut t = self.0.lock().unwrap();
        *t += Duration::from_secs(600);
        *t
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_out_of_time_stops_cleanly() {
    let loc = Location::open("memory://").expect("store");
    let acked = ingest(&loc, batches(12, 6, 3, 0)).await;
    // No budget left: no tenant is started.
    let mut opts = options();
    opts.time_budget = Duration::ZERO;
    let none = Compactor::new(loc.clone(), opts, FakeClock::at(NOW_NS))
        .run(None, &quiet)
        .await
        .expect("run");
    assert!(none.is_empty());
    // The lease runs out before the first write that readers would see: the run stops
    // without an error and without changing anything readers see.
    let clock = Arc::new(Racing(Mutex::new(
        SystemTime::UNIX_EPOCH + Duration::from_nanos(NOW_NS),
    )));
    let r = Compactor::new(loc.clone(), options(), clock)
        .run(None, &quiet)
        .await
        .expect("run");
    assert_eq!((r[0].merged_jobs, r[0].marked_retention), (0, 0), "{r:?}");
    expect_exactly_once(&visible_spans(&loc).await, &acked, "out of time");
    assert_eq!(
        reader::list_blocks(&loc, &tenant())
            .await
            .expect("list")
            .len(),
        12
    );
}

#[test]
fn the_tenant_index_rejects_damaged_bytes_without_panicking() {
    let meta = BlockMeta {
        format: "f".into(),
        block_id: "00000000-0000-4000-8000-000000000001".into(),
        tenant: "t".into(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        span_count: 1,
        trace_count: 1,
        data_size: 10,
        bloom_size: 3,
        row_groups: 1,
        compaction_level: 0,
        created_at: String::new(),
        dedicated_columns: vec![],
        generic_dedicated: None,
        replaces: vec![],
    };
    let index = TenantIndex {
        created_at_unix_ms: 5,
        blocks: vec![(meta, Bytes::from_static(b"abc"))],
        compacted: vec![],
    };
    let bytes = index.encode().expect("encode");
    assert_eq!(TenantIndex::decode(&bytes).expect("decode"), index);
    let raw = zstd::bulk::decompress(&bytes, 1 << 20).expect("raw");
    for cut in 0..raw.len() {
        let damaged = zstd::bulk::compress(&raw[..cut], 1).expect("compress");
        assert!(TenantIndex::decode(&damaged).is_err(), "cut at {cut}");
    }
    let mut extra = raw.clone();
    extra.push(0);
    assert!(TenantIndex::decode(&zstd::bulk::compress(&extra, 1).unwrap()).is_err());
    assert!(TenantIndex::decode(b"not zstd").is_err());
    assert!(TenantIndex::decode(&[]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_time_budget_leaves_work_for_the_next_run() {
    let loc = Location::open("memory://").expect("store");
    let acked = ingest(&loc, batches(12, 6, 3, 0)).await;
    let mut opts = options();
    // A run expects to merge one span per second: nothing fits in a second.
    opts.assumed_spans_per_sec = 1.0;
    opts.time_budget = Duration::from_secs(1);
    let compactor = Compactor::new(loc.clone(), opts, FakeClock::at(NOW_NS));
    let r = compactor.run(None, &quiet).await.expect("run");
    assert_eq!(r[0].merged_jobs, 0);
    assert_eq!(r[0].jobs_left, 3);
    expect_exactly_once(&visible_spans(&loc).await, &acked, "budget");
    let listing = TenantListing::of(&loc, &tenant()).await.expect("listing");
    assert_eq!(listing.live().count(), 12);
    assert_eq!(listing.marked().count(), 0);
}
