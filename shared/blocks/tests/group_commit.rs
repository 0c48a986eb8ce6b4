//! Group commit: concurrent requests share blocks, and each is answered only after its block
//! is committed.

use std::sync::Arc;

use tempest_blocks::ingest::GroupCommitSink;
use tempest_blocks::reader;
use tempest_blocks::store::Location;
use tempest_core::TenantId;
use tempest_traces::receivers::SpanSink;
use tempest_traces::{Span, SpanKind};

fn span(trace: u16) -> Span {
    let mut trace_id = [1u8; 16];
    trace_id[..2].copy_from_slice(&trace.to_be_bytes());
    Span {
        trace_id,
        span_id: [2; 8],
        name: format!("req-{trace}"),
        kind: SpanKind::Server,
        start_unix_nano: 1_000 + u64::from(trace),
        end_unix_nano: 2_000 + u64::from(trace),
        ..Span::default()
    }
}

#[tokio::test]
async fn concurrent_requests_share_blocks_and_each_is_committed_when_answered() {
    let loc = Location::open("memory://").expect("memory store");
    let sink = Arc::new(GroupCommitSink::start(loc.clone(), 1_000));
    let (a, b) = (
        TenantId::parse(Some("a")).expect("t"),
        TenantId::parse(Some("b")).expect("t"),
    );
    let calls = (0..50u16).map(|i| {
        let (sink, tenant) = (sink.clone(), if i % 2 == 0 { a.clone() } else { b.clone() });
        async move {
            sink.commit(tenant.clone(), vec![span(i)])
                .await
                .expect("commit");
            // Answered means committed: the span is readable right away.
            let mut id = [1u8; 16];
            id[..2].copy_from_slice(&i.to_be_bytes());
            (i, tenant, id)
        }
    });
    let done = futures::future::join_all(calls).await;
    for (i, tenant, id) in done {
        let found = reader::find_trace(&loc, &tenant, &id).await.expect("find");
        assert_eq!(found.len(), 1, "request {i} readable once answered");
    }
    let blocks_a = reader::list_blocks(&loc, &a).await.expect("list");
    let blocks_b = reader::list_blocks(&loc, &b).await.expect("list");
    assert!(
        blocks_a.len() < 25 && blocks_b.len() < 25,
        "concurrent requests were grouped: {} and {} blocks",
        blocks_a.len(),
        blocks_b.len()
    );
    assert_eq!(blocks_a.iter().map(|m| m.span_count).sum::<u64>(), 25);
    assert_eq!(blocks_b.iter().map(|m| m.span_count).sum::<u64>(), 25);
}

#[tokio::test]
async fn a_round_never_exceeds_its_span_bound() {
    let loc = Location::open("memory://").expect("memory store");
    let sink = Arc::new(GroupCommitSink::start(loc.clone(), 10));
    let t = TenantId::parse(None).expect("t");
    let calls = (0..40u16).map(|i| {
        let (sink, t) = (sink.clone(), t.clone());
        async move { sink.commit(t, vec![span(i)]).await }
    });
    for r in futures::future::join_all(calls).await {
        r.expect("commit");
    }
    let metas = reader::list_blocks(&loc, &t).await.expect("list");
    assert!(
        metas.iter().all(|m| m.span_count <= 10),
        "{:?}",
        metas.iter().map(|m| m.span_count).collect::<Vec<_>>()
    );
    assert_eq!(metas.iter().map(|m| m.span_count).sum::<u64>(), 40);
}
