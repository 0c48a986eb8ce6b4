//! Spin: Tempest's component under `wasmtime serve`, which, as Spin does, instantiates the
//! component afresh for every request, so every request pays an instance start and the
//! function's set-up (configuration, store, router). Measured per HTTP function: the time from
//! `wasmtime serve` starting to listening (compiling the component) and the latency of
//! sequential requests, against the smallest `spin-sdk` component on the same engine in the
//! same run (the reference).

use std::path::{Path, PathBuf};
use std::time::Instant;

use hdrhistogram::Histogram;
use prost::Message;

use tempest_tests::wasmtime::serve;

use crate::cold_start::{hex, otlp, trace_id};

/// One measured request shape.
struct Case {
    label: &'static str,
    function: Option<&'static str>,
    method: reqwest::Method,
    path: String,
    body: Option<Vec<u8>>,
}

/// Runs `requests` sequential requests of each case and prints the tables.
pub async fn run(component: &Path, reference: &Path, requests: usize) -> anyhow::Result<()> {
    for (path, how) in [
        (component, "scripts/package-spin"),
        (
            reference,
            "cargo build --release -p tempest-spin --example hello --target wasm32-wasip2",
        ),
    ] {
        anyhow::ensure!(path.exists(), "{} not found: {how}", path.display());
    }
    let data = tempfile::tempdir()?;
    let http = reqwest::Client::new();
    // Eight blocks for the query cases, written by the component's own `ingest`.
    {
        let ingest = serve(component, Some("ingest"), Some(data.path()), &[]).await;
        for block in 0..8u8 {
            let resp = http
                .post(format!("{}/v1/traces", ingest.url))
                .header("content-type", "application/x-protobuf")
                .body(otlp(block * 25).encode_to_vec())
                .send()
                .await?;
            anyhow::ensure!(resp.status() == 200, "seeding: {}", resp.text().await?);
        }
    }
    let cases = [
        Case {
            label: "reference: smallest spin-sdk component, GET /hello",
            function: None,
            method: reqwest::Method::GET,
            path: "/hello".into(),
            body: None,
        },
        Case {
            label: "query: GET /ready",
            function: Some("query"),
            method: reqwest::Method::GET,
            path: "/ready".into(),
            body: None,
        },
        Case {
            label: "ingest: OTLP protobuf, 1 trace of 8 spans",
            function: Some("ingest"),
            method: reqwest::Method::POST,
            path: "/v1/traces".into(),
            body: Some(otlp(200).encode_to_vec()),
        },
        Case {
            label: "query: trace by ID (8 blocks)",
            function: Some("query"),
            method: reqwest::Method::GET,
            path: format!("/api/traces/{}", hex(&trace_id(3))),
            body: None,
        },
        Case {
            label: "query: TraceQL search (8 blocks)",
            function: Some("query"),
            method: reqwest::Method::GET,
            path: "/api/search?q=%7B%20name%20%3D%20%22op-7%22%20%7D".into(),
            body: None,
        },
    ];
    let size = |p: &Path| std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1e6);
    println!(
        "## Spin: a fresh component instance per request under `wasmtime serve` ({requests} requests each)\n"
    );
    println!(
        "component: {:.1} MB ({}); reference: {:.2} MB\n",
        size(component),
        component.display(),
        size(reference)
    );
    println!(
        "| case | serve start to listening s | p50 ms | p90 ms | p99 ms | max ms | vs reference (p50) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut reference_p50 = None;
    for case in &cases {
        let wasm: PathBuf = if case.function.is_some() {
            component.to_path_buf()
        } else {
            reference.to_path_buf()
        };
        let served = serve(&wasm, case.function, Some(data.path()), &[]).await;
        let mut latency = Histogram::<u64>::new(3)?;
        for _ in 0..requests {
            let mut req = http.request(case.method.clone(), format!("{}{}", served.url, case.path));
            if let Some(body) = &case.body {
                req = req
                    .header("content-type", "application/x-protobuf")
                    .body(body.clone());
            }
            let t0 = Instant::now();
            let resp = req.send().await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            latency.record(t0.elapsed().as_micros() as u64)?;
            anyhow::ensure!(
                status.is_success(),
                "{}: HTTP {status}: {}",
                case.label,
                String::from_utf8_lossy(&body)
            );
        }
        let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
        let p50 = ms(0.5);
        let reference = *reference_p50.get_or_insert(p50);
        println!(
            "| {} | {:.2} | {p50:.2} | {:.2} | {:.2} | {:.2} | {:.1}× |",
            case.label,
            served.listening_after.as_secs_f64(),
            ms(0.9),
            ms(0.99),
            latency.max() as f64 / 1000.0,
            p50 / reference
        );
    }
    Ok(())
}
