//! TraceQL search fanned out over blocks: the blocks in the time range are split into jobs of
//! bounded bytes, jobs run concurrently (each a task here; a `search-worker` invocation on the
//! cloud hosts, through [`JobRunner`]), results merge by trace id, and the search stops once it
//! has `limit` traces.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tempest_blocks::BlockMeta;
use tempest_blocks::index::{BlockIndex, IndexedBlock};
use tempest_blocks::scan::{self, Scanned};
use tempest_core::TenantId;
use tempest_traceql::Query;
use tempest_traces::Span;

use crate::QueryError;
use crate::params::trace_id_hex;
use crate::pushdown::Pushdown;
use crate::tempopb::{SearchMetrics, SearchResponse, SearchSpan, SpanSet, TraceSearchMetadata};

/// Tempo's default number of traces a search returns.
pub const DEFAULT_LIMIT: usize = 20;
/// Tempo's default spans per spanset (`spss`), and its maximum.
pub const DEFAULT_SPSS: usize = 3;
/// The most spans per spanset a request may ask for.
pub const MAX_SPSS: usize = 100;
/// Bytes of block data one job reads at most (a single larger block is still one job).
pub const JOB_BYTES: u64 = 64 << 20;
/// Jobs in flight at once.
pub const CONCURRENT_JOBS: usize = 4;
/// Tempo's name for a trace whose root span is not (yet) in the data searched.
pub const ROOT_NOT_RECEIVED: &str = "<root span not yet received>";

/// A validated search.
#[derive(Clone, Debug)]
pub struct SearchRequest {
    /// The TraceQL query.
    pub query: Query,
    /// Traces to return at most.
    pub limit: usize,
    /// Spans per spanset.
    pub spss: usize,
    /// Unix ns, half-open; every block when absent.
    pub range: Option<(u64, u64)>,
    /// Trace duration bounds (legacy `minDuration`/`maxDuration`).
    pub min_duration: Option<Duration>,
    /// Upper trace duration bound.
    pub max_duration: Option<Duration>,
}

/// One unit of fan-out: a few blocks searched by one worker.
#[derive(Clone, Debug)]
pub struct SearchJob {
    /// Whose blocks.
    pub tenant: TenantId,
    /// The blocks to search.
    pub blocks: Vec<BlockMeta>,
}

/// What one job found.
#[derive(Default)]
pub struct JobResult {
    /// Matching traces (fragments from these blocks).
    pub traces: Vec<TraceSearchMetadata>,
    /// Traces evaluated.
    pub inspected_traces: u32,
    /// Spans evaluated.
    pub inspected_spans: u64,
    /// Bytes read.
    pub inspected_bytes: u64,
}

/// Runs search jobs: in-process tasks for `tempest serve`, function invocations in the cloud.
#[async_trait]
pub trait JobRunner: Send + Sync {
    /// Searches the job's blocks.
    async fn run(&self, job: SearchJob, req: &SearchRequest) -> Result<JobResult, QueryError>;
}

/// Runs jobs in this process, over the blocks of `index`.
pub struct LocalJobs {
    index: Arc<BlockIndex>,
}

impl LocalJobs {
    /// Jobs over the blocks `index` lists.
    pub fn new(index: Arc<BlockIndex>) -> Self {
        LocalJobs { index }
    }
}

#[async_trait]
impl JobRunner for LocalJobs {
    async fn run(&self, job: SearchJob, req: &SearchRequest) -> Result<JobResult, QueryError> {
        run_job(&self.index, &job, req).await
    }
}

/// Whether a block's time range overlaps `range`.
pub fn overlaps(meta: &BlockMeta, range: Option<(u64, u64)>) -> bool {
    range.is_none_or(|(start, end)| {
        meta.start_time_unix_nano < end && meta.end_time_unix_nano >= start
    })
}

/// Splits blocks (newest first) into jobs of at most `job_bytes` each.
pub fn plan(tenant: &TenantId, mut blocks: Vec<BlockMeta>, job_bytes: u64) -> Vec<SearchJob> {
    blocks.sort_by_key(|b| std::cmp::Reverse(b.end_time_unix_nano));
    let mut jobs: Vec<SearchJob> = Vec::new();
    let mut bytes = 0;
    for b in blocks {
        let fits = jobs.last().is_some() && bytes + b.data_size <= job_bytes;
        if !fits {
            jobs.push(SearchJob {
                tenant: tenant.clone(),
                blocks: Vec::new(),
            });
            bytes = 0;
        }
        bytes += b.data_size;
        if let Some(job) = jobs.last_mut() {
            job.blocks.push(b);
        }
    }
    jobs
}

