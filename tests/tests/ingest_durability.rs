//! Kill `tempest serve` (SIGKILL) while many clients are sending spans: every acknowledged span
//! is readable afterwards, and every block a reader sees is whole.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tempest_tests::Tempest;

fn request(trace: &str) -> serde_json::Value {
    json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "load"}}]},
        "scopeSpans": [{"spans": (0..20).map(|i| json!({"traceId": trace, "spanId": format!("{:016x}", i + 1), "name": format!("s{i}"),
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000"})).collect::<Vec<_>>()}]}]})
}

#[tokio::test]
async fn acknowledged_spans_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut t = Tempest::start(dir.path(), &[], &[]).await;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let url = format!("http://127.0.0.1:{}/v1/traces", t.otlp_port);
    let mut senders = Vec::new();
    for w in 0..8u64 {
        let (acked, url) = (acked.clone(), url.clone());
        senders.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0..10_000u64 {
                let trace = format!("{:016x}{:016x}", w + 1, n + 1);
                match http.post(&url).json(&request(&trace)).send().await {
                    Ok(r) if r.status() == 200 => {
                        acked.lock().unwrap_or_else(|p| p.into_inner()).push(trace)
                    }
                    _ => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    t.kill();
    for s in senders {
        let _ = s.await;
    }
    let acked = acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        acked.len() > 20,
        "the load ran before the kill ({} acknowledged)",
        acked.len()
    );
    let storage = dir.path().join("traces");
    let out = Command::new(tempest_tests::tempest::binary())
        .arg("blocks")
        .arg("--storage")
        .arg(&storage)
        .arg("list")
        .output()
        .expect("list");
    assert!(
        out.status.success(),
        "every visible block is readable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Read every visible block whole through the library, and collect the traces it holds.
    let loc = tempest_blocks::store::Location::open(&storage.to_string_lossy()).expect("open");
    let tenant = tempest_core::TenantId::parse(None).expect("tenant");
    let mut stored = BTreeSet::new();
    for meta in tempest_blocks::reader::list_blocks(&loc, &tenant)
        .await
        .expect("list")
    {
        let spans = tempest_blocks::reader::read_spans(&loc, &meta)
            .await
            .expect("a visible block is whole");
        assert_eq!(spans.len() as u64, meta.span_count);
        stored.extend(spans.iter().map(|s| {
            s.trace_id
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        }));
    }
    let missing: Vec<&String> = acked.iter().filter(|t| !stored.contains(*t)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged traces lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
}
