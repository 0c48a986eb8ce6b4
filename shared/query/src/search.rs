//! TraceQL search fanned out over blocks: the blocks in the time range are split into jobs of
//! bounded bytes, jobs run concurrently (each a task here; a `search-worker` invocation on the
//! cloud hosts, through [`JobRunner`]), results merge by trace id, and the search stops once it
//! has `limit` traces.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tempest_blocks::BlockMeta;
use tempest_blocks::index::BlockIndex;
use tempest_blocks::reader;
use tempest_core::TenantId;
use tempest_traceql::Query;
use tempest_traces::Span;

use crate::QueryError;
use crate::params::trace_id_hex;
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

/// Searches the blocks of one job. A trace whose spans are spread over several blocks (each
/// request is its own block until compaction merges them) is assembled whole before the query
/// sees it: the index's bloom filters say which other blocks may hold parts of it, and only
/// those parts are read.
pub async fn run_job(
    index: &BlockIndex,
    job: &SearchJob,
    req: &SearchRequest,
) -> Result<JobResult, QueryError> {
    let loc = index.location();
    let all = index.blocks(&job.tenant).await?;
    let mut out = JobResult::default();
    for meta in &job.blocks {
        let spans = reader::read_spans(loc, meta).await?;
        out.inspected_bytes += meta.data_size;
        out.inspected_spans += spans.len() as u64;
        // Blocks are sorted by trace id: each trace is one run of rows.
        for fragment in spans.chunk_by(|a, b| a.trace_id == b.trace_id) {
            out.inspected_traces += 1;
            let id = fragment[0].trace_id;
            let start = fragment
                .iter()
                .map(|s| s.start_unix_nano)
                .min()
                .unwrap_or(0);
            let end = fragment.iter().map(|s| s.end_unix_nano).max().unwrap_or(0);
            let near = Some((
                start.saturating_sub(FRAGMENT_SLACK_NANOS),
                end.saturating_add(FRAGMENT_SLACK_NANOS),
            ));
            let others: Vec<&BlockMeta> = all
                .iter()
                .filter(|b| {
                    b.meta.block_id != meta.block_id
                        && overlaps(&b.meta, near)
                        && b.bloom.may_contain(&id)
                })
                .map(|b| &b.meta)
                .collect();
            let found = if others.is_empty() {
                evaluate(fragment, req)
            } else {
                let mut whole = fragment.to_vec();
                for other in others {
                    whole.extend(reader::read_trace(loc, other, &id).await?);
                }
                evaluate(&crate::trace_by_id::dedupe(whole), req)
            };
            out.traces.extend(found);
        }
    }
    Ok(out)
}

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
        span_id: s.span_id.iter().map(|b| format!("{b:02x}")).collect(),
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