/// Searches `tenant`'s blocks.
pub async fn search(
    index: &BlockIndex,
    runner: Arc<dyn JobRunner>,
    tenant: &TenantId,
    req: &SearchRequest,
) -> Result<SearchResponse, QueryError> {
    let blocks: Vec<BlockMeta> = index
        .blocks(tenant)
        .await?
        .iter()
        .filter(|b| overlaps(&b.meta, req.range))
        .map(|b| b.meta.clone())
        .collect();
    let metrics = SearchMetrics {
        total_blocks: blocks.len() as u32,
        total_block_bytes: blocks.iter().map(|b| b.data_size).sum(),
        ..Default::default()
    };
    run_jobs(plan(tenant, blocks, JOB_BYTES), runner, req, metrics).await
}

/// Runs `jobs` at most `CONCURRENT_JOBS` at a time, merging results by trace id, until every
/// job is done or `limit` traces are found.
pub async fn run_jobs(
    jobs: Vec<SearchJob>,
    runner: Arc<dyn JobRunner>,
    req: &SearchRequest,
    mut metrics: SearchMetrics,
) -> Result<SearchResponse, QueryError> {
    metrics.total_jobs = jobs.len() as u32;
    let mut results = futures::stream::iter(jobs)
        .map(|job| {
            let runner = runner.clone();
            async move { runner.run(job, req).await }
        })
        .buffer_unordered(CONCURRENT_JOBS);
    let mut merged: HashMap<String, TraceSearchMetadata> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    while let Some(result) = results.next().await {
        let r = result?;
        metrics.completed_jobs += 1;
        metrics.inspected_traces += r.inspected_traces;
        metrics.inspected_spans += r.inspected_spans;
        metrics.inspected_bytes += r.inspected_bytes;
        for t in r.traces {
            // Each result is for the whole trace (fragments are assembled before evaluation),
            // so a trace found by two jobs is the same result twice.
            if !merged.contains_key(&t.trace_id) {
                order.push(t.trace_id.clone());
                merged.insert(t.trace_id.clone(), t);
            }
        }
        // Enough: the jobs still running are dropped, as Tempo stops at `limit`.
        if merged.len() >= req.limit {
            break;
        }
    }
    let traces = order
        .into_iter()
        .filter_map(|id| merged.remove(&id))
        .take(req.limit)
        .collect();
    Ok(SearchResponse {
        traces,
        metrics: Some(metrics),
    })
}

/// How far apart in time the fragments of one trace may lie in different blocks: blocks further
/// from a fragment are not consulted for the rest of its trace.
pub const FRAGMENT_SLACK_NANOS: u64 = 3_600 * 1_000_000_000;

/// Searches the blocks of one job, in three steps:
///
/// 1. Scan: the query's push-down filters ([`Pushdown`]) are checked against each block's
///    row-group statistics, then on the few columns they name; what comes back is, per trace
///    fragment with a passing row, how many rows pass each filter.
/// 2. Combine: a trace may be spread over several blocks (each request is its own block until
///    compaction merges them), so counts are summed over the job's blocks; a trace still short
///    of the condition is looked for in the other blocks near it in time (bloom filters first,
///    then a scan of the blocks they admit).
/// 3. Evaluate: only traces that pass are read whole — their rows in this block, their other
///    fragments through the index's blooms — and evaluated, until `limit` traces match.
pub async fn run_job(
    index: &BlockIndex,
    job: &SearchJob,
    req: &SearchRequest,
) -> Result<JobResult, QueryError> {
    let loc = index.location();
    let all = index.blocks(&job.tenant).await?;
    let push = Pushdown::new(&req.query);
    let mut out = JobResult::default();
    let mut scans = Scans::default();
    // The job's blocks as the index holds them (with their cached footers); a block gone
    // since the search was planned was compacted away, its spans in a newer block.
    let by_id: HashMap<&str, &IndexedBlock> =
        all.iter().map(|b| (b.meta.block_id.as_str(), b)).collect();
    let blocks: Vec<&IndexedBlock> = job
        .blocks
        .iter()
        .filter_map(|m| by_id.get(m.block_id.as_str()).copied())
        .collect();
    for b in &blocks {
        scans.scan(loc, b, &push, &mut out).await?;
    }
    let in_job: Vec<&str> = blocks.iter().map(|b| b.meta.block_id.as_str()).collect();
    let mut combined = scans.combine(&in_job, &[], &push);
    if !combined.short.is_empty() {
        // A trace short of the condition may have its other rows in blocks of other jobs.
        let window = job
            .blocks
            .iter()
            .map(|b| (b.start_time_unix_nano, b.end_time_unix_nano))
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
            .and_then(|(start, end)| fragment_window(start, end));
        let mut extra = Vec::new();
        for b in all
            .iter()
            .filter(|b| !in_job.contains(&b.meta.block_id.as_str()) && overlaps(&b.meta, window))
        {
            if combined.short.iter().any(|id| b.bloom.may_contain(id)) {
                scans.scan(loc, b, &push, &mut out).await?;
                extra.push(b.meta.block_id.as_str());
            }
        }
        if !extra.is_empty() {
            combined = scans.combine(&in_job, &extra, &push);
        }
    }
    let mut evaluated: HashSet<[u8; 16], IdHash> = HashSet::default();
    for b in &blocks {
        let meta = &b.meta;
        if out.traces.len() >= req.limit {
            break;
        }
        // This block's candidates not already evaluated with an earlier block.
        let batch: Vec<[u8; 16]> = scans
            .filtered(&meta.block_id)
            .trace_ids
            .iter()
            .filter(|id| combined.candidates.contains(*id) && evaluated.insert(**id))
            .copied()
            .collect();
        if batch.is_empty() {
            continue;
        }
        let mut traces = scans.read_whole(loc, &all, meta, &batch).await?;
        for id in &batch {
            let spans = crate::trace_by_id::dedupe(traces.remove(id).unwrap_or_default());
            out.inspected_traces += 1;
            out.traces.extend(evaluate(&spans, req));
            if out.traces.len() >= req.limit {
                break;
            }
        }
    }
    Ok(out)
}

