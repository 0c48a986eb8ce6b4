//! Choosing what to merge, as Tempo's block selector does: blocks grouped by time window
//! (of their end time) and compaction level, oldest windows first, lower levels first,
//! smallest blocks first; outside the active period levels are ignored so old windows end up
//! as few blocks. A job takes at most `max_input_blocks` blocks and
//! `max_block_bytes` of data.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::meta::BlockMeta;

/// How far back levels are kept apart (Tempo's active window).
pub const ACTIVE_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// Limits of one merge job.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Width of a compaction window.
    pub window: Duration,
    /// Most blocks merged into one.
    pub max_input_blocks: usize,
    /// Most data bytes merged into one block.
    pub max_block_bytes: u64,
}

/// Merge jobs for one tenant's blocks at `now_ms`, in the order to run them.
pub fn plan(blocks: &[BlockMeta], now_ms: u64, opts: &PlanOptions) -> Vec<Vec<BlockMeta>> {
    let window_ns = opts.window.as_nanos().max(1);
    let now_ns = u128::from(now_ms) * 1_000_000;
    let active_from_ns = now_ns.saturating_sub(ACTIVE_PERIOD.as_nanos());
    let mut groups: BTreeMap<(u128, Option<u32>), Vec<&BlockMeta>> = BTreeMap::new();
    for b in blocks {
        let window = u128::from(b.end_time_unix_nano) / window_ns;
        let active = (window + 1) * window_ns > active_from_ns;
        let level = active.then_some(b.compaction_level);
        groups.entry((window, level)).or_default().push(b);
    }
    let mut jobs = Vec::new();
    for (_, mut group) in groups {
        group.sort_by(|a, b| (a.data_size, &a.block_id).cmp(&(b.data_size, &b.block_id)));
        let mut job: Vec<BlockMeta> = Vec::new();
        let mut bytes = 0u64;
        for b in group {
            let full = job.len() >= opts.max_input_blocks.max(2)
                || bytes.saturating_add(b.data_size) > opts.max_block_bytes;
            if full {
                if job.len() >= 2 {
                    jobs.push(std::mem::take(&mut job));
                }
                job.clear();
                bytes = 0;
            }
            bytes = bytes.saturating_add(b.data_size);
            job.push(b.clone());
        }
        if job.len() >= 2 {
            jobs.push(job);
        }
    }
    jobs
}
