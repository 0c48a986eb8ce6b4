//! Cold start of the Lambda bootstrap: from process start to the first answered invocation,
//! through a Lambda Runtime API server (the test suite's), with local storage configured.
//! The reference, measured in the same run, is the smallest Rust Lambda (an axum route behind
//! `lambda_http`), the shape of the published Rust cold-start figures.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value;
use tempest_tests::lambda::{LambdaInstance, Outcome, http_event, http_response, scheduled_event};

/// One function's first invocation.
struct Case {
    label: &'static str,
    function: Option<&'static str>,
    event: Value,
}

/// Runs `trials` cold starts of each case and prints a table.
pub async fn run(bootstrap: &Path, reference: &Path, trials: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        bootstrap.exists(),
        "{} not found: run scripts/package-lambda (or pass --bootstrap)",
        bootstrap.display()
    );
    anyhow::ensure!(
        reference.exists(),
        "{} not found: cargo build --release -p tempest-aws --example hello",
        reference.display()
    );
    let seeded = tempfile::tempdir()?;
    seed_blocks(bootstrap, seeded.path()).await?;
    let cases = [
        Case {
            label: "reference: axum + lambda_http, GET /hello",
            function: None,
            event: http_event("GET", "/hello", &[], None),
        },
        Case {
            label: "ingest: OTLP protobuf, 1 trace of 8 spans",
            function: Some("ingest"),
            event: http_event(
                "POST",
                "/v1/traces",
                &[("content-type", "application/x-protobuf")],
                Some(&otlp(200).encode_to_vec()),
            ),
        },
        Case {
            label: "query: trace by ID (8 blocks)",
            function: Some("query"),
            event: http_event(
                "GET",
                &format!("/api/traces/{}", tempest_core::hex::encode(&trace_id(3))),
                &[],
                None,
            ),
        },
        Case {
            label: "query: TraceQL search (8 blocks)",
            function: Some("query"),
            event: http_event(
                "GET",
                "/api/search?q=%7B%20name%20%3D%20%22op-7%22%20%7D",
                &[],
                None,
            ),
        },
        Case {
            label: "state: save one key (embedded SQLite)",
            function: Some("state"),
            event: http_event(
                "POST",
                "/v1.0/state/statestore",
                &[("content-type", "application/json")],
                Some(br#"[{"key":"k","value":{"n":1}}]"#),
            ),
        },
        Case {
            label: "metadata: GET /v1.0/healthz",
            function: Some("metadata"),
            event: http_event("GET", "/v1.0/healthz", &[], None),
        },
        Case {
            label: "compact: EventBridge schedule (8 blocks)",
            function: Some("compact"),
            event: scheduled_event(),
        },
    ];
    println!(
        "## Cold start: process start to the first answered invocation ({trials} runs each)\n"
    );
    println!(
        "| function | init p50 ms | first answer p50 ms | p90 ms | max ms | peak RSS MB | vs reference (p50) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut reference_p50 = None;
    for case in &cases {
        let mut init = Histogram::<u64>::new(3)?;
        let mut first = Histogram::<u64>::new(3)?;
        let mut peak = 0u64;
        for _ in 0..trials {
            // Each run gets data of its own (compaction changes the blocks it merges).
            let dir = tempfile::tempdir()?;
            copy_dir(&seeded.path().join("traces"), &dir.path().join("traces"))?;
            let data = dir.path().to_string_lossy().into_owned();
            let binary = if case.function.is_some() {
                bootstrap
            } else {
                reference
            };
            let mut f = LambdaInstance::start_binary(
                binary.to_path_buf(),
                case.function,
                &[("TEMPEST_DATA_DIR", data.as_str())],
            )
            .await;
            let outcome = f.invoke(&case.event, Duration::from_secs(60)).await;
            let took = f.started.elapsed();
            check(case, &outcome)?;
            first.record(took.as_micros() as u64)?;
            init.record(f.ready_after().unwrap_or(took).as_micros() as u64)?;
            peak = peak.max(f.peak_rss());
        }
        let p50 = first.value_at_quantile(0.5) as f64 / 1000.0;
        let reference = *reference_p50.get_or_insert(p50);
        println!(
            "| {} | {:.2} | {p50:.2} | {:.2} | {:.2} | {:.1} | {:.2}× |",
            case.label,
            init.value_at_quantile(0.5) as f64 / 1000.0,
            first.value_at_quantile(0.9) as f64 / 1000.0,
            first.max() as f64 / 1000.0,
            peak as f64 / 1e6,
            p50 / reference
        );
    }
    Ok(())
}

/// Fails the benchmark when a first invocation did not succeed.
fn check(case: &Case, outcome: &Outcome) -> anyhow::Result<()> {
    match outcome {
        Outcome::Error { body, .. } => anyhow::bail!("{}: {body}", case.label),
        Outcome::Response(_) if case.function == Some("compact") => Ok(()),
        Outcome::Response(_) => {
            let (status, _, body) = http_response(outcome);
            anyhow::ensure!(
                status < 300,
                "{}: HTTP {status}: {}",
                case.label,
                String::from_utf8_lossy(&body)
            );
            Ok(())
        }
    }
}

/// Eight blocks of traces under `<data>/traces` for the query and compaction cases, written by
/// `ingest` itself.
async fn seed_blocks(bootstrap: &Path, data: &Path) -> anyhow::Result<()> {
    let data = data.to_string_lossy().into_owned();
    let mut ingest = LambdaInstance::start_binary(
        bootstrap.to_path_buf(),
        Some("ingest"),
        &[("TEMPEST_DATA_DIR", data.as_str())],
    )
    .await;
    for block in 0..8u8 {
        let event = http_event(
            "POST",
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            Some(&otlp(block * 25).encode_to_vec()),
        );
        let (status, _, body) =
            http_response(&ingest.invoke(&event, Duration::from_secs(60)).await);
        anyhow::ensure!(
            status == 200,
            "seeding blocks: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// 25 traces of 8 spans, the first with id `first`, ending now (one trace when `first` is 200).
pub(crate) fn otlp(first: u8) -> ExportTraceServiceRequest {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let count = if first >= 200 { 1 } else { 25 };
    let spans = (0..count)
        .flat_map(|t| {
            (0..8u8).map(move |s| Span {
                trace_id: trace_id(first.wrapping_add(t)).to_vec(),
                span_id: vec![first.wrapping_add(t), s + 1, 0, 0, 0, 0, 0, 1],
                name: format!("op-{s}"),
                kind: 2,
                start_time_unix_nano: now - 50_000_000,
                end_time_unix_nano: now - 1_000_000 * u64::from(s),
                ..Default::default()
            })
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("checkout".into())),
                    }),
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The id of trace `n` of [`otlp`].
pub(crate) fn trace_id(n: u8) -> [u8; 16] {
    let mut id = [0xcd; 16];
    id[15] = n;
    id
}