/// The time window other fragments of traces in blocks spanning `start..end` may lie in.
fn fragment_window(start: u64, end: u64) -> Option<(u64, u64)> {
    Some((
        start.saturating_sub(FRAGMENT_SLACK_NANOS),
        end.saturating_add(FRAGMENT_SLACK_NANOS),
    ))
}

/// The traces of a job after combining counts across blocks.
struct Combined {
    /// Traces that may match.
    candidates: HashSet<[u8; 16], IdHash>,
    /// Traces with passing rows that still fall short of the condition.
    short: Vec<[u8; 16]>,
}

/// Scans of blocks, each done once per job.
#[derive(Default)]
struct Scans {
    /// Filtered scans: traces with passing rows.
    filtered: HashMap<String, Scanned>,
    /// Unfiltered scans: where each trace's rows are.
    layouts: HashMap<String, Scanned>,
}

impl Scans {
    async fn scan(
        &mut self,
        loc: &tempest_blocks::store::Location,
        block: &IndexedBlock,
        push: &Pushdown,
        out: &mut JobResult,
    ) -> Result<(), QueryError> {
        let meta = &block.meta;
        if self.filtered.contains_key(&meta.block_id) {
            return Ok(());
        }
        let scanned = scan::scan(loc, meta, &block.footer, &push.filters(meta)).await?;
        let st = &scanned.stats;
        let groups = (st.row_groups_read + st.row_groups_skipped).max(1) as u64;
        out.inspected_bytes += meta.data_size * st.row_groups_read as u64 / groups;
        out.inspected_spans += st.rows_scanned;
        self.filtered.insert(meta.block_id.clone(), scanned);
        Ok(())
    }

    fn filtered(&self, block_id: &str) -> &Scanned {
        static EMPTY: std::sync::OnceLock<Scanned> = std::sync::OnceLock::new();
        self.filtered
            .get(block_id)
            .unwrap_or_else(|| EMPTY.get_or_init(Scanned::default))
    }

