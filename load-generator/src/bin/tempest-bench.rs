//! `tempest-bench`: building-block benchmarks, each against its reference in the same run.
//!
//! - `invoke`: latency `invoke` adds over calling the app directly, at a fixed open-loop rate,
//!   with direct and invoked requests interleaved; plus the CPU and memory `tempest` spends.
//! - `state`: get/save ops/s through the Dapr state API on the embedded store and on Redis,
//!   against the raw Redis client doing the same operations.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tempest_load_generator::process::{Served, default_tempest_bin, free_port, usage_of};
use tempest_load_generator::rate::Latencies;
use tokio::sync::Mutex;

#[derive(Parser)]
#[command(name = "tempest-bench", about = "Tempest building-block benchmarks")]
struct Cli {
    /// The `tempest` binary to measure (a release build).
    #[arg(long, global = true)]
    tempest_bin: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Added latency and cost of service invocation at a fixed rate.
    Invoke {
        /// Requests per second through `invoke` (the direct calls run at the same rate).
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        /// Measured seconds.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Request body size in bytes (Dapr's published figures use 1 KB).
        #[arg(long, default_value_t = 1024)]
        payload: usize,
    },
    /// Ingest throughput (OTLP protobuf to committed local blocks) against decoding alone,
    /// stored bytes per span, and peak memory of one 10 MB ingest call.
    Ingest {
        /// Requests in the corpus.
        #[arg(long, default_value_t = 100)]
        requests: usize,
        /// Traces per request.
        #[arg(long, default_value_t = 100)]
        traces: usize,
        /// Minimum seconds per measured phase.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Latency of one `ingest` call (decode, encode, commit) into moto's S3, as a function
    /// host commits per call, against one PUT of a block's bytes to the same store.
    IngestS3 {
        /// Requests (one block each).
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Traces per request.
        #[arg(long, default_value_t = 100)]
        traces: usize,
        /// `moto_server` (tests/clients/python/requirements.txt), started on a free port.
        #[arg(long, default_value = "tests/clients/python/.venv/bin/moto_server")]
        moto: PathBuf,
    },
    /// Cold start of the Lambda bootstrap per function, against the smallest Rust Lambda.
    ColdStart {
        /// The packaged bootstrap (`scripts/package-lambda`).
        #[arg(
            long,
            default_value = "target/serverless/x86_64-unknown-linux-gnu/release/bootstrap"
        )]
        bootstrap: PathBuf,
        /// The reference (`cargo build --release -p tempest-aws --example hello`).
        #[arg(long, default_value = "target/release/examples/hello")]
        reference: PathBuf,
        /// Cold starts per function.
        #[arg(long, default_value_t = 20)]
        trials: usize,
    },
    /// Per-request latency of the Spin component under `wasmtime serve` (a fresh instance per
    /// request), against the smallest spin-sdk component.
    Spin {
        /// The component (`scripts/package-spin`).
        #[arg(long, default_value = "dist/spin/tempest.wasm")]
        component: PathBuf,
        /// The reference component.
        #[arg(
            long,
            default_value = "target/wasm32-wasip2/release/examples/hello.wasm"
        )]
        reference: PathBuf,
        /// Sequential requests per case.
        #[arg(long, default_value_t = 200)]
        requests: usize,
    },
    /// Stored bytes per span for a real instrumented app: the OpenTelemetry Python SDK with its
    /// WSGI and requests instrumentations, exporting OTLP/HTTP to `tempest serve`.
    RealApp {
        /// Checkout requests the app serves (each makes four or five spans).
        #[arg(long, default_value_t = 3000)]
        checkouts: usize,
        /// The Python with the OpenTelemetry packages of tests/clients/python/requirements.txt.
        #[arg(long, default_value = "tests/clients/python/.venv/bin/python")]
        python: PathBuf,
        /// The app script.
        #[arg(long, default_value = "tests/clients/python/instrumented_app.py")]
        script: PathBuf,
    },
    /// Trace by ID through the Tempo query API of `tempest serve`, over many blocks, against
    /// reading the same trace straight from the one block that holds it.
    TraceById {
        /// Traces stored (two spans each).
        #[arg(long, default_value_t = 1_000_000)]
        traces: u32,
        /// Blocks they are spread over.
        #[arg(long, default_value_t = 100)]
        blocks: u32,
        /// Lookups measured.
        #[arg(long, default_value_t = 1000)]
        lookups: u32,
        /// Keep the blocks in moto's S3 (`moto_server` from this path, started on a free
        /// port) instead of a local folder.
        #[arg(long)]
        moto: Option<PathBuf>,
    },
    /// TraceQL search throughput through `tempest serve` against DuckDB (one thread) running
    /// the equivalent SQL over the same Parquet files.
    Search {
        /// Traces stored (two spans each).
        #[arg(long, default_value_t = 200_000)]
        traces: u32,
        /// Blocks they are spread over.
        #[arg(long, default_value_t = 20)]
        blocks: u32,
        /// The Python with DuckDB (tests/clients/python/requirements.txt).
        #[arg(long, default_value = "tests/clients/python/.venv/bin/python")]
        python: PathBuf,
    },
    /// Internal: one ingest call of the OTLP protobuf request in `payload`, in a fresh
    /// process, so its peak memory can be read.
    #[command(hide = true)]
    IngestOne {
        /// File holding one ExportTraceServiceRequest.
        #[arg(long)]
        payload: PathBuf,
    },
    /// Compaction: `blocks` level-0 blocks merged into one, at two input sizes (×1, ×10),
    /// each merge in a fresh process for its peak memory; the reference is decoding every
    /// input row group (no merge, no write) in the same process.
    Compact {
        /// Input blocks.
        #[arg(long, default_value_t = 100)]
        blocks: u32,
        /// Traces per block at the smaller size (the default mix: ~7 spans per trace).
        #[arg(long, default_value_t = 100)]
        traces_per_block: u32,
        /// Input sizes, as multiples of `traces_per_block`.
        #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
        scales: Vec<u32>,
        /// Keep the input blocks under this folder (`x1/`, `x10/`) for profiling
        /// `compact-one` on them; default: a temporary folder.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Internal: one merge of every block under `storage`, printing CPU and peak memory.
    #[command(hide = true)]
    CompactOne {
        /// The block storage.
        #[arg(long)]
        storage: String,
    },
    /// Internal: the echo app the invoke benchmark calls, run as its own process so its CPU is
    /// neither the load generator's nor tempest's.
    #[command(hide = true)]
    EchoApp {
        /// Port to listen on.
        #[arg(long)]
        port: u16,
    },
    /// State get/save throughput against the raw Redis client.
    State {
        /// Seconds per measured phase.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrent requests in flight.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Redis address.
        #[arg(long, default_value = "127.0.0.1:6379")]
        redis: String,
    },
}

fn bar(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(msg.to_owned());
    pb
}

/// An HTTP echo app: answers every request with 200 and the request body.
async fn echo_app(port: u16) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let app = axum::Router::new().fallback(|body: bytes::Bytes| async move { body });
    axum::serve(listener, app).await?;
    Ok(())
}

