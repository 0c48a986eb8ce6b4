//! The `search-worker` function: one search job as a JSON request, its result as a JSON
//! response. `query` sends jobs to workers through an [`Invoker`] — an HTTP POST locally and on
//! Azure, a Lambda invocation on AWS — so the fan-out is the same code on every host.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tempest_blocks::BlockMeta;
use tempest_blocks::index::BlockIndex;
use tempest_core::TenantId;

use crate::QueryError;
use crate::search::{JobResult, JobRunner, SearchJob, SearchRequest, run_job};
use crate::tempopb::TraceSearchMetadata;

/// A job on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRequest {
    /// Whose blocks.
    pub tenant: String,
    /// The blocks to search.
    pub blocks: Vec<BlockMeta>,
    /// The TraceQL query.
    pub query: String,
    /// Traces to return at most.
    pub limit: usize,
    /// Spans per spanset.
    pub spss: usize,
    /// Unix ns, half-open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<(u64, u64)>,
    /// Trace duration bounds, ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_duration_nanos: Option<u64>,
    /// Upper trace duration bound, ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_nanos: Option<u64>,
}

/// A job's result on the wire.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerResponse {
    /// Matching traces.
    pub traces: Vec<TraceSearchMetadata>,
    /// Traces evaluated.
    pub inspected_traces: u32,
    /// Spans scanned.
    pub inspected_spans: u64,
    /// Bytes read.
    pub inspected_bytes: u64,
}

impl WorkerRequest {
    /// The wire form of `job` under `req`.
    pub fn new(job: &SearchJob, req: &SearchRequest) -> Self {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        WorkerRequest {
            tenant: job.tenant.to_string(),
            blocks: job.blocks.clone(),
            query: req.query.source().to_owned(),
            limit: req.limit,
            spss: req.spss,
            range: req.range,
            min_duration_nanos: req.min_duration.map(nanos),
            max_duration_nanos: req.max_duration.map(nanos),
        }
    }

    /// The job and request again, validated as the query side validates them.
    pub fn parse(self) -> Result<(SearchJob, SearchRequest), QueryError> {
        let tenant = TenantId::parse(Some(&self.tenant))
            .map_err(|e| QueryError::BadRequest(format!("tenant: {e}")))?;
        let query = tempest_traceql::parse(&self.query)
            .map_err(|e| QueryError::BadRequest(e.to_string()))?;
        if self.blocks.iter().any(|b| b.tenant != self.tenant) {
            return Err(QueryError::BadRequest(
                "every block must belong to the job's tenant".into(),
            ));
        }
        Ok((
            SearchJob {
                tenant,
                blocks: self.blocks,
            },
            SearchRequest {
                query,
                limit: self.limit,
                spss: self.spss,
                range: self.range,
                min_duration: self.min_duration_nanos.map(Duration::from_nanos),
                max_duration: self.max_duration_nanos.map(Duration::from_nanos),
            },
        ))
    }
}

impl From<JobResult> for WorkerResponse {
    fn from(r: JobResult) -> Self {
        WorkerResponse {
            traces: r.traces,
            inspected_traces: r.inspected_traces,
            inspected_spans: r.inspected_spans,
            inspected_bytes: r.inspected_bytes,
        }
    }
}

impl From<WorkerResponse> for JobResult {
    fn from(r: WorkerResponse) -> Self {
        JobResult {
            traces: r.traces,
            inspected_traces: r.inspected_traces,
            inspected_spans: r.inspected_spans,
            inspected_bytes: r.inspected_bytes,
        }
    }
}

/// The `search-worker` function body: runs the job in `body` over the blocks of `index`.
pub async fn handle(index: &BlockIndex, body: &[u8]) -> Result<WorkerResponse, QueryError> {
    let request: WorkerRequest = serde_json::from_slice(body)
        .map_err(|e| QueryError::BadRequest(format!("search job: {e}")))?;
    let (job, req) = request.parse()?;
    Ok(run_job(index, &job, &req).await?.into())
}

/// Sends a JSON payload to a `search-worker` and returns its JSON answer.
#[async_trait]
pub trait Invoker: Send + Sync {
    /// Invokes one worker.
    async fn invoke(&self, payload: Vec<u8>) -> Result<Vec<u8>, String>;
}

/// Runs each job in a `search-worker` reached through an [`Invoker`].
pub struct InvokedJobs {
    invoker: Arc<dyn Invoker>,
}

impl InvokedJobs {
    /// Jobs sent through `invoker`.
    pub fn new(invoker: Arc<dyn Invoker>) -> Self {
        InvokedJobs { invoker }
    }
}

#[async_trait]
impl JobRunner for InvokedJobs {
    async fn run(&self, job: SearchJob, req: &SearchRequest) -> Result<JobResult, QueryError> {
        let payload = serde_json::to_vec(&WorkerRequest::new(&job, req))
            .map_err(|e| QueryError::Worker(e.to_string()))?;
        let answer = self
            .invoker
            .invoke(payload)
            .await
            .map_err(QueryError::Worker)?;
        let response: WorkerResponse = serde_json::from_slice(&answer)
            .map_err(|e| QueryError::Worker(format!("malformed worker answer: {e}")))?;
        Ok(response.into())
    }
}
