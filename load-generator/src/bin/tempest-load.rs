//! `tempest-load`: sends seeded synthetic traces to a trace receiver over OTLP/HTTP, OTLP/gRPC
//! Zipkin or Jaeger Thrift, at a fixed open-loop rate or as fast as possible, and prints a summary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;
use tempest_load_generator::rate::Latencies;
use tempest_load_generator::synth::{Generator, Shape};
use tokio::sync::{Mutex, Semaphore};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Protocol {
    /// OTLP/HTTP protobuf (`POST /v1/traces`).
    OtlpHttp,
    /// OTLP/gRPC (`TraceService/Export`).
    OtlpGrpc,
    /// Zipkin v2 JSON (`POST /api/v2/spans`).
    Zipkin,
    /// Jaeger Thrift over HTTP (`POST /api/traces`), one Batch per service.
    Jaeger,
}

#[derive(Parser)]
#[command(
    name = "tempest-load",
    about = "Synthetic trace load for Tempest (or any Tempo-compatible receiver)"
)]
struct Cli {
    /// Wire protocol.
    #[arg(long, value_enum, default_value = "otlp-http")]
    protocol: Protocol,
    /// Receiver endpoint; defaults to the protocol's local port and path.
    #[arg(long)]
    endpoint: Option<String>,
    /// Tenant sent as X-Scope-OrgID.
    #[arg(long)]
    tenant: Option<String>,
    /// Traces to send in all.
    #[arg(long, default_value_t = 10_000)]
    traces: u64,
    /// Traces per request.
    #[arg(long, default_value_t = 10)]
    batch: u64,
    /// Requests per second, open loop; 0 sends as fast as `concurrency` allows.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[command(flatten)]
    shape: Shape,
}

#[derive(Default)]
struct Totals {
    spans_sent: u64,
    spans_accepted: u64,
    spans_rejected: u64,
    failed_requests: u64,
    latencies: Latencies,
    first_error: Option<String>,
}

enum Client {
    Http(reqwest::Client, String),
    Grpc(
        opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient<
            tonic::transport::Channel,
        >,
    ),
}

/// Sends one request; returns the spans the receiver rejected, or an error.
async fn send(
    client: &Client,
    protocol: Protocol,
    tenant: Option<&str>,
    spans: &[tempest_traces::Span],
) -> Result<u64, String> {
    match (client, protocol) {
        (Client::Grpc(c), _) => {
            let mut req = tonic::Request::new(tempest_traces::otlp::encode_request(spans));
            if let Some(t) = tenant {
                req.metadata_mut().insert(
                    "x-scope-orgid",
                    t.parse().map_err(|_| "invalid tenant".to_owned())?,
                );
            }
            let resp = c.clone().export(req).await.map_err(|s| s.to_string())?;
            Ok(resp
                .into_inner()
                .partial_success
                .map_or(0, |p| p.rejected_spans.max(0) as u64))
        }
        (Client::Http(h, url), Protocol::Jaeger) => {
            for batch in tempest_traces::jaeger::encode_thrift(spans) {
                post(h, url, "application/x-thrift", batch, tenant).await?;
            }
            Ok(0)
        }
        (Client::Http(h, url), Protocol::Zipkin) => {
            post(
                h,
                url,
                "application/json",
                tempest_traces::zipkin::encode_json(spans),
                tenant,
            )
            .await?;
            Ok(0)
        }
        (Client::Http(h, url), _) => {
            let body = tempest_traces::otlp::encode_request(spans).encode_to_vec();
            let bytes = post(h, url, "application/x-protobuf", body, tenant).await?;
            let decoded = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(&bytes[..]).map_err(|e| e.to_string())?;
            Ok(decoded
                .partial_success
                .map_or(0, |p| p.rejected_spans.max(0) as u64))
        }
    }
}

/// POSTs one payload with the tenant header; returns the body of a 2xx answer.
async fn post(
    h: &reqwest::Client,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    tenant: Option<&str>,
) -> Result<bytes::Bytes, String> {
    let mut req = h.post(url).header("content-type", content_type).body(body);
    if let Some(t) = tenant {
        req = req.header("x-scope-orgid", t);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status} {}", String::from_utf8_lossy(&bytes)));
    }
    Ok(bytes)
}
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let endpoint = cli.endpoint.clone().unwrap_or_else(|| match cli.protocol {
        Protocol::OtlpHttp => "http://127.0.0.1:4318/v1/traces".into(),
        Protocol::OtlpGrpc => "http://127.0.0.1:4317".into(),
        Protocol::Zipkin => "http://127.0.0.1:9411/api/v2/spans".into(),
        Protocol::Jaeger => "http://127.0.0.1:14268/api/traces".into(),
    });
    let client = Arc::new(match cli.protocol {
        Protocol::OtlpGrpc => Client::Grpc(
            opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(endpoint.clone())
                .await
                .with_context(|| format!("cannot connect to {endpoint}"))?,
        ),
        _ => Client::Http(reqwest::Client::builder().pool_max_idle_per_host(cli.concurrency).build()?, endpoint.clone()),
    });
    let start_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut generator = Generator::new(cli.shape.clone(), start_ns);
    let requests = cli.traces.div_ceil(cli.batch.max(1));
    let pb = ProgressBar::new(cli.traces);
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} traces {per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let totals = Arc::new(Mutex::new(Totals::default()));
    let permits = Arc::new(Semaphore::new(cli.concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut left = cli.traces;
    for i in 0..requests {
        let n = left.min(cli.batch.max(1));
        left -= n;
        let spans: Vec<_> = (0..n).flat_map(|_| generator.trace()).collect();
        if cli.rate > 0.0 {
            tokio::time::sleep_until(
                (started + Duration::from_secs_f64(i as f64 / cli.rate)).into(),
            )
            .await;
        }
        let permit = permits.clone().acquire_owned().await?;
        let (client, totals, pb, tenant, protocol) = (
            client.clone(),
            totals.clone(),
            pb.clone(),
            cli.tenant.clone(),
            cli.protocol,
        );
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let result = send(&client, protocol, tenant.as_deref(), &spans).await;
            let micros = t0.elapsed().as_micros() as u64;
            drop(permit);
            let mut tot = totals.lock().await;
            tot.spans_sent += spans.len() as u64;
            match result {
                Ok(rejected) => {
                    tot.latencies.record(micros);
                    tot.spans_rejected += rejected;
                    tot.spans_accepted += spans.len() as u64 - rejected.min(spans.len() as u64);
                }
                Err(e) => {
                    tot.failed_requests += 1;
                    tot.latencies.errors += 1;
                    tot.first_error.get_or_insert(e);
                }
            }
            pb.inc(n);
        }));
    }
    for t in tasks {
        t.await?;
    }
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let tot = totals.lock().await;
    println!("protocol       {:?} -> {endpoint}", cli.protocol);
    println!("requests       {requests} ({} failed)", tot.failed_requests);
    println!("spans sent     {}", tot.spans_sent);
    println!("spans accepted {}", tot.spans_accepted);
    println!("spans rejected {}", tot.spans_rejected);
    println!(
        "throughput     {:.0} spans/s over {secs:.2} s",
        tot.spans_sent as f64 / secs
    );
    println!(
        "latency        p50 {:.2} ms, p99 {:.2} ms",
        tot.latencies.ms(0.5),
        tot.latencies.ms(0.99)
    );
    if let Some(e) = &tot.first_error {
        println!("first error    {e}");
    }
    anyhow::ensure!(
        tot.failed_requests == 0,
        "{} requests failed",
        tot.failed_requests
    );
    Ok(())
}