/// Starts this binary's `echo-app` as a child process and waits until it answers.
async fn start_echo_app() -> anyhow::Result<(std::process::Child, String)> {
    let port = free_port()?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(["echo-app", "--port", &port.to_string()])
        .spawn()
        .context("cannot start the echo app")?;
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(&url).await.is_ok() {
            return Ok((child, url));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("echo app did not start")
}

async fn invoke(bin: PathBuf, rate: u32, seconds: u64, payload: usize) -> anyhow::Result<()> {
    let (mut echo, app) = start_echo_app().await?;
    let data = tempfile::tempdir()?;
    let served = Served::start(&bin, data.path(), &["--app".into(), format!("echo={app}")]).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let body = bytes::Bytes::from(vec![b'x'; payload]);
    let direct_url = format!("{app}/bench/echo");
    let invoke_url = format!("{}/v1.0/invoke/echo/method/bench/echo", served.url);
    // Warm up connections on both paths.
    for _ in 0..200 {
        http.post(&direct_url)
            .body(body.clone())
            .send()
            .await?
            .bytes()
            .await?;
        http.post(&invoke_url)
            .body(body.clone())
            .send()
            .await?
            .bytes()
            .await?;
    }
    let direct = Arc::new(Mutex::new(Latencies::default()));
    let invoked = Arc::new(Mutex::new(Latencies::default()));
    let ticks = u64::from(rate) * seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let pb = bar(ticks, "request pairs");
    let before = served.usage()?;
    let echo_before = usage_of(echo.id())?;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(ticks as usize * 2);
    for i in 0..ticks {
        // Open loop: pair i is due at start + i * interval whatever happened before. Each tick
        // sends one direct and one invoked request at the same moment (first one, then the
        // other, alternating), so both paths see the same machine and the same timer jitter.
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let order = if i % 2 == 0 {
            [(&direct_url, &direct), (&invoke_url, &invoked)]
        } else {
            [(&invoke_url, &invoked), (&direct_url, &direct)]
        };
        for (url, sink) in order {
            let (http, body, url, sink) = (http.clone(), body.clone(), url.clone(), sink.clone());
            tasks.push(tokio::spawn(async move {
                let sent = Instant::now();
                let ok = match http.post(&url).body(body).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let micros = sent.elapsed().as_micros() as u64;
                let mut s = sink.lock().await;
                if ok { s.record(micros) } else { s.errors += 1 }
            }));
        }
        if i % 500 == 0 {
            pb.set_position(i);
        }
    }
    for t in tasks {
        t.await?;
    }
    pb.finish_and_clear();
    let elapsed = start.elapsed().as_secs_f64();
    let after = served.usage()?;
    let echo_after = usage_of(echo.id())?;
    let (d, v) = (direct.lock().await, invoked.lock().await);
    let cpu = (after.cpu_secs - before.cpu_secs) / elapsed;
    let per_k = cpu / (f64::from(rate) / 1000.0);
    println!(
        "## Service invocation: added latency at {rate} req/s ({seconds} s, {payload} B bodies)\n"
    );
    println!("| path | requests | errors | p50 ms | p90 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| direct to app | {} | {} | {:.3} | {:.3} | {:.3} |",
        d.count(),
        d.errors,
        d.ms(0.5),
        d.ms(0.9),
        d.ms(0.99)
    );
    println!(
        "| via tempest invoke | {} | {} | {:.3} | {:.3} | {:.3} |",
        v.count(),
        v.errors,
        v.ms(0.5),
        v.ms(0.9),
        v.ms(0.99)
    );
    println!(
        "| **added by invoke** | | | {:+.3} | {:+.3} | {:+.3} |",
        v.ms(0.5) - d.ms(0.5),
        v.ms(0.9) - d.ms(0.9),
        v.ms(0.99) - d.ms(0.99)
    );
    println!();
    println!(
        "tempest CPU: {cpu:.3} vCPU at {rate} req/s = **{per_k:.3} vCPU per 1,000 req/s**; RSS {:.1} MB (peak {:.1} MB)",
        after.rss_bytes as f64 / 1e6,
        after.peak_rss_bytes as f64 / 1e6
    );
    // The reference for CPU: the echo app serves 2 requests per tick (direct + forwarded), so
    // its CPU per 1,000 requests is what one plain HTTP hop costs on this machine.
    let echo_per_k =
        (echo_after.cpu_secs - echo_before.cpu_secs) / elapsed / (2.0 * f64::from(rate) / 1000.0);
    println!(
        "reference: the echo app (axum, same machine) spends {echo_per_k:.3} vCPU per 1,000 req/s serving one hop; invoke costs {:.1}x that (it is a server and a client)",
        per_k / echo_per_k.max(1e-9)
    );
    let _ = echo.kill();
    let _ = echo.wait();
    println!(
        "Dapr (published): +1.40 ms p90, +2.10 ms p99, 0.48 vCPU + 23 MB per 1,000 req/s. Goal: p99 added < 0.5 ms, <= 0.05 vCPU per 1,000 req/s."
    );
    Ok(())
}

/// Runs `op(i)` with `concurrency` workers for `seconds`; returns completed ops and errors.
async fn closed_loop<F, Fut>(label: &str, seconds: u64, concurrency: usize, op: F) -> (u64, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let pb = bar(seconds, label);
    let ticker = {
        let pb = pb.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                pb.inc(1);
            }
        })
    };
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (op, counter, errors) = (op.clone(), counter.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut i = w as u64 * 1_000_000;
            while Instant::now() < deadline {
                if op(i).await {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    ticker.abort();
    pb.finish_and_clear();
    (
        counter.load(std::sync::atomic::Ordering::Relaxed),
        errors.load(std::sync::atomic::Ordering::Relaxed),
    )
}

/// One measured phase of the state benchmark.
struct Row {
    op: &'static str,
    path: String,
    ops: u64,
    errors: u64,
    /// CPU seconds tempest used (None for the raw reference).
    tempest_cpu: Option<f64>,
    /// CPU seconds redis-server used (None when the path does not touch Redis).
    redis_cpu: Option<f64>,
}

/// Runs one phase and samples tempest's and redis-server's CPU around it.
async fn phase<F, Fut>(
    label: &str,
    seconds: u64,
    concurrency: usize,
    served: Option<&Served>,
    redis_pid: Option<u32>,
    op: F,
) -> anyhow::Result<(u64, u64, Option<f64>, Option<f64>)>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let t0 = served.map(|s| s.usage()).transpose()?;
    let r0 = redis_pid.map(usage_of).transpose()?;
    let (n, e) = closed_loop(label, seconds, concurrency, op).await;
    let t1 = served.map(|s| s.usage()).transpose()?;
    let r1 = redis_pid.map(usage_of).transpose()?;
    let diff = |a: Option<tempest_load_generator::process::Usage>,
                b: Option<tempest_load_generator::process::Usage>| {
        a.zip(b).map(|(a, b)| b.cpu_secs - a.cpu_secs)
    };
    Ok((n, e, diff(t0, t1), diff(r0, r1)))
}

async fn state(
    bin: PathBuf,
    seconds: u64,
    concurrency: usize,
    redis_addr: String,
) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let res = data.path().join("resources");
    std::fs::create_dir_all(&res)?;
    std::fs::write(
        res.join("c.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: embedded}}\nspec: {{type: state.sqlite, version: v1}}\n---\n\
             apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: redis}}\nspec: {{type: state.redis, version: v1, metadata: [{{name: redisHost, value: \"{redis_addr}\"}}, {{name: keyPrefix, value: bench}}]}}\n"
        ),
    )?;
    let served = Served::start(
        &bin,
        data.path(),
        &[
            "--resources-path".into(),
            res.to_string_lossy().into_owned(),
        ],
    )
    .await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let value = serde_json::json!({"user": "someone", "items": [1, 2, 3], "total": 42.5});
    let raw_value = value.to_string();
    let value = Arc::new(value);
    let client = redis::Client::open(format!("redis://{redis_addr}/"))?;
    // One connection per worker: each operation is a round trip of its own, as each HTTP
    // request through tempest is (a shared multiplexed connection would pipeline them).
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        conns.push(
            client
                .get_multiplexed_async_connection()
                .await
                .context("raw Redis client")?,
        );
    }
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conns[0].clone())
        .await?;
    let redis_pid = info
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse::<u32>().ok());
    let conns = Arc::new(conns);
    let script = Arc::new(redis::Script::new(
        tempest_components::state::redis::WRITE_SCRIPT,
    ));
    let mut rows = Vec::new();

    // The floor: the raw Redis client sending exactly the commands state.redis sends (the
    // write script for a save, HMGET + PTTL for a get), same keys, same value bytes.
    let (c, v, sc) = (conns.clone(), raw_value.clone(), script.clone());
    let (n, e, _, r) = phase(
        "raw redis save",
        seconds,
        concurrency,
        None,
        redis_pid,
        move |i| {
            let (mut conn, v, sc) = (c[(i / 1_000_000) as usize].clone(), v.clone(), sc.clone());
            async move {
                sc.key(format!("bench-raw||k{}", i % 1000))
                    .arg("U")
                    .arg(v)
                    .arg("")
                    .arg("0")
                    .arg("")
                    .invoke_async::<()>(&mut conn)
                    .await
                    .is_ok()
            }
        },
    )
    .await?;
    rows.push(Row {
        op: "save",
        path: "raw Redis client, same commands".into(),
        ops: n,
        errors: e,
        tempest_cpu: None,
        redis_cpu: r,
    });
    let c = conns.clone();
    let (n, e, _, r) = phase(
        "raw redis get",
        seconds,
        concurrency,
        None,
        redis_pid,
        move |i| {
            let mut conn = c[(i / 1_000_000) as usize].clone();
            async move {
                let key = format!("bench-raw||k{}", i % 1000);
                redis::pipe()
                    .atomic()
                    .cmd("HMGET")
                    .arg(&key)
                    .arg("data")
                    .arg("version")
                    .cmd("PTTL")
                    .arg(&key)
                    .query_async::<((Option<Vec<u8>>, Option<String>), i64)>(&mut conn)
                    .await
                    .is_ok()
            }
        },
    )
    .await?;
    rows.push(Row {
        op: "get",
        path: "raw Redis client, same commands".into(),
        ops: n,
        errors: e,
        tempest_cpu: None,
        redis_cpu: r,
    });

    for (store, path) in [
        ("redis", "tempest → state.redis"),
        ("embedded", "tempest → state.sqlite (embedded)"),
    ] {
        let save_url = format!("{}/v1.0/state/{store}", served.url);
        let redis = (store == "redis").then_some(redis_pid).flatten();
        let (h, u, v) = (http.clone(), save_url.clone(), value.clone());
        let (n, e, t, r) = phase(
            &format!("tempest {store} save"),
            seconds,
            concurrency,
            Some(&served),
            redis,
            move |i| {
                let b =
                    serde_json::json!([{"key": format!("k{}", i % 1000), "value": *v}]).to_string();
                let (h, u) = (h.clone(), u.clone());
                async move {
                    h.post(&u)
                        .header("content-type", "application/json")
                        .body(b)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().as_u16() == 204)
                }
            },
        )
        .await?;
        rows.push(Row {
            op: "save",
            path: path.into(),
            ops: n,
            errors: e,
            tempest_cpu: t,
            redis_cpu: r,
        });
        let (h, u) = (http.clone(), save_url.clone());
        let (n, e, t, r) = phase(
            &format!("tempest {store} get"),
            seconds,
            concurrency,
            Some(&served),
            redis,
            move |i| {
                let (h, u) = (h.clone(), format!("{}/k{}", u, i % 1000));
                async move {
                    h.get(&u)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().as_u16() == 200)
                }
            },
        )
        .await?;
        rows.push(Row {
            op: "get",
            path: path.into(),
            ops: n,
            errors: e,
            tempest_cpu: t,
            redis_cpu: r,
        });
    }

    let secs = seconds as f64;
    // Server-side CPU per operation: redis-server for the raw client; tempest plus
    // redis-server through tempest. Its inverse is the per-core throughput.
    let per_core = |r: &Row| {
        r.ops as f64 / (r.tempest_cpu.unwrap_or(0.0) + r.redis_cpu.unwrap_or(0.0)).max(1e-9)
    };
    let reference = |op: &str| rows.iter().find(|r| r.op == op && r.tempest_cpu.is_none());
    println!(
        "## State get/save throughput ({seconds} s per phase, {concurrency} in flight, 1,000 keys, 2 cores shared by load generator, tempest and redis-server)\n"
    );
    println!(
        "| op | path | ops/s | errors | ops/s vs raw | tempest CPU (cores) | server-side ops per core-second | per core vs raw |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let base = reference(r.op);
        let vs = |f: &dyn Fn(&Row) -> f64| base.map_or(0.0, |b| 100.0 * f(r) / f(b).max(1e-9));
        println!(
            "| {} | {} | {:.0} | {} | {:.0}% | {} | {:.0} | {:.0}% |",
            r.op,
            r.path,
            r.ops as f64 / secs,
            r.errors,
            vs(&|x: &Row| x.ops as f64),
            r.tempest_cpu
                .map_or("-".into(), |c| format!("{:.2}", c / secs)),
            per_core(r),
            vs(&per_core),
        );
    }
    println!("\nGoal: >= 70% of raw.");
    Ok(())
}

