//! Spin: Tempest's component under `wasmtime serve`, which, as Spin does, instantiates the
//! component afresh for every request, so every request pays an instance start and the
//! function's set-up (configuration, store, router). Measured per HTTP function: the time from
//! `wasmtime serve` starting to listening (compiling the component) and the latency of
//! sequential requests, against the smallest `spin-sdk` component on the same engine in the
//! same run (the reference). Service invocation is also measured against calling its app
//! directly, and the Dapr cases need nothing outside this machine: a secret from a mounted
//! file, the metadata API, and an app on loopback.

use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;
use prost::Message;

use tempest_tests::wasmtime::serve;

use crate::cold_start::{otlp, trace_id};

/// What a case's requests go to.
enum Target {
    /// The smallest `spin-sdk` component.
    Reference,
    /// Tempest's component serving this function.
    Function(&'static str),
    /// The app on loopback, called directly (invocation's reference).
    App,
}

/// One measured request shape.
struct Case {
    label: &'static str,
    target: Target,
    method: reqwest::Method,
    path: String,
    body: Option<(&'static str, Vec<u8>)>,
}

/// An app on loopback that echoes what is POSTed to `/echo`; its base URL.
async fn echo_app() -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/echo",
        axum::routing::post(|body: bytes::Bytes| async move { body }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
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
    std::fs::write(data.path().join("secrets.json"), r#"{"mysecret":"s3cr3t"}"#)?;
    let app = echo_app().await?;
    let dapr_env = [
        (
            "TEMPEST_COMPONENTS",
            tempest_tests::component(
                "files",
                "secretstores.local.file",
                &[("secretsFile", "/data/secrets.json")],
            ),
        ),
        ("TEMPEST_APPS", format!("shop={app}")),
    ];
    let order = || Some(("application/json", br#"{"orderId":7}"#.to_vec()));
    let cases = [
        Case {
            label: "reference: smallest spin-sdk component, GET /hello",
            target: Target::Reference,
            method: reqwest::Method::GET,
            path: "/hello".into(),
            body: None,
        },
        Case {
            label: "query: GET /ready",
            target: Target::Function("query"),
            method: reqwest::Method::GET,
            path: "/ready".into(),
            body: None,
        },
        Case {
            label: "ingest: OTLP protobuf, 1 trace of 8 spans",
            target: Target::Function("ingest"),
            method: reqwest::Method::POST,
            path: "/v1/traces".into(),
            body: Some(("application/x-protobuf", otlp(200).encode_to_vec())),
        },
        Case {
            label: "query: trace by ID (8 blocks)",
            target: Target::Function("query"),
            method: reqwest::Method::GET,
            path: format!("/api/traces/{}", tempest_core::hex::encode(&trace_id(3))),
            body: None,
        },
        Case {
            label: "query: TraceQL search (8 blocks)",
            target: Target::Function("query"),
            method: reqwest::Method::GET,
            path: "/api/search?q=%7B%20name%20%3D%20%22op-7%22%20%7D".into(),
            body: None,
        },
        Case {
            label: "secrets: GET a secret (secretstores.local.file, mounted)",
            target: Target::Function("secrets"),
            method: reqwest::Method::GET,
            path: "/v1.0/secrets/files/mysecret".into(),
            body: None,
        },
        Case {
            label: "metadata: GET /v1.0/metadata",
            target: Target::Function("metadata"),
            method: reqwest::Method::GET,
            path: "/v1.0/metadata".into(),
            body: None,
        },
        Case {
            label: "invoke: POST through the component to an app on loopback",
            target: Target::Function("invoke"),
            method: reqwest::Method::POST,
            path: "/v1.0/invoke/shop/method/echo".into(),
            body: order(),
        },
        Case {
            label: "direct: POST to the same app (invoke's reference)",
            target: Target::App,
            method: reqwest::Method::POST,
            path: "/echo".into(),
            body: order(),
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
    let (mut invoke_p50, mut direct_p50) = (None, None);
    for case in &cases {
        let served = match case.target {
            Target::Reference => Some(serve(reference, None, Some(data.path()), &[]).await),
            Target::Function(f) => {
                Some(serve(component, Some(f), Some(data.path()), &dapr_env).await)
            }
            Target::App => None,
        };
        let base = served.as_ref().map_or(app.as_str(), |s| s.url.as_str());
        let mut latency = Histogram::<u64>::new(3)?;
        for _ in 0..requests {
            let mut req = http.request(case.method.clone(), format!("{base}{}", case.path));
            if let Some((content_type, body)) = &case.body {
                req = req.header("content-type", *content_type).body(body.clone());
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
        match case.target {
            Target::Function("invoke") => invoke_p50 = Some(p50),
            Target::App => direct_p50 = Some(p50),
            _ => {}
        }
        println!(
            "| {} | {} | {p50:.2} | {:.2} | {:.2} | {:.2} | {:.1}× |",
            case.label,
            served.as_ref().map_or("–".into(), |s| format!(
                "{:.2}",
                s.listening_after.as_secs_f64()
            )),
            ms(0.9),
            ms(0.99),
            latency.max() as f64 / 1000.0,
            p50 / reference
        );
    }
    if let (Some(invoke), Some(direct)) = (invoke_p50, direct_p50) {
        println!(
            "\ninvoke through the component / direct call, p50: {:.1}× ({invoke:.2} ms / {direct:.2} ms)",
            invoke / direct
        );
    }
    Ok(())
}
