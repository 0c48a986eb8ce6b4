//! `compact` end to end, on local disk, moto's S3 and Azurite (each started here): spans sent
//! over OTLP in many requests (many small blocks, traces split across them), two
//! `tempest compact` processes started at once, then every span read back exactly once through
//! the Tempo query API, from fewer blocks; and retention from the environment.

use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tempest_tests::Tempest;
use tempest_tests::emulators::{azurite_blob, moto_s3};

const TRACES: usize = 4;
const REQUESTS: usize = 12;

fn tempest(args: &[&str], envs: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(tempest_tests::tempest::binary());
    cmd.args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env("TEMPEST_LOG", "warn");
    cmd
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn block_count(storage: &str, envs: &[(&str, String)]) -> usize {
    let out = tempest(&["blocks", "--storage", storage, "list"], envs)
        .output()
        .expect("tempest blocks");
    ok(out, "tempest blocks list").lines().count()
}

fn trace_hex(t: usize) -> String {
    format!(
        "{:032x}",
        0x00c0_ffee_0000_0000_0000_0000_0000_0000_u128 + t as u128
    )
}

/// Sends `requests` OTLP/JSON requests (each one block) of one span of each of `TRACES`
/// traces, ten minutes old, as service `compact-svc`.
async fn ingest(t: &Tempest, requests: usize) {
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let client = reqwest::Client::new();
    for r in 0..requests {
        let spans: Vec<Value> = (0..TRACES)
            .map(|tr| {
                let start = now_ns - 600_000_000_000 + (r * 1_000_000) as u64;
                json!({"traceId": trace_hex(tr), "spanId": format!("{:016x}", 0x5000 + r * 16 + tr),
                       "name": format!("step-{r}"), "kind": 2,
                       "startTimeUnixNano": start.to_string(),
                       "endTimeUnixNano": (start + 500_000).to_string()})
            })
            .collect();
        let body = json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "compact-svc"}}]},
            "scopeSpans": [{"spans": spans}]}]});
        let resp = client
            .post(format!("http://127.0.0.1:{}/v1/traces", t.otlp_port))
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200, "{}", t.log_text());
    }
}

/// The span ids of trace `tr` as the Tempo API returns them (with repeats), and the status.
async fn span_ids(t: &Tempest, tr: usize) -> (u16, Vec<String>) {
    let resp = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/api/v2/traces/{}",
            t.query_port,
            trace_hex(tr)
        ))
        .send()
        .await
        .expect("query");
    let status = resp.status().as_u16();
    if status != 200 {
        return (status, Vec::new());
    }
    let body: Value = resp.json().await.expect("json");
    let ids = body["trace"]["resourceSpans"]
        .as_array()
        .expect("resourceSpans")
        .iter()
        .flat_map(|rs| rs["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|ss| ss["spans"].as_array().cloned().unwrap_or_default())
        .map(|s| s["spanId"].as_str().expect("spanId").to_owned())
        .collect();
    (status, ids)
}

/// Asserts every trace has `requests` spans, each once.
async fn expect_each_span_once(t: &Tempest, requests: usize, when: &str) {
    for tr in 0..TRACES {
        let (status, mut ids) = span_ids(t, tr).await;
        assert_eq!(status, 200, "{when}: trace {tr}");
        let total = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(
            (total, ids.len()),
            (requests, requests),
            "{when}: trace {tr}"
        );
    }
}

/// Runs the scenario against `storage` with `envs` for the emulator.
async fn scenario(storage: &str, envs: Vec<(&str, String)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut serve_envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The schedule is off here; `tempest compact` does the runs this test controls.
    serve_envs.push(("TEMPEST_COMPACTION_INTERVAL", "0"));
    let t = Tempest::start(dir.path(), &["--traces-storage", storage], &serve_envs).await;
    // Each request is its own block; every trace has a span in every request.
    ingest(&t, REQUESTS).await;
    assert_eq!(block_count(storage, &envs), REQUESTS);

    // Two compactors at once: the lease lets one work; the other skips or finds nothing left.
    let run = || {
        tempest(&["compact", "--storage", storage, "--json"], &envs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tempest compact")
    };
    let (a, b) = (run(), run());
    let reports: Vec<Value> = [a, b]
        .into_iter()
        .flat_map(|c| {
            let out = ok(
                c.wait_with_output().expect("wait"),
                "concurrent tempest compact",
            );
            out.lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("report JSON"))
                .collect::<Vec<_>>()
        })
        .collect();
    let merged: u64 = reports
        .iter()
        .map(|r| r["input_blocks"].as_u64().expect("input_blocks"))
        .sum();
    assert_eq!(merged, REQUESTS as u64, "{reports:?}");
    // All spans are within minutes of now: one or two hourly windows.
    let after = block_count(storage, &envs);
    assert!((1..=2).contains(&after), "{after} blocks: {reports:?}");

    // Every span exactly once through the query API Grafana uses.
    expect_each_span_once(&t, REQUESTS, "after compaction").await;
    // A search sees each trace once, with all its spans.
    let resp = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/api/search?q=%7B%20resource.service.name%20%3D%20%22compact-svc%22%20%7D&limit=100&spss=100",
            t.query_port
        ))
        .send()
        .await
        .expect("search");
    let found: Value = resp.json().await.expect("json");
    let traces = found["traces"].as_array().expect("traces");
    assert_eq!(traces.len(), TRACES, "{found}");
    for tr in traces {
        assert_eq!(tr["spanSets"][0]["matched"], REQUESTS, "{tr}");
    }

    // Retention from the environment: a tenant retention of one minute drops everything
    // (the spans are ten minutes old), at once for readers.
    let mut short = envs.clone();
    short.push(("TEMPEST_TENANT_RETENTION", "single-tenant=1m".to_owned()));
    let out = ok(
        tempest(&["compact", "--storage", storage, "--json"], &short)
            .output()
            .expect("compact"),
        "tempest compact with retention",
    );
    let report: Value = serde_json::from_str(out.trim()).expect("report");
    assert_eq!(report["marked_retention"].as_u64(), Some(after as u64));
    assert_eq!(block_count(storage, &envs), 0);
    assert_eq!(span_ids(&t, 0).await.0, 404);
}