/// CPU seconds this process has used (user + system).
fn own_cpu() -> f64 {
    usage_of(std::process::id())
        .map(|u| u.cpu_secs)
        .unwrap_or(0.0)
}

/// Protobuf OTLP requests of `traces` synthetic traces each (the load generator's default mix).
fn corpus(requests: usize, traces: usize) -> (Vec<Vec<u8>>, u64) {
    use prost::Message;
    let mut g = tempest_load_generator::synth::Generator::new(
        Default::default(),
        1_700_000_000_000_000_000,
    );
    let mut spans = 0u64;
    let payloads = (0..requests)
        .map(|_| {
            let batch: Vec<_> = (0..traces).flat_map(|_| g.trace()).collect();
            spans += batch.len() as u64;
            tempest_traces::otlp::encode_request(&batch).encode_to_vec()
        })
        .collect();
    (payloads, spans)
}

async fn ingest(requests: usize, traces: usize, seconds: f64) -> anyhow::Result<()> {
    let (payloads, spans_per_round) = corpus(requests, traces);
    let payload_bytes: usize = payloads.iter().map(Vec::len).sum();
    // Three single-thread phases, taken in turns of a quarter second each so that the
    // machine's drift (other tenants, clock changes) touches all three alike: the floor,
    // decoding alone; encoding into an in-memory store, so the file system's share shows;
    // and ingest, one committed block per request in a local folder.
    let mem = tempest_blocks::store::Location::open("memory:///")?;
    let dir = tempfile::tempdir()?;
    let loc = tempest_blocks::store::Location::open(&dir.path().to_string_lossy())?;
    let (mut decode, mut encode, mut ingest) =
        (Phase::default(), Phase::default(), Phase::default());
    // Each phase takes the payloads in turn from where its last slice stopped.
    let (mut next_decode, mut next_encode, mut next_ingest) = (0, 0, 0);
    let pb = bar((seconds.ceil() as u64).max(1), "decode, encode, ingest");
    while ingest.wall < seconds {
        decode_slice(&payloads, SLICE, &mut next_decode, &mut decode)?;
        ingest_slice(&mem, &payloads, SLICE, &mut next_encode, &mut encode).await?;
        ingest_slice(&loc, &payloads, SLICE, &mut next_ingest, &mut ingest).await?;
        pb.set_position(ingest.wall as u64);
    }
    pb.finish_and_clear();
    // Group commit, as `tempest serve` ingests: concurrent requests share blocks.
    let group_dir = tempfile::tempdir()?;
    let group = group_commit_phase(group_dir.path(), &payloads, seconds, IN_FLIGHT).await?;
    println!(
        "## Ingest: OTLP protobuf to committed local blocks ({requests} requests x {traces} traces = {spans_per_round} spans per round, {:.1} MB of OTLP protobuf)\n",
        payload_bytes as f64 / 1e6
    );
    println!("| phase | spans | wall s | CPU s | spans/s per core |");
    println!("|---|---|---|---|---|");
    println!("{}", decode.row("decode only (floor)"));
    println!("{}", encode.row("decode + encode block (in-memory store)"));
    println!("{}", ingest.row("decode + commit block"));
    println!(
        "{}",
        group.row(&format!(
            "decode + group commit ({IN_FLIGHT} requests in flight, as `tempest serve`)"
        ))
    );
    println!(
        "\ningest / decode-only: **{:.0}%** (goal >= 40%); ingest spans/s per core: **{:.0}** (goal >= 300,000)",
        100.0 * ingest.per_core() / decode.per_core(),
        ingest.per_core()
    );
    println!(
        "stored bytes per span (data.parquet + bloom, {} blocks of ~{} spans): **{:.1}** (goal <= 40); OTLP protobuf of the same spans: {:.1} bytes/span",
        ingest.blocks,
        spans_per_round / requests as u64,
        ingest.stored as f64 / ingest.spans.max(1) as f64,
        payload_bytes as f64 / spans_per_round as f64
    );
    println!(
        "group commit: {} blocks of ~{} spans, **{:.1}** stored bytes per span, ingest / decode-only **{:.0}%**",
        group.blocks,
        group.spans / group.blocks.max(1),
        group.stored as f64 / group.spans.max(1) as f64,
        100.0 * group.per_core() / decode.per_core(),
    );
    print_column_sizes(dir.path())?;
    // One 10 MB request, ingested by a fresh process that holds nothing else.
    let big = dir.path().join("batch-10mb.pb");
    std::fs::write(&big, one_request_of(10 << 20))?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .arg("ingest-one")
        .arg("--payload")
        .arg(&big)
        .output()?;
    print!("{}", String::from_utf8_lossy(&child.stdout));
    anyhow::ensure!(
        child.status.success(),
        "ingest-one failed: {}",
        String::from_utf8_lossy(&child.stderr)
    );
    Ok(())
}