    /// Sums each trace's counts over the scans of `job` blocks and `extra` blocks (traces
    /// only in `extra` blocks are another job's).
    fn combine(&self, job: &[&str], extra: &[&str], push: &Pushdown) -> Combined {
        let lists: Vec<(&Scanned, bool)> = job
            .iter()
            .map(|b| (self.filtered(b), true))
            .chain(extra.iter().map(|b| (self.filtered(b), false)))
            .collect();
        let width = push.width();
        let mut combined = Combined {
            candidates: HashSet::default(),
            short: Vec::new(),
        };
        // Most traces are in one block only. A bitmap over id hashes marks those seen twice
        // (or colliding): only they need summing in a hash map.
        let total: usize = lists.iter().map(|(l, _)| l.trace_ids.len()).sum();
        let bits = (total * 16).next_power_of_two().max(64);
        let (mut once, mut twice) = (vec![0u64; bits / 64], vec![0u64; bits / 64]);
        let bit = |id: &[u8; 16]| {
            let mut h = IdHasher::default();
            h.write(id);
            (h.finish() >> 20) as usize & (bits - 1)
        };
        for (list, _) in &lists {
            for id in &list.trace_ids {
                let b = bit(id);
                let (word, mask) = (b / 64, 1u64 << (b % 64));
                twice[word] |= once[word] & mask;
                once[word] |= mask;
            }
        }
        // Traces short of the condition in one block, summed over blocks: slot per trace.
        let mut slots: HashMap<[u8; 16], usize, IdHash> = HashMap::default();
        let (mut ids, mut sums, mut in_job) = (Vec::new(), Vec::new(), Vec::new());
        for (list, job_block) in lists {
            for (i, id) in list.trace_ids.iter().enumerate() {
                let counts = list.counts(i);
                // Conditions are monotone: enough in one block is enough for the trace.
                if job_block && push.may_match(counts) {
                    combined.candidates.insert(*id);
                    continue;
                }
                let b = bit(id);
                if twice[b / 64] & (1u64 << (b % 64)) == 0 {
                    // In this block only: decided by its own counts.
                    if job_block {
                        combined.short.push(*id);
                    }
                    continue;
                }
                let slot = *slots.entry(*id).or_insert_with(|| {
                    ids.push(*id);
                    in_job.push(false);
                    sums.resize(sums.len() + width, 0u32);
                    ids.len() - 1
                });
                in_job[slot] |= job_block;
                for (t, c) in sums[slot * width..(slot + 1) * width]
                    .iter_mut()
                    .zip(counts)
                {
                    *t = t.saturating_add(*c);
                }
            }
        }
        for (slot, id) in ids.into_iter().enumerate() {
            if !in_job[slot] || combined.candidates.contains(&id) {
                continue;
            }
            if push.may_match(&sums[slot * width..(slot + 1) * width]) {
                combined.candidates.insert(id);
            } else {
                combined.short.push(id);
            }
        }
        combined
    }

    /// The spans of `batch` (trace ids in stored order of `meta`, a block of the job) from
    /// every block that may hold part of them: `meta` itself and the blocks near it in time
    /// whose bloom filter admits one; only those traces' rows are read and converted.
    async fn read_whole(
        &mut self,
        loc: &tempest_blocks::store::Location,
        all: &[IndexedBlock],
        meta: &BlockMeta,
        batch: &[[u8; 16]],
    ) -> Result<HashMap<[u8; 16], Vec<Span>, IdHash>, QueryError> {
        let window = fragment_window(meta.start_time_unix_nano, meta.end_time_unix_nano);
        let mut traces: HashMap<[u8; 16], Vec<Span>, IdHash> = HashMap::default();
        for b in all.iter().filter(|b| overlaps(&b.meta, window)) {
            let own = b.meta.block_id == meta.block_id;
            let ids: Vec<&[u8; 16]> = batch
                .iter()
                .filter(|id| own || b.bloom.may_contain(id))
                .collect();
            if ids.is_empty() {
                continue;
            }
            if !self.layouts.contains_key(&b.meta.block_id) {
                let layout = scan::scan(loc, &b.meta, &b.footer, &[]).await?;
                self.layouts.insert(b.meta.block_id.clone(), layout);
            }
            let Some(layout) = self.layouts.get(&b.meta.block_id) else {
                continue;
            };
            let mut rows: Vec<std::ops::Range<u64>> = ids
                .iter()
                .filter_map(|id| layout.find(id).map(|i| layout.rows[i].clone()))
                .collect();
            rows.sort_by_key(|r| r.start);
            for span in scan::read_rows(loc, &b.meta, &b.footer, &rows).await? {
                traces.entry(span.trace_id).or_default().push(span);
            }
        }
        Ok(traces)
    }
}

/// Hashes trace ids by folding their bytes: ids are random, so no keyed hash is needed, and
/// some clients leave one half zero, so both halves count.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
}

type IdHash = BuildHasherDefault<IdHasher>;

