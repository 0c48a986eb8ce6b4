//! One compaction run over one tenant, under its lease, step by step (see the module above).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tempest_core::TenantId;

use super::{Clock, CompactOptions, Lease, PARTIAL_AGE, Progress, TenantReport, ms, unix_ms};
use super::{merge_data, plan};
use crate::BlockError;
use crate::index::{self, IndexedBlock};
use crate::listing::{self, TenantListing};
use crate::marks;
use crate::meta::BlockMeta;
use crate::reader;
use crate::store::Location;
use crate::tenant_index::{CompactedEntry, TenantIndex};

/// The state of one tenant's run.
pub(super) struct TenantRun<'a> {
    pub(super) loc: &'a Location,
    pub(super) opts: &'a CompactOptions,
    pub(super) clock: &'a dyn Clock,
    pub(super) tenant: &'a TenantId,
    pub(super) lease: &'a Lease,
    pub(super) report: &'a mut TenantReport,
    /// Blocks marked and not deleted, for the tenant index.
    pub(super) marked: Vec<CompactedEntry>,
}

impl TenantRun<'_> {
    fn now_ms(&self) -> u64 {
        unix_ms(self.clock.now())
    }

    /// Every step, then the tenant index.
    pub(super) async fn run(
        mut self,
        deadline: tokio::time::Instant,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<(), BlockError> {
        let (listing, previous) = futures::join!(
            TenantListing::of(self.loc, self.tenant),
            TenantIndex::read(self.loc, self.tenant)
        );
        let listing = listing?;
        let previous = previous.unwrap_or_else(|e| {
            tracing::warn!(tenant = %self.tenant, error = %e, "tenant index unreadable; rebuilding it");
            None
        });
        let persisted = previous
            .as_ref()
            .map(index::from_persisted)
            .unwrap_or_default();
        let known: HashMap<&str, IndexedBlock> = persisted
            .iter()
            .map(|b| (b.meta.block_id.as_str(), b.clone()))
            .collect();
        let live = index::resolve(
            self.loc,
            self.tenant,
            listing.live(),
            &known,
            index::Marks::Known,
        )
        .await?
        .blocks;
        let live = self.finish_interrupted(live).await?;
        let now_ms = self.now_ms();
        let live = self.apply_retention(live, now_ms).await?;
        self.delete_expired(&listing, previous.as_ref(), now_ms)
            .await?;
        let live = self.merge(live, now_ms, deadline, progress).await?;
        self.write_index(live).await
    }

    /// Marks live blocks that another live block replaces: inputs of a committed merge whose
    /// run stopped before marking them. Returns the others.
    async fn finish_interrupted(
        &mut self,
        mut live: Vec<IndexedBlock>,
    ) -> Result<Vec<IndexedBlock>, BlockError> {
        let visible: HashSet<String> = listing::visible(&live, |b| &b.meta, std::iter::empty())
            .iter()
            .map(|b| b.meta.block_id.clone())
            .collect();
        for b in live.iter().filter(|b| !visible.contains(&b.meta.block_id)) {
            self.mark(&b.meta).await?;
            self.report.marked_replaced += 1;
        }
        live.retain(|b| visible.contains(&b.meta.block_id));
        Ok(live)
    }

    /// Marks blocks whose newest span is older than the tenant's retention. Returns the others.
    async fn apply_retention(
        &mut self,
        live: Vec<IndexedBlock>,
        now_ms: u64,
    ) -> Result<Vec<IndexedBlock>, BlockError> {
        let retention_ms = ms(self.opts.retention_of(self.tenant.as_str()));
        let cutoff_ns = u128::from(now_ms.saturating_sub(retention_ms)) * 1_000_000;
        let (expired, kept): (Vec<IndexedBlock>, Vec<IndexedBlock>) = live
            .into_iter()
            .partition(|b| u128::from(b.meta.end_time_unix_nano) < cutoff_ns);
        for b in &expired {
            self.mark(&b.meta).await?;
            self.report.marked_retention += 1;
        }
        Ok(kept)
    }

    /// Deletes blocks marked longer ago than the grace period, oldest marks first, and
    /// partial blocks nobody has written to for long.
    async fn delete_expired(
        &mut self,
        listing: &TenantListing,
        previous: Option<&TenantIndex>,
        now_ms: u64,
    ) -> Result<(), BlockError> {
        let compacted_at: HashMap<&str, u64> = previous
            .iter()
            .flat_map(|p| p.compacted.iter())
            .map(|c| (c.block_id.as_str(), c.compacted_at_unix_ms))
            .collect();
        let mut marks_at = Vec::new();
        for id in listing.marked() {
            let at = match compacted_at.get(id) {
                Some(&at) => Some(at),
                None => marks::read_compacted(self.loc, self.tenant.as_str(), id)
                    .await?
                    .map(|m| m.compacted_at_unix_ms),
            };
            marks_at.extend(at.map(|at| (at, id)));
        }
        // Oldest marks first: a compaction's inputs go before the block that replaced them,
        // so a reader never finds inputs without the block that hides them.
        marks_at.sort_unstable();
        for (at, id) in marks_at {
            let Some(block) = listing.blocks.get(id) else {
                continue;
            };
            if at.saturating_add(ms(self.opts.grace)) <= now_ms {
                self.lease.check(self.now_ms())?;
                marks::delete_block(self.loc, block).await?;
                self.report.deleted_blocks += 1;
            } else {
                self.marked.push(CompactedEntry {
                    block_id: id.to_owned(),
                    compacted_at_unix_ms: at,
                });
            }
        }
        let partial_age = ms(PARTIAL_AGE.max(self.opts.retention_of(self.tenant.as_str())));
        for (id, block) in &listing.blocks {
            let old = block
                .last_modified()
                .is_some_and(|t| unix_ms(t).saturating_add(partial_age) <= now_ms);
            if !block.has_meta && !block.has_compacted_meta && old {
                // Looked at again just before: a block committed since is left alone.
                if reader::read_meta(self.loc, self.tenant, id)
                    .await?
                    .is_none()
                {
                    self.lease.check(self.now_ms())?;
                    marks::delete_block(self.loc, block).await?;
                    self.report.deleted_partial += 1;
                }
            }
        }
        Ok(())
    }

    /// Merges as [`plan`] chooses, oldest windows first, each job only if it is expected to
    /// finish by `deadline`: output committed, then its inputs marked. Returns the live blocks
    /// after.
    async fn merge(
        &mut self,
        mut live: Vec<IndexedBlock>,
        now_ms: u64,
        deadline: tokio::time::Instant,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<Vec<IndexedBlock>, BlockError> {
        let tenant = self.tenant.as_str();
        let metas: Vec<BlockMeta> = live.iter().map(|b| b.meta.clone()).collect();
        let jobs = plan(&metas, now_ms, &self.opts.plan);
        progress(Progress::Planned {
            tenant,
            jobs: jobs.len(),
        });
        let mut rate = self.opts.assumed_spans_per_sec.max(1.0);
        for (n, job) in jobs.iter().enumerate() {
            let spans: u64 = job.iter().map(|m| m.span_count).sum();
            let expected = Duration::from_secs_f64(spans as f64 / rate);
            let started = tokio::time::Instant::now();
            let merged = if started + expected > deadline {
                None
            } else {
                let merging = merge_data(self.loc, self.tenant, job, self.opts.merge);
                // Out of time mid-merge: nothing was committed; the next run redoes the job.
                tokio::time::timeout_at(deadline, merging).await.ok()
            };
            let Some(merged) = merged else {
                self.report.jobs_left = (jobs.len() - n) as u64;
                tracing::info!(
                    tenant,
                    left = self.report.jobs_left,
                    "time budget reached; the rest is left for the next run"
                );
                break;
            };
            let Some(merged) = merged? else { continue };
            self.lease.check(self.now_ms())?;
            merged.commit(self.loc).await?;
            for input in job {
                self.mark(input).await?;
            }
            let inputs: HashSet<&str> = job.iter().map(|m| m.block_id.as_str()).collect();
            live.retain(|b| !inputs.contains(b.meta.block_id.as_str()));
            live.push(IndexedBlock {
                meta: merged.meta.clone(),
                bloom: Arc::new(merged.bloom()?),
                footer: Arc::default(),
            });
            self.report.merged_jobs += 1;
            self.report.input_blocks += job.len() as u64;
            self.report.spans_written += merged.meta.span_count;
            let took = started.elapsed().as_secs_f64().max(1e-3);
            rate = (spans as f64 / took).max(1.0);
            progress(Progress::Merged {
                tenant,
                spans: merged.meta.span_count,
            });
        }
        Ok(live)
    }

    /// Rewrites the tenant index: the live blocks with their blooms, and the marked blocks.
    async fn write_index(&mut self, mut live: Vec<IndexedBlock>) -> Result<(), BlockError> {
        live.sort_by(|a, b| {
            (a.meta.start_time_unix_nano, &a.meta.block_id)
                .cmp(&(b.meta.start_time_unix_nano, &b.meta.block_id))
        });
        let now = self.now_ms();
        self.lease.check(now)?;
        let index = TenantIndex {
            created_at_unix_ms: now,
            blocks: live
                .iter()
                .map(|b| (b.meta.clone(), bytes::Bytes::from(b.bloom.to_bytes())))
                .collect(),
            compacted: std::mem::take(&mut self.marked),
        };
        index.write(self.loc, self.tenant).await?;
        self.report.indexed_blocks = index.blocks.len() as u64;
        Ok(())
    }

    /// Marks one block compacted now, under the lease.
    async fn mark(&mut self, meta: &BlockMeta) -> Result<(), BlockError> {
        let now = self.now_ms();
        self.lease.check(now)?;
        marks::mark_compacted(self.loc, meta, now).await?;
        self.marked.push(CompactedEntry {
            block_id: meta.block_id.clone(),
            compacted_at_unix_ms: now,
        });
        Ok(())
    }
}