/// What one ingest phase of the benchmark did, summed over its slices.
#[derive(Default)]
struct Phase {
    spans: u64,
    stored: u64,
    blocks: u64,
    cpu: f64,
    wall: f64,
}

impl Phase {
    /// Spans per CPU-second.
    fn per_core(&self) -> f64 {
        self.spans as f64 / self.cpu.max(1e-9)
    }

    /// The phase as a row of the benchmark's table.
    fn row(&self, label: &str) -> String {
        format!(
            "| {label} | {} | {:.2} | {:.2} | {:.0} |",
            self.spans,
            self.wall,
            self.cpu,
            self.per_core()
        )
    }

    /// Adds the CPU and wall time since `turn` (from [`turn_start`]).
    fn charge(&mut self, (cpu, wall): (f64, Instant)) {
        self.cpu += own_cpu() - cpu;
        self.wall += wall.elapsed().as_secs_f64();
    }
}

/// The process's CPU time and the wall clock at the start of a turn.
fn turn_start() -> (f64, Instant) {
    (own_cpu(), Instant::now())
}

/// Wall time of one turn of a single-thread phase: long enough that the CPU counter's 10 ms
/// ticks are a few percent of it, short enough that the phases see the same machine.
const SLICE: f64 = 0.25;

/// Decodes payloads, one after another, for at least `seconds`, adding to `phase`.
fn decode_slice(
    payloads: &[Vec<u8>],
    seconds: f64,
    next: &mut usize,
    phase: &mut Phase,
) -> anyhow::Result<()> {
    let turn = turn_start();
    while turn.1.elapsed().as_secs_f64() < seconds {
        let p = &payloads[*next % payloads.len()];
        *next += 1;
        phase.spans += tempest_traces::otlp::decode_protobuf(p)?.spans.len() as u64;
    }
    phase.charge(turn);
    Ok(())
}

/// Decodes payloads, one after another, and commits each as one block to `loc`, for at least
/// `seconds`, adding to `phase`. Each pass over the payloads writes under its own tenant: block
/// ids derive from tenant and content, so a repeated pass would otherwise overwrite its earlier
/// blocks, which ingest never does.
async fn ingest_slice(
    loc: &tempest_blocks::store::Location,
    payloads: &[Vec<u8>],
    seconds: f64,
    next: &mut usize,
    phase: &mut Phase,
) -> anyhow::Result<()> {
    let turn = turn_start();
    while turn.1.elapsed().as_secs_f64() < seconds {
        let (pass, i) = (*next / payloads.len(), *next % payloads.len());
        *next += 1;
        let tenant = tempest_core::TenantId::parse(Some(&format!("round-{pass}")))?;
        let batch = tempest_traces::otlp::decode_protobuf(&payloads[i])?.spans;
        phase.spans += batch.len() as u64;
        if let Some(meta) = tempest_blocks::writer::write_block(loc, &tenant, batch).await? {
            phase.stored += meta.data_size + meta.bloom_size;
            phase.blocks += 1;
        }
    }
    phase.charge(turn);
    Ok(())
}

/// Requests in flight in the group-commit phase.
const IN_FLIGHT: usize = 8;

