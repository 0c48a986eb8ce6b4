//! Compaction and retention, Tempo's compactor redesigned as a scheduled function. One run,
//! per tenant and under that tenant's lease:
//!
//! 1. finishes interrupted work: live blocks that another live block replaces are marked;
//! 2. retention: blocks whose newest span is older than the tenant's retention are marked;
//! 3. deletes blocks marked longer ago than the grace period, and abandoned partial blocks;
//! 4. merges blocks as [`plan`] chooses, oldest windows first, each job only if it can finish
//!    within the run's time budget: output committed (it hides its inputs from then on), then
//!    the inputs marked;
//! 5. rewrites the tenant index.
//!
//! Every step is ordered so that a crash between any two object-store writes loses nothing and
//! shows nothing twice, and the next run completes it.

mod lease;
mod merge;
mod plan;
mod tenant_run;
mod window;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tempest_core::TenantId;

pub use lease::{Acquired, LEASE_FOLDER, Lease, LeaseRecord};
pub use merge::{MergeOptions, Merged, merge, merge_data};
pub use plan::{ACTIVE_PERIOD, PlanOptions, plan};

use tenant_run::TenantRun;

use crate::BlockError;
use crate::reader;
use crate::store::Location;

/// The time compaction decides by: the system clock, or a test's.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Everything a compaction run is configured by.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// What to merge.
    pub plan: PlanOptions,
    /// How much a merge holds in memory.
    pub merge: MergeOptions,
    /// How long blocks are kept, unless the tenant has its own.
    pub retention: Duration,
    /// Per-tenant retention.
    pub tenant_retention: BTreeMap<String, Duration>,
    /// How long a marked block stays before it is deleted (in-flight queries may still read
    /// it): Tempo's `compacted_block_retention`.
    pub grace: Duration,
    /// How long one run may take: no merge starts that is not expected to finish within it.
    pub time_budget: Duration,
    /// Merge speed assumed before the run has measured its own, spans per second.
    pub assumed_spans_per_sec: f64,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            plan: PlanOptions {
                window: Duration::from_secs(3600),
                max_input_blocks: 32,
                max_block_bytes: 1 << 30,
            },
            merge: MergeOptions::default(),
            retention: Duration::from_secs(14 * 24 * 3600),
            tenant_retention: BTreeMap::new(),
            grace: Duration::from_secs(3600),
            time_budget: Duration::from_secs(240),
            assumed_spans_per_sec: 100_000.0,
        }
    }
}

impl CompactOptions {
    /// `tenant`'s retention.
    pub fn retention_of(&self, tenant: &str) -> Duration {
        self.tenant_retention
            .get(tenant)
            .copied()
            .unwrap_or(self.retention)
    }
}

/// What a run did for one tenant.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TenantReport {
    /// The tenant.
    pub tenant: String,
    /// Set when another compactor held the tenant's lease (nothing was done).
    pub busy_with: Option<String>,
    /// Merge jobs completed.
    pub merged_jobs: u64,
    /// Blocks merged away.
    pub input_blocks: u64,
    /// Spans written by merges (after dropping duplicates).
    pub spans_written: u64,
    /// Live blocks marked because a committed block replaces them (interrupted runs).
    pub marked_replaced: u64,
    /// Blocks marked by retention.
    pub marked_retention: u64,
    /// Marked blocks deleted after their grace period.
    pub deleted_blocks: u64,
    /// Abandoned partial blocks deleted.
    pub deleted_partial: u64,
    /// Merge jobs left for the next run (time budget).
    pub jobs_left: u64,
    /// Blocks in the rewritten tenant index.
    pub indexed_blocks: u64,
}

/// Progress of a run, for a CLI's progress bar.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// A tenant's merges are planned.
    Planned {
        /// The tenant.
        tenant: &'a str,
        /// Jobs planned.
        jobs: usize,
    },
    /// One merge job finished.
    Merged {
        /// The tenant.
        tenant: &'a str,
        /// Spans it wrote.
        spans: u64,
    },
}

/// Folders with no meta at all are partial writes; they are deleted once this old (and older
/// than the tenant's retention), long past any write still in progress.
const PARTIAL_AGE: Duration = Duration::from_secs(24 * 3600);

/// Runs compaction over one location.
pub struct Compactor {
    loc: Location,
    opts: CompactOptions,
    clock: Arc<dyn Clock>,
    owner: String,
}

impl Compactor {
    /// A compactor over `loc` with a unique owner name for its leases.
    pub fn new(loc: Location, opts: CompactOptions, clock: Arc<dyn Clock>) -> Self {
        Compactor {
            loc,
            opts,
            clock,
            owner: format!("compactor-{}", uuid::Uuid::new_v4()),
        }
    }

    /// The same compactor with its time budget cut to at most `limit`: a function host passes
    /// what is left before its invocation's deadline.
    pub fn with_budget_at_most(mut self, limit: Duration) -> Self {
        self.opts.time_budget = self.opts.time_budget.min(limit);
        self
    }

    /// This compactor's lease owner name.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn now_ms(&self) -> u64 {
        unix_ms(self.clock.now())
    }

    /// One run over every tenant (or only `tenants` when given), within the time budget.
    pub async fn run(
        &self,
        tenants: Option<&[TenantId]>,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<Vec<TenantReport>, BlockError> {
        let deadline = tokio::time::Instant::now() + self.opts.time_budget;
        let tenants: Vec<TenantId> = match tenants {
            Some(t) => t.to_vec(),
            None => reader::list_tenants(&self.loc)
                .await?
                .iter()
                .filter_map(|t| TenantId::parse(Some(t)).ok())
                .collect(),
        };
        let mut reports = Vec::with_capacity(tenants.len());
        for tenant in &tenants {
            if tokio::time::Instant::now() >= deadline {
                tracing::info!(tenant = %tenant, "time budget spent; the tenant waits for the next run");
                break;
            }
            reports.push(self.run_tenant(tenant, deadline, progress).await?);
        }
        Ok(reports)
    }

    /// One run over `tenant`, stopping new work at `deadline`.
    pub async fn run_tenant(
        &self,
        tenant: &TenantId,
        deadline: tokio::time::Instant,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<TenantReport, BlockError> {
        let mut report = TenantReport {
            tenant: tenant.to_string(),
            ..Default::default()
        };
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        // The lease outlives the budget by a margin (the writes after the last merge), so it
        // is still held at the last commit; a killed run blocks the tenant no longer than this.
        let ttl = ms(remaining) + ms(remaining.min(Duration::from_secs(60)));
        let lease = match Lease::acquire(&self.loc, tenant, &self.owner, self.now_ms(), ttl).await?
        {
            Acquired::Held(lease) => lease,
            Acquired::Busy(holder) => {
                tracing::info!(tenant = %tenant, holder = %holder.owner, "tenant is being compacted elsewhere");
                report.busy_with = Some(holder.owner);
                return Ok(report);
            }
        };
        let outcome = TenantRun {
            loc: &self.loc,
            opts: &self.opts,
            clock: self.clock.as_ref(),
            tenant,
            lease: &lease,
            report: &mut report,
            marked: Vec::new(),
        }
        .run(deadline, progress)
        .await;
        // Released even after a failure, unless the lease already ran out.
        if lease.check(self.now_ms()).is_ok() {
            lease.release().await?;
        }
        match outcome {
            // Out of time before a write: nothing half-done is visible; the next run goes on.
            Err(BlockError::LeaseExpired { .. }) => {
                tracing::warn!(tenant = %tenant, "lease ran out; stopping this tenant's run");
                Ok(report)
            }
            other => other.map(|()| report),
        }
    }
}