/// The search result for one (whole) trace, if it matches.
pub fn evaluate(trace: &[Span], req: &SearchRequest) -> Option<TraceSearchMetadata> {
    let start = trace.iter().map(|s| s.start_unix_nano).min()?;
    let end = trace.iter().map(|s| s.end_unix_nano).max()?;
    let duration = Duration::from_nanos(end.saturating_sub(start));
    if req.min_duration.is_some_and(|d| duration < d)
        || req.max_duration.is_some_and(|d| duration > d)
    {
        return None;
    }
    let sets = req.query.eval(trace);
    if sets.is_empty() {
        return None;
    }
    let root = trace.iter().find(|s| s.parent_span_id.is_none());
    let span_sets: Vec<SpanSet> = sets
        .into_iter()
        .map(|set| SpanSet {
            matched: set.spans.len() as u32,
            spans: set
                .spans
                .iter()
                .take(req.spss)
                .filter_map(|m| trace.get(m.index).map(|s| search_span(s, &m.attributes)))
                .collect(),
            attributes: tempest_traces::otlp::to_kvs(&set.attributes),
        })
        .collect();
    Some(TraceSearchMetadata {
        trace_id: trace_id_hex(&trace[0].trace_id),
        root_service_name: root
            .map(|r| r.resource.service_name().unwrap_or_default().to_owned())
            .unwrap_or_else(|| ROOT_NOT_RECEIVED.into()),
        root_trace_name: root
            .map(|r| r.name.clone())
            .unwrap_or_else(|| ROOT_NOT_RECEIVED.into()),
        start_time_unix_nano: start,
        duration_ms: u32::try_from(duration.as_millis()).unwrap_or(u32::MAX),
        span_set: span_sets.first().cloned(),
        span_sets,
    })
}

fn search_span(s: &Span, attributes: &[tempest_traces::KeyValue]) -> SearchSpan {
    SearchSpan {
        span_id: tempest_core::hex::encode(&s.span_id),
        name: s.name.clone(),
        start_time_unix_nano: s.start_unix_nano,
        duration_nanos: s.duration_nano(),
        attributes: tempest_traces::otlp::to_kvs(attributes),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn meta(id: u32, size: u64) -> BlockMeta {
        BlockMeta {
            format: tempest_blocks::meta::FORMAT.into(),
            block_id: format!("b{id:03}"),
            tenant: "t".into(),
            start_time_unix_nano: u64::from(id),
            end_time_unix_nano: u64::from(id) + 10,
            span_count: 1,
            trace_count: 1,
            data_size: size,
            bloom_size: 8,
            row_groups: 1,
            compaction_level: 0,
            created_at: String::new(),
            dedicated_columns: vec![],
            generic_dedicated: Some(vec![]),
            replaces: Vec::new(),
        }
    }

    #[test]
    fn plans_jobs_of_bounded_bytes_newest_first() {
        let tenant = TenantId::parse(Some("t")).expect("tenant");
        let blocks: Vec<_> = (0..10).map(|i| meta(i, 40)).collect();
        let jobs = plan(&tenant, blocks, 100);
        let sizes: Vec<usize> = jobs.iter().map(|j| j.blocks.len()).collect();
        assert_eq!(sizes, vec![2, 2, 2, 2, 2]);
        assert_eq!(jobs[0].blocks[0].block_id, "b009");
        // A block larger than the bound is a job of its own.
        let jobs = plan(&tenant, vec![meta(1, 500), meta(2, 10)], 100);
        assert_eq!(jobs.len(), 2);
    }

    /// Finds one trace per job and counts the jobs started.
    struct OnePerJob(AtomicUsize);

    #[async_trait]
    impl JobRunner for OnePerJob {
        async fn run(&self, job: SearchJob, _: &SearchRequest) -> Result<JobResult, QueryError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(JobResult {
                traces: vec![TraceSearchMetadata {
                    trace_id: job.blocks[0].block_id.clone(),
                    ..Default::default()
                }],
                inspected_traces: 1,
                ..Default::default()
            })
        }
    }

    #[tokio::test]
    async fn stops_once_it_has_limit_traces() {
        let tenant = TenantId::parse(Some("t")).expect("tenant");
        let jobs = plan(&tenant, (0..50).map(|i| meta(i, 10)).collect(), 10);
        assert_eq!(jobs.len(), 50);
        let runner = Arc::new(OnePerJob(AtomicUsize::new(0)));
        let req = SearchRequest {
            query: tempest_traceql::parse("{ }").expect("query"),
            limit: 3,
            spss: 3,
            range: None,
            min_duration: None,
            max_duration: None,
        };
        let resp = run_jobs(jobs, runner.clone(), &req, SearchMetrics::default())
            .await
            .expect("search");
        assert_eq!(resp.traces.len(), 3);
        let metrics = resp.metrics.expect("metrics");
        assert_eq!(metrics.total_jobs, 50);
        assert_eq!(metrics.completed_jobs, 3);
        // Only the jobs already in flight when the limit was reached were started.
        assert!(runner.0.load(Ordering::SeqCst) <= 3 + CONCURRENT_JOBS);
    }
}