/// Decodes and commits payloads from `in_flight` concurrent tasks through `tempest serve`'s
/// group-commit sink into a local folder, for at least `seconds`.
async fn group_commit_phase(
    dir: &std::path::Path,
    payloads: &[Vec<u8>],
    seconds: f64,
    in_flight: usize,
) -> anyhow::Result<Phase> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tempest_traces::receivers::SpanSink;
    let loc = tempest_blocks::store::Location::open(&dir.to_string_lossy())?;
    let sink = Arc::new(tempest_blocks::ingest::GroupCommitSink::start(
        loc,
        tempest_blocks::ingest::GROUP_COMMIT_MAX_SPANS,
    ));
    let payloads = Arc::new(payloads.to_vec());
    let (next, spans) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (c0, t0) = (own_cpu(), Instant::now());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (sink, payloads, next, spans) =
            (sink.clone(), payloads.clone(), next.clone(), spans.clone());
        tasks.spawn(async move {
            while t0.elapsed().as_secs_f64() < seconds {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                // A tenant per round over the corpus, so a repeated group of requests makes
                // a new block instead of overwriting its twin.
                let tenant =
                    tempest_core::TenantId::parse(Some(&format!("round-{}", i / payloads.len())))?;
                let batch =
                    tempest_traces::otlp::decode_protobuf(&payloads[i % payloads.len()])?.spans;
                let n = batch.len() as u64;
                sink.commit(tenant, batch)
                    .await
                    .map_err(|e| anyhow::anyhow!(e))?;
                spans.fetch_add(n, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let (cpu, wall) = (own_cpu() - c0, t0.elapsed().as_secs_f64());
    let (stored, blocks, block_spans) = stored_blocks(dir)?;
    anyhow::ensure!(
        block_spans == spans.load(Ordering::Relaxed),
        "blocks hold {block_spans} spans, {} were acknowledged",
        spans.load(Ordering::Relaxed)
    );
    Ok(Phase {
        spans: block_spans,
        stored,
        blocks,
        cpu,
        wall,
    })
}

/// Stored bytes (data and bloom), blocks and spans of the committed blocks under `dir`.
fn stored_blocks(dir: &std::path::Path) -> anyhow::Result<(u64, u64, u64)> {
    let (mut stored, mut blocks, mut spans) = (0u64, 0u64, 0u64);
    for tenant in std::fs::read_dir(dir)? {
        for block in std::fs::read_dir(tenant?.path())? {
            let meta = block?.path().join("meta.json");
            if let Ok(text) = std::fs::read(&meta) {
                let meta: tempest_blocks::BlockMeta = serde_json::from_slice(&text)?;
                blocks += 1;
                spans += meta.span_count;
                stored += meta.data_size + meta.bloom_size;
            }
        }
    }
    Ok((stored, blocks, spans))
}

/// Prints the compressed bytes per span of each column, summed over every block under `dir`,
/// largest first: where the stored bytes go.
fn print_column_sizes(dir: &std::path::Path) -> anyhow::Result<()> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut sizes: std::collections::BTreeMap<String, i64> = Default::default();
    let (mut spans, mut files, mut file_bytes) = (0i64, 0u64, 0u64);
    // Bytes outside the column chunks: the footer (file metadata) and the page indexes.
    let (mut footer, mut offset_index, mut column_index) = (0u64, 0i64, 0i64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "data.parquet") {
                // Blocks are small: one read serves the footer length and the metadata.
                let bytes = bytes::Bytes::from(std::fs::read(&path)?);
                files += 1;
                file_bytes += bytes.len() as u64;
                let tail = bytes.len().saturating_sub(parquet::file::FOOTER_SIZE);
                footer += (parquet::file::metadata::FooterTail::try_from(&bytes[tail..])?
                    .metadata_length()
                    + parquet::file::FOOTER_SIZE) as u64;
                let reader = SerializedFileReader::new(bytes)?;
                for rg in reader.metadata().row_groups() {
                    spans += rg.num_rows();
                    for col in rg.columns() {
                        offset_index += col.offset_index_length().unwrap_or(0) as i64;
                        column_index += col.column_index_length().unwrap_or(0) as i64;
                        *sizes.entry(col.column_path().string()).or_default() +=
                            col.compressed_size();
                    }
                }
            }
        }
    }
    let mut sizes: Vec<_> = sizes.into_iter().collect();
    sizes.sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
    let cells: Vec<String> = sizes
        .iter()
        .map(|(col, bytes)| format!("{col} {:.2}", *bytes as f64 / spans.max(1) as f64))
        .collect();
    let columns: i64 = sizes.iter().map(|(_, b)| b).sum();
    let per_span = |bytes: f64| bytes / spans.max(1) as f64;
    println!(
        "data.parquet bytes per span over {files} distinct blocks: {:.1}: column chunks with their page headers {:.1} ({}), footer {:.2}, offset index {:.2}, column index {:.2}",
        per_span(file_bytes as f64),
        per_span(columns as f64),
        cells.join(", "),
        per_span(footer as f64),
        per_span(offset_index as f64),
        per_span(column_index as f64),
    );
    Ok(())
}

/// One ingest call into moto's S3 per request, interleaved with the same call into
/// `memory://` and one PUT of the block's bytes to the same moto: how long a function host's
/// commit waits on the store, in PUTs.
async fn ingest_s3(requests: usize, traces: usize, moto: PathBuf) -> anyhow::Result<()> {
    use object_store::ObjectStoreExt;
    let (payloads, spans) = corpus(requests, traces);
    let (_moto, url) = start_moto(&moto).await?;
    let s3 = tempest_blocks::store::Location::open(&url)?;
    let mem = tempest_blocks::store::Location::open("memory:///")?;
    let tenant = tempest_core::TenantId::parse(None)?;
    let (mut on_s3, mut in_memory, mut put) = (
        Latencies::default(),
        Latencies::default(),
        Latencies::default(),
    );
    let call = async |loc: &tempest_blocks::store::Location, p: &[u8], into: &mut Latencies| {
        let started = Instant::now();
        let batch = tempest_traces::otlp::decode_protobuf(p)?;
        let meta = tempest_blocks::writer::write_block(loc, &tenant, batch.spans)
            .await?
            .context("empty request")?;
        into.record(started.elapsed().as_micros() as u64);
        anyhow::Ok(meta.data_size as usize)
    };
    // Interleaved per request, so the machine's drift touches the three paths alike.
    let pb = bar(payloads.len() as u64, "ingest calls");
    for (i, p) in payloads.iter().enumerate() {
        let size = call(&s3, p, &mut on_s3).await?;
        call(&mem, p, &mut in_memory).await?;
        // Reference: one PUT of as many bytes as the block's data file, to the same store.
        let path = object_store::path::Path::from(format!("reference/{i}"));
        let started = Instant::now();
        s3.store
            .put(&path, object_store::PutPayload::from(vec![7u8; size]))
            .await?;
        put.record(started.elapsed().as_micros() as u64);
        pb.inc(1);
    }
    pb.finish_and_clear();
    println!(
        "## One ingest call into moto's S3: {requests} requests of {traces} traces ({spans} spans)\n"
    );
    println!("| path | p50 ms | p99 ms |");
    println!("|---|---|---|");
    for (label, l) in [
        (
            "ingest call into moto's S3 (decode, encode, commit)",
            &on_s3,
        ),
        ("the same call into `memory://`", &in_memory),
        ("reference: one PUT of the block's bytes to moto", &put),
    ] {
        println!("| {label} | {:.2} | {:.2} |", l.ms(0.5), l.ms(0.99));
    }
    let waited = on_s3.ms(0.5) - in_memory.ms(0.5);
    println!(
        "\nwaiting on the store at p50: {waited:.2} ms = {:.2} PUTs; ingest call / one PUT: {:.2}x",
        waited / put.ms(0.5).max(1e-6),
        on_s3.ms(0.5) / put.ms(0.5).max(1e-6)
    );
    Ok(())
}

