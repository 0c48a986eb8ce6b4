//! The `ingest` function's storage side: every accepted batch becomes one committed block.

use async_trait::async_trait;
use tempest_core::TenantId;
use tempest_traces::Span;
use tempest_traces::receivers::SpanSink;

use crate::store::Location;
use crate::writer::{self, SortedSpans};

/// Commits each batch as its own block before the receiver answers.
pub struct BlockSink {
    loc: Location,
}

impl BlockSink {
    /// A sink writing blocks to `loc`.
    pub fn new(loc: Location) -> Self {
        BlockSink { loc }
    }
}

#[async_trait]
impl SpanSink for BlockSink {
    async fn commit(&self, tenant: TenantId, spans: Vec<Span>) -> Result<(), String> {
        let meta = writer::write_block(&self.loc, &tenant, spans)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(m) = meta {
            tracing::debug!(tenant = %tenant, block = %m.block_id, spans = m.span_count, "block committed");
        }
        Ok(())
    }
}

/// Spans per group-committed block in a long-running host.
pub const GROUP_COMMIT_MAX_SPANS: usize = 500_000;

/// Group commit for a long-running host: requests that arrive while a block is being written
/// are committed together in the next block (one block per tenant per round), and each request
/// is answered only once the block holding its spans is committed. Under light load every
/// request is written at once; under heavy load blocks grow, bounded by `max_spans`.
pub struct GroupCommitSink {
    tx: tokio::sync::mpsc::Sender<Pending>,
}

/// Answers one request once its block is committed.
type Waiter = tokio::sync::oneshot::Sender<Result<(), String>>;

struct Pending {
    tenant: TenantId,
    part: SortedSpans,
    done: Waiter,
}

impl GroupCommitSink {
    /// Starts the committer task writing to `loc`; one round holds at most `max_spans` spans
    /// (a single larger request is still written whole).
    pub fn start(loc: Location, max_spans: usize) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Pending>(1024);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut round = vec![first];
                let mut spans = round[0].part.len();
                while spans < max_spans {
                    match rx.try_recv() {
                        Ok(p) => {
                            spans += p.part.len();
                            round.push(p);
                        }
                        Err(_) => break,
                    }
                }
                commit_round(&loc, round).await;
            }
        });
        GroupCommitSink { tx }
    }
}

/// Writes one block per tenant of the round, then answers every request of that tenant.
async fn commit_round(loc: &Location, round: Vec<Pending>) {
    let mut by_tenant: std::collections::BTreeMap<TenantId, (Vec<SortedSpans>, Vec<Waiter>)> =
        Default::default();
    for p in round {
        let entry = by_tenant.entry(p.tenant).or_default();
        entry.0.push(p.part);
        entry.1.push(p.done);
    }
    let writes = by_tenant
        .into_iter()
        .map(|(tenant, (parts, waiters))| async move {
            let result = writer::write_sorted(loc, &tenant, parts)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            for w in waiters {
                let _ = w.send(result.clone());
            }
        });
    futures::future::join_all(writes).await;
}

#[async_trait]
impl SpanSink for GroupCommitSink {
    async fn commit(&self, tenant: TenantId, spans: Vec<Span>) -> Result<(), String> {
        // Sorted and converted here, on the request's thread, while its spans are in cache;
        // the committer then only merges and encodes (BENCHMARKS.md).
        let part = SortedSpans::new(spans).map_err(|e| e.to_string())?;
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send(Pending { tenant, part, done })
            .await
            .map_err(|_| "the block committer has stopped".to_owned())?;
        wait.await
            .map_err(|_| "the block committer has stopped".to_owned())?
    }
}