/// Real kills: `tempest compact` processes killed at random moments, each followed by a check
/// that the query API returns every span exactly once; then an undisturbed run finishes.
#[tokio::test]
async fn killed_compact_processes_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("traces").to_string_lossy().into_owned();
    let t = Tempest::start(
        dir.path(),
        &["--traces-storage", &storage],
        &[("TEMPEST_COMPACTION_INTERVAL", "0")],
    )
    .await;
    let requests = 40;
    ingest(&t, requests).await;
    // Small merges so a run makes many writes: 3 blocks per merge.
    let envs = [
        ("TEMPEST_COMPACTION_MAX_INPUT_BLOCKS", "3".to_owned()),
        ("TEMPEST_LOG", "warn".to_owned()),
    ];
    // A debug-build run over these blocks takes about 80 ms: the kills land all through it.
    for (i, delay_ms) in [3u64, 10, 20, 30, 45, 60, 75].into_iter().enumerate() {
        let mut child = tempest(
            &["compact", "--storage", &storage, "--time-budget", "1s"],
            &envs,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("compact");
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        let _ = child.kill();
        let _ = child.wait();
        expect_each_span_once(&t, requests, &format!("after kill {i} at {delay_ms} ms")).await;
        // Past the killed run's lease (its budget twice over).
        tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    }
    for _ in 0..4 {
        ok(
            tempest(&["compact", "--storage", &storage], &envs)
                .output()
                .expect("compact"),
            "undisturbed compact",
        );
    }
    expect_each_span_once(&t, requests, "finally").await;
    // Merged down, though up to one block per level can remain in the active day (as Tempo).
    let left = block_count(&storage, &[]);
    assert!(left <= requests / 3, "{left} blocks left");
}

#[tokio::test]
async fn local_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("traces").to_string_lossy().into_owned();
    scenario(&storage, vec![]).await;
}

#[tokio::test]
async fn s3_via_moto() {
    let (_moto, storage) = moto_s3().await;
    scenario(&storage, vec![]).await;
}

#[tokio::test]
async fn azure_blob_via_azurite() {
    let (_azurite, _data, storage, envs) = azurite_blob().await;
    scenario(&storage, envs).await;
}

#[test]
fn bad_arguments_are_refused_clearly() {
    for (args, needle) in [
        (vec!["compact", "--time-budget", "soon"], "--time-budget"),
        (vec!["compact", "--tenant", "../etc"], "tenant"),
        (
            vec!["compact", "--storage", "ftp://nowhere/x"],
            "unsupported scheme",
        ),
    ] {
        let out = tempest(&args, &[]).output().expect("run");
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