/// Runs the instrumented Python app against `tempest serve`, then reports the stored bytes per
/// span of what it sent: as ingested, and rewritten as one block the way compaction will.
async fn real_app(
    bin: PathBuf,
    checkouts: usize,
    python: PathBuf,
    script: PathBuf,
) -> anyhow::Result<()> {
    use prost::Message;
    let data = tempfile::tempdir()?;
    let served = Served::start(&bin, data.path(), &[]).await?;
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&served.otlp_http_traces)
        .arg(checkouts.to_string())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "the instrumented app failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: u64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    let loc = tempest_blocks::store::Location::open(&data.path().join("traces").to_string_lossy())?;
    let tenant = tempest_core::TenantId::parse(None)?;
    let metas = tempest_blocks::reader::list_blocks(&loc, &tenant).await?;
    let (mut spans, mut stored) = (Vec::new(), 0u64);
    for m in &metas {
        stored += m.data_size + m.bloom_size;
        spans.extend(tempest_blocks::reader::read_spans(&loc, m).await?);
    }
    drop(served);
    anyhow::ensure!(
        spans.len() as u64 == sent,
        "the app sent {sent} spans, the blocks hold {}",
        spans.len()
    );
    let n = spans.len().max(1) as f64;
    let otlp = tempest_traces::otlp::encode_request(&spans).encoded_len();
    let mem = tempest_blocks::store::Location::open("memory:///")?;
    let one = tempest_blocks::writer::write_block(&mem, &tenant, spans)
        .await?
        .context("no spans")?;
    println!(
        "real app (OpenTelemetry Python SDK 1.45, WSGI + requests instrumentation, {checkouts} checkouts): {sent} spans in {} blocks of ~{} spans as ingested: **{:.1}** stored bytes per span; rewritten as one block: **{:.1}**; OTLP protobuf of the same spans: {:.1} bytes/span",
        metas.len(),
        sent / metas.len().max(1) as u64,
        stored as f64 / n,
        (one.data_size + one.bloom_size) as f64 / n,
        otlp as f64 / n,
    );
    Ok(())
}

/// A trace id of the trace-by-ID corpus: random-looking, distinct per (block, trace).
fn corpus_trace_id(block: u32, trace: u32) -> [u8; 16] {
    let mut x = (u128::from(block) << 32 | u128::from(trace))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    x ^= x >> 61;
    let mut id = x
        .wrapping_mul(0xd6e8_feb8_6659_fd93_a5b3_5c2c_2d8e_7a49)
        .to_be_bytes();
    id[0] |= 1;
    id
}

/// Writes `traces` two-span traces into `blocks` blocks at `loc`.
async fn write_trace_corpus(
    loc: &tempest_blocks::store::Location,
    traces: u32,
    blocks: u32,
) -> anyhow::Result<()> {
    use tempest_traces::{KeyValue, Resource, Scope, Span, SpanKind};
    let tenant = tempest_core::TenantId::parse(None)?;
    let resource = Arc::new(Resource {
        attributes: vec![KeyValue::str("service.name", "bench")],
        dropped_attributes_count: 0,
    });
    let scope = Arc::new(Scope::default());
    let per_block = traces.div_ceil(blocks);
    let pb = bar(u64::from(blocks), "writing blocks");
    for b in 0..blocks {
        let base = 1_700_000_000_000_000_000 + u64::from(b) * 60_000_000_000;
        let spans: Vec<Span> = (0..per_block)
            .flat_map(|t| {
                let id = corpus_trace_id(b, t);
                let start = base + u64::from(t) * 1000;
                let (resource, scope) = (resource.clone(), scope.clone());
                (0..2u8).map(move |i| Span {
                    trace_id: id,
                    span_id: [id[15], id[14], id[13], id[12], id[11], id[10], id[9], i + 1],
                    parent_span_id: (i == 1)
                        .then_some([id[15], id[14], id[13], id[12], id[11], id[10], id[9], 1]),
                    flags: 1,
                    name: if i == 0 {
                        "GET /api/orders".into()
                    } else {
                        "SELECT orders".into()
                    },
                    kind: if i == 0 {
                        SpanKind::Server
                    } else {
                        SpanKind::Client
                    },
                    start_unix_nano: start + u64::from(i) * 100,
                    end_unix_nano: start + 5_000_000,
                    attributes: vec![KeyValue::str("http.route", "/api/orders")],
                    resource: resource.clone(),
                    scope: scope.clone(),
                    ..Span::default()
                })
            })
            .collect();
        tempest_blocks::writer::write_block(loc, &tenant, spans).await?;
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(())
}

/// A `moto_server` child process, killed on drop.
struct Moto(std::process::Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts moto's S3 with a bucket; returns the process and the traces storage URL.
async fn start_moto(moto: &std::path::Path) -> anyhow::Result<(Moto, String)> {
    let port = free_port()?;
    let child = Moto(
        std::process::Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", moto.display()))?,
    );
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = http
            .put(format!("http://127.0.0.1:{port}/tempest-blocks"))
            .send()
            .await
        {
            anyhow::ensure!(r.status().is_success(), "create bucket: {}", r.status());
            return Ok((
                child,
                format!(
                    "s3://tempest-blocks/traces?endpoint=http://127.0.0.1:{port}&allow_http=true&region=us-east-1&access_key_id=test&secret_access_key=test"
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("moto_server did not start on port {port}")
}

async fn trace_by_id(
    bin: PathBuf,
    traces: u32,
    blocks: u32,
    lookups: u32,
    moto: Option<PathBuf>,
) -> anyhow::Result<()> {
    use rand::{Rng, SeedableRng};
    let data = tempfile::tempdir()?;
    let (_moto, storage) = match &moto {
        Some(path) => {
            let (m, url) = start_moto(path).await?;
            (Some(m), url)
        }
        None => (
            None,
            data.path().join("traces").to_string_lossy().into_owned(),
        ),
    };
    let loc = tempest_blocks::store::Location::open(&storage)?;
    write_trace_corpus(&loc, traces, blocks).await?;
    let tenant = tempest_core::TenantId::parse(None)?;
    let metas = tempest_blocks::reader::list_blocks(&loc, &tenant).await?;
    let served = Served::start(
        &bin,
        data.path(),
        &["--traces-storage".into(), storage.clone()],
    )
    .await?;
    let http = reqwest::Client::new();
    let per_block = traces.div_ceil(blocks);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let picks: Vec<(u32, u32)> = (0..lookups)
        .map(|_| (rng.gen_range(0..blocks), rng.gen_range(0..per_block)))
        .collect();
    let hex = |id: [u8; 16]| tempest_core::hex::encode(&id);
    // Warm the query function's index, as a warm function instance has it.
    let (b0, t0) = picks[0];
    http.get(format!(
        "{}/api/v2/traces/{}",
        served.query,
        hex(corpus_trace_id(b0, t0))
    ))
    .send()
    .await?
    .error_for_status()?;
    let (mut api, mut direct) = (Latencies::default(), Latencies::default());
    let cpu0 = served.usage()?.cpu_secs;
    for &(b, t) in &picks {
        let id = corpus_trace_id(b, t);
        let started = Instant::now();
        let resp = http
            .get(format!("{}/api/v2/traces/{}", served.query, hex(id)))
            .header("Accept", "application/protobuf")
            .send()
            .await?;
        anyhow::ensure!(
            resp.status() == 200,
            "lookup of {} answered {}",
            hex(id),
            resp.status()
        );
        let body = resp.bytes().await?;
        api.record(started.elapsed().as_micros() as u64);
        anyhow::ensure!(!body.is_empty(), "empty trace");
    }
    let api_cpu = served.usage()?.cpu_secs - cpu0;
    // Reference: the same trace read straight from the block known to hold it.
    let by_start: std::collections::HashMap<u64, &tempest_blocks::BlockMeta> =
        metas.iter().map(|m| (m.start_time_unix_nano, m)).collect();
    for &(b, t) in &picks {
        let meta = by_start
            .get(&(1_700_000_000_000_000_000 + u64::from(b) * 60_000_000_000))
            .context("block of the pick")?;
        let started = Instant::now();
        // A fresh footer each time: the reference is one cold block read.
        let footer = tempest_blocks::scan::Footer::default();
        let spans =
            tempest_blocks::reader::read_trace(&loc, meta, &footer, &corpus_trace_id(b, t)).await?;
        direct.record(started.elapsed().as_micros() as u64);
        anyhow::ensure!(spans.len() == 2, "direct read found {} spans", spans.len());
    }
    println!(
        "## Trace by ID: {traces} traces in {} blocks on {}, {lookups} lookups\n",
        metas.len(),
        if moto.is_some() {
            "moto's S3"
        } else {
            "local disk"
        }
    );
    println!("| path | p50 ms | p99 ms |");
    println!("|---|---|---|");
    println!(
        "| `GET /api/v2/traces/{{id}}` (protobuf) through `tempest serve` | {:.2} | {:.2} |",
        api.ms(0.5),
        api.ms(0.99)
    );
    println!(
        "| reference: ranged read of the one block holding the trace, in process | {:.2} | {:.2} |",
        direct.ms(0.5),
        direct.ms(0.99)
    );
    println!(
        "\nquery CPU per lookup: {:.2} ms; p99 goal < 50 ms; p50 ratio to the reference {:.1}x",
        api_cpu * 1000.0 / f64::from(lookups),
        api.ms(0.5) / direct.ms(0.5).max(1e-6)
    );
    Ok(())
}

/// DuckDB, one thread, timing `sql` over the Parquet files `glob`: prints CPU seconds and the
/// count the query returns.
const DUCKDB_TIMER: &str = r#"
import sys, time, duckdb
con = duckdb.connect()
con.execute("PRAGMA threads=1")
sql = sys.argv[2].replace("FILES", "read_parquet('" + sys.argv[1] + "')")
con.execute(sql).fetchall()  # warm the file cache, as the Tempest side is warm
# Repeated until the CPU time is well above the clock's resolution.
runs, c0 = 0, time.process_time()
while runs < 3 or time.process_time() - c0 < MIN_CPU:
    n = con.execute(sql).fetchall()[0][0]
    runs += 1
print((time.process_time() - c0) / runs, n)
"#;

/// CPU seconds each side of a search benchmark runs its query for, at least: `/proc` counts
/// CPU in 10 ms ticks.
const SEARCH_MIN_CPU_SECS: f64 = 2.0;

async fn search_bench(
    bin: PathBuf,
    traces: u32,
    blocks: u32,
    python: PathBuf,
) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let storage = data.path().join("traces");
    let loc = tempest_blocks::store::Location::open(&storage.to_string_lossy())?;
    write_trace_corpus(&loc, traces, blocks).await?;
    let spans = u64::from(traces.div_ceil(blocks) * blocks) * 2;
    let served = Served::start(&bin, data.path(), &[]).await?;
    let http = reqwest::Client::new();
    let files = format!(
        "{}/{}/*/data.parquet",
        storage.display(),
        tempest_core::tenant::DEFAULT_TENANT
    );
    println!(
        "## Search: {spans} spans in {blocks} blocks on local disk
"
    );
    println!(
        "| query | Tempest CPU per query, spans/s per core | DuckDB (1 thread) CPU per query, spans/s per core | Tempest / DuckDB |"
    );
    println!("|---|---|---|---|");
    for (label, traceql, sql) in [
        (
            "selective (matches nothing)",
            r#"{ span.http.route = "/nope" }"#,
            "SELECT count(*) FROM FILES WHERE http_route = '/nope'",
        ),
        (
            "non-selective (every span tested, no trace qualifies)",
            r#"{ name = "SELECT orders" } | count() > 1"#,
            "SELECT count(*) FROM (SELECT trace_id FROM FILES WHERE name = 'SELECT orders' GROUP BY trace_id HAVING count(*) > 1)",
        ),
    ] {
        let url = format!("{}/api/search", served.query);
        // Warm: the index and the page cache.
        http.get(&url)
            .query(&[("q", traceql), ("limit", "20")])
            .send()
            .await?
            .error_for_status()?;
        let cpu0 = served.usage()?.cpu_secs;
        let mut runs = 0u32;
        let cpu = loop {
            let body: serde_json::Value = http
                .get(&url)
                .query(&[("q", traceql), ("limit", "20")])
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            anyhow::ensure!(
                body["traces"] == serde_json::json!([]),
                "unexpected hits: {body}"
            );
            runs += 1;
            let cpu = served.usage()?.cpu_secs - cpu0;
            if runs >= 3 && cpu >= SEARCH_MIN_CPU_SECS {
                break cpu / f64::from(runs);
            }
        };
        let timer = DUCKDB_TIMER.replace("MIN_CPU", &SEARCH_MIN_CPU_SECS.to_string());
        let out = std::process::Command::new(&python)
            .args(["-c", &timer, &files, sql])
            .output()
            .with_context(|| format!("cannot run {}", python.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "duckdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let duck_cpu: f64 = text
            .split_whitespace()
            .next()
            .context("duckdb timing")?
            .parse()?;
        let (ours, theirs) = (
            spans as f64 / cpu.max(1e-9),
            spans as f64 / duck_cpu.max(1e-9),
        );
        println!(
            "| {label}: `{}` | {:.2} ms, {ours:.0} | {:.2} ms, {theirs:.0} | {:.3} |",
            traceql.replace('|', "\\|"),
            cpu * 1e3,
            duck_cpu * 1e3,
            ours / theirs
        );
    }
    Ok(())
}

/// One OTLP protobuf request of at least `bytes` bytes of the default mix.
fn one_request_of(bytes: usize) -> Vec<u8> {
    use prost::Message;
    let mut g = tempest_load_generator::synth::Generator::new(
        Default::default(),
        1_700_000_000_000_000_000,
    );
    let mut spans = Vec::new();
    loop {
        spans.extend((0..500).flat_map(|_| g.trace()));
        let encoded = tempest_traces::otlp::encode_request(&spans).encode_to_vec();
        if encoded.len() >= bytes {
            return encoded;
        }
    }
}

async fn ingest_one(payload: PathBuf) -> anyhow::Result<()> {
    let payload = std::fs::read(&payload)?;
    let dir = tempfile::tempdir()?;
    let loc = tempest_blocks::store::Location::open(&dir.path().to_string_lossy())?;
    let tenant = tempest_core::TenantId::parse(None)?;
    let before = usage_of(std::process::id())?;
    let spans = tempest_traces::otlp::decode_protobuf(&payload)?.spans;
    let n = spans.len();
    let meta = tempest_blocks::writer::write_block(&loc, &tenant, spans)
        .await?
        .context("empty batch")?;
    let after = usage_of(std::process::id())?;
    println!(
        "one ingest call of {:.1} MB ({n} spans -> {} B block): **peak RSS of the whole process {:.1} MB** (before the call, with the request read: {:.1} MB); goal < 128 MB",
        payload.len() as f64 / 1e6,
        meta.data_size,
        after.peak_rss_bytes as f64 / 1e6,
        before.rss_bytes as f64 / 1e6,
    );
    Ok(())
}

async fn compact_bench(
    blocks: u32,
    traces_per_block: u32,
    scales: &[u32],
    keep: Option<PathBuf>,
) -> anyhow::Result<()> {
    println!("## Compaction: {blocks} level-0 blocks into one\n");
    println!(
        "| input | spans | merge spans/s per core | decode-only spans/s per core | merge / decode | peak RSS | output bytes/span |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &scale in scales {
        let dir = tempfile::tempdir()?;
        let storage = match &keep {
            Some(k) => k.join(format!("x{scale}")).to_string_lossy().to_string(),
            None => dir.path().to_string_lossy().to_string(),
        };
        let loc = tempest_blocks::store::Location::open(&storage)?;
        let tenant = tempest_core::TenantId::parse(None)?;
        let mut g = tempest_load_generator::synth::Generator::new(
            Default::default(),
            1_700_000_000_000_000_000,
        );
        let pb = bar(u64::from(blocks), "writing level-0 blocks");
        for _ in 0..blocks {
            let spans: Vec<_> = (0..traces_per_block * scale)
                .flat_map(|_| g.trace())
                .collect();
            tempest_blocks::writer::write_block(&loc, &tenant, spans).await?;
            pb.inc(1);
        }
        pb.finish_and_clear();
        let out = std::process::Command::new(std::env::current_exe()?)
            .args(["compact-one", "--storage", &storage])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "compact-one: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "| ×{scale} | {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(())
}

/// Runs `work` until this process has used at least a second of CPU on it: the kernel counts
/// CPU in 10 ms ticks and a small merge takes ~150 ms, so one run would be ±7% from the tick
/// alone. Returns the runs and the CPU seconds they used.
async fn repeat_for_cpu(
    mut work: impl AsyncFnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(u64, f64)> {
    const MIN_CPU: f64 = 1.0;
    let cpu0 = usage_of(std::process::id())?.cpu_secs;
    let mut runs = 0u64;
    loop {
        work().await?;
        runs += 1;
        let used = usage_of(std::process::id())?.cpu_secs - cpu0;
        if used >= MIN_CPU {
            return Ok((runs, used));
        }
    }
}

async fn compact_one(storage: &str) -> anyhow::Result<()> {
    use futures::StreamExt;
    let loc = tempest_blocks::store::Location::open(storage)?;
    let tenant = tempest_core::TenantId::parse(None)?;
    let metas = tempest_blocks::reader::list_blocks(&loc, &tenant).await?;
    let spans: u64 = metas.iter().map(|m| m.span_count).sum();
    // Each side repeats for a second of CPU and the rate is over all its runs; peak memory is
    // the first merge's, in this fresh process.
    let (mut out, mut peak) = (None, 0u64);
    let (merges, merge_cpu) = repeat_for_cpu(async || {
        let merged = tempest_blocks::compact::merge(&loc, &tenant, &metas, Default::default())
            .await?
            .context("nothing merged")?;
        anyhow::ensure!(
            merged.span_count == spans,
            "merged {} of {spans}",
            merged.span_count
        );
        if out.is_none() {
            peak = usage_of(std::process::id())?.peak_rss_bytes;
        }
        out = Some(merged);
        Ok(())
    })
    .await?;
    let out = out.context("nothing merged")?;
    // Reference: decode every input row group, all columns, in the same batches.
    let (decodes, decode_cpu) = repeat_for_cpu(async || {
        let mut rows = 0u64;
        for meta in &metas {
            let file = tempest_blocks::data_file::DataFile::of(&loc, meta);
            let mut stream = parquet::arrow::ParquetRecordBatchStreamBuilder::new(file)
                .await?
                .with_batch_size(4096)
                .build()?;
            while let Some(batch) = stream.next().await {
                rows += batch?.num_rows() as u64;
            }
        }
        anyhow::ensure!(rows == spans, "decoded {rows} of {spans}");
        Ok(())
    })
    .await?;
    let (merge_rate, decode_rate) = (
        (spans * merges) as f64 / merge_cpu.max(0.01),
        (spans * decodes) as f64 / decode_cpu.max(0.01),
    );
    let stored = (out.data_size + out.bloom_size) as f64 / spans.max(1) as f64;
    println!(
        "{spans} | {merge_rate:.0} | {decode_rate:.0} | {:.2} | {:.1} MB | {stored:.1} |",
        merge_rate / decode_rate,
        peak as f64 / 1e6
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // As the hosts do: the figures are those of the code they run.
    tempest_blocks::malloc::keep_freed_memory();
    let cli = Cli::parse();
    let bin = cli.tempest_bin.unwrap_or_else(default_tempest_bin);
    match cli.command {
        Cmd::Invoke {
            rate,
            seconds,
            payload,
        } => invoke(bin, rate, seconds, payload).await,
        Cmd::State {
            seconds,
            concurrency,
            redis,
        } => state(bin, seconds, concurrency, redis).await,
        Cmd::EchoApp { port } => echo_app(port).await,
        Cmd::Ingest {
            requests,
            traces,
            seconds,
        } => ingest(requests, traces, seconds).await,
        Cmd::IngestOne { payload } => ingest_one(payload).await,
        Cmd::Compact {
            blocks,
            traces_per_block,
            scales,
            keep,
        } => compact_bench(blocks, traces_per_block, &scales, keep).await,
        Cmd::CompactOne { storage } => compact_one(&storage).await,
        Cmd::IngestS3 {
            requests,
            traces,
            moto,
        } => ingest_s3(requests, traces, moto).await,
        Cmd::Search {
            traces,
            blocks,
            python,
        } => search_bench(bin, traces, blocks, python).await,
        Cmd::TraceById {
            traces,
            blocks,
            lookups,
            moto,
        } => trace_by_id(bin, traces, blocks, lookups, moto).await,
        Cmd::ColdStart {
            bootstrap,
            reference,
            trials,
        } => tempest_load_generator::cold_start::run(&bootstrap, &reference, trials).await,
        Cmd::Spin {
            component,
            reference,
            requests,
        } => tempest_load_generator::spin_start::run(&component, &reference, requests).await,
        Cmd::RealApp {
            checkouts,
            python,
            script,
        } => real_app(bin, checkouts, python, script).await,
    }
}
