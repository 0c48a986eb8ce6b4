//! `tempest`: every Tempest function in one process (`tempest serve`), plus the CLI.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tempest_core::Config;

#[derive(Parser)]
#[command(
    name = "tempest",
    version,
    about = "Dapr building blocks and tracing as stateless functions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every function in one process on the ports clients expect.
    Serve(ServeArgs),
    /// List the functions this build provides.
    Functions,
    /// Inspect trace blocks: list them, show one's meta, dump a trace.
    Blocks(BlocksArgs),
    /// Run `compact` once: merge small blocks, apply retention, delete what has been
    /// compacted, rewrite the tenant indexes.
    Compact(CompactArgs),
}

#[derive(clap::Args)]
struct CompactArgs {
    /// Block storage (folder, file:///…, s3://…, az://…); default: the configured one.
    #[arg(long)]
    storage: Option<String>,
    /// Only this tenant (repeatable); default: every tenant in the storage.
    #[arg(long = "tenant")]
    tenants: Vec<String>,
    /// How long the run may take (e.g. 30s, 5m); default: the configured time budget.
    #[arg(long = "time-budget")]
    time_budget: Option<String>,
    /// Print one JSON object per tenant instead of a table.
    #[arg(long)]
    json: bool,
    /// YAML config file.
    #[arg(long, env = "TEMPEST_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct BlocksArgs {
    /// Block storage (folder, file:///…); default: the configured one.
    #[arg(long)]
    storage: Option<String>,
    /// Tenant (X-Scope-OrgID).
    #[arg(long, default_value = tempest_core::tenant::DEFAULT_TENANT)]
    tenant: String,
    /// YAML config file.
    #[arg(long, env = "TEMPEST_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    what: BlocksCmd,
}

#[derive(Subcommand)]
enum BlocksCmd {
    /// One line per committed block.
    List,
    /// A block's meta.json.
    Meta {
        /// Block id.
        block_id: String,
    },
    /// Every span of a trace, as JSON lines.
    Trace {
        /// Trace id, 32 hex digits.
        trace_id: String,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// YAML config file (default: ./tempest.yaml when it exists).
    #[arg(long, env = "TEMPEST_CONFIG")]
    config: Option<PathBuf>,
    /// Folder of Dapr resource files (Component, Subscription, Configuration, Resiliency).
    #[arg(long = "resources-path")]
    resources_path: Option<PathBuf>,
    /// Declare an app: ID=URL (repeatable).
    #[arg(long = "app", value_name = "ID=URL")]
    apps: Vec<String>,
    /// Dapr HTTP API port.
    #[arg(long = "dapr-http-port")]
    dapr_http_port: Option<u16>,
    /// Address to listen on.
    #[arg(long = "bind")]
    bind: Option<String>,
    /// Data folder for the embedded stores.
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// Tempest's own app id.
    #[arg(long = "app-id")]
    app_id: Option<String>,
    /// OTLP/gRPC receiver port (0 disables it).
    #[arg(long = "otlp-grpc-port")]
    otlp_grpc_port: Option<u16>,
    /// OTLP/HTTP receiver port (0 disables it).
    #[arg(long = "otlp-http-port")]
    otlp_http_port: Option<u16>,
    /// Jaeger Thrift HTTP receiver port (0 disables it).
    #[arg(long = "jaeger-port")]
    jaeger_port: Option<u16>,
    /// Zipkin receiver port (0 disables it).
    #[arg(long = "zipkin-port")]
    zipkin_port: Option<u16>,
    /// Tempo query API port, for Grafana (0 disables it).
    #[arg(long = "query-port")]
    query_port: Option<u16>,
    /// Where trace blocks are stored (folder, file:///…, memory://).
    #[arg(long = "traces-storage")]
    traces_storage: Option<String>,
}

fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let default_file = PathBuf::from("tempest.yaml");
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None if default_file.exists() => Config::from_file(&default_file)?,
        None => Config::default(),
    };
    config.apply_env(std::env::vars())?;
    if let Some(p) = &args.resources_path {
        config.resources_path = Some(p.clone());
    }
    for spec in &args.apps {
        let (id, url) = tempest_core::config::parse_app(spec)?;
        config.apps.insert(id, url);
    }
    if let Some(port) = args.dapr_http_port {
        config.dapr.http_port = port;
    }
    if let Some(bind) = &args.bind {
        config.dapr.bind = bind.clone();
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(id) = &args.app_id {
        config.app_id = id.clone();
    }
    if let Some(p) = args.otlp_http_port {
        config.traces.otlp_http_port = p;
    }
    if let Some(p) = args.otlp_grpc_port {
        config.traces.otlp_grpc_port = p;
    }
    if let Some(p) = args.jaeger_port {
        config.traces.jaeger_port = p;
    }
    if let Some(p) = args.zipkin_port {
        config.traces.zipkin_port = p;
    }
    if let Some(p) = args.query_port {
        config.traces.query_port = p;
    }
    if let Some(s) = &args.traces_storage {
        config.traces.storage = Some(s.clone());
    }
    Ok(config)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data folder {}", config.data_dir.display()))?;
    let rt = Arc::new(tempest_components::build_runtime(&config).await?);
    let addr: SocketAddr = format!("{}:{}", config.dapr.bind, config.dapr.http_port)
        .parse()
        .with_context(|| {
            format!(
                "invalid listen address {}:{}",
                config.dapr.bind, config.dapr.http_port
            )
        })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (Dapr HTTP API)"))?;
    let components: Vec<String> = rt
        .state
        .iter()
        .map(|(n, c)| format!("{n} ({})", c.type_name))
        .chain(
            rt.pubsub
                .iter()
                .map(|(n, c)| format!("{n} ({})", c.type_name)),
        )
        .chain(
            rt.secrets
                .iter()
                .map(|(n, c)| format!("{n} ({})", c.type_name)),
        )
        .collect();
    tracing::info!(%addr, apps = ?rt.apps.keys().collect::<Vec<_>>(), components = ?components, "Dapr HTTP API listening");
    let telemetry = self_telemetry(&config)?;
    let _delivery = tempest_catalog::start_delivery(rt.clone());
    let storage = config.traces_storage();
    let receivers = tempest_catalog::ingest_receivers(&storage, config.traces.max_body_size, true)?;
    for (port, router, what) in [
        (
            config.traces.otlp_grpc_port,
            receivers.otlp_grpc,
            "OTLP/gRPC",
        ),
        (
            config.traces.otlp_http_port,
            receivers.otlp_http,
            "OTLP/HTTP",
        ),
        (config.traces.zipkin_port, receivers.zipkin, "Zipkin"),
        (
            config.traces.jaeger_port,
            receivers.jaeger,
            "Jaeger Thrift HTTP",
        ),
        (
            config.traces.query_port,
            // The query API, with the search-worker function beside it.
            tempest_catalog::query_http(&storage, config.traces.search_worker_url.as_deref())?
                .merge(tempest_catalog::search_worker_http(&storage)?),
            "Tempo query API",
        ),
    ] {
        if port == 0 {
            continue;
        }
        let router = tempest_catalog::tenant_gate(router, &config.traces.allowed_tenants);
        let addr = format!("{}:{port}", config.traces.bind);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr} ({what})"))?;
        tracing::info!(%addr, storage = %storage, "{what} listening");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!("{what} failed: {e}");
            }
        });
    }
    let interval = config.traces.compaction.interval;
    let _compaction = (!interval.is_zero())
        .then(|| {
            let compactor = tempest_catalog::compactor(&storage, &config.traces.compaction)?;
            tracing::info!(every = ?interval, storage = %storage, "compaction scheduled");
            Ok::<_, anyhow::Error>(tempest_catalog::schedule_compaction(compactor, interval))
        })
        .transpose()?;
    axum::serve(
        listener,
        tempest_catalog::dapr_http(rt).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("Dapr HTTP API server failed")?;
    if let Some(provider) = telemetry {
        // Flush what is buffered; the receiver is still up in this process.
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
    Ok(())
}

/// Exports Tempest's own spans with `opentelemetry-otlp` (OTLP/HTTP protobuf, batched) into
/// this process's own OTLP/HTTP receiver, as service `tempest`.
fn self_telemetry(
    config: &Config,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    if !config.traces.self_telemetry || config.traces.otlp_http_port == 0 {
        return Ok(None);
    }
    let endpoint = format!(
        "http://{}:{}/v1/traces",
        config.traces.bind, config.traces.otlp_http_port
    );
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .with_headers(
            [(
                "X-Scope-OrgID".to_owned(),
                tempest_core::tenant::DEFAULT_TENANT.to_owned(),
            )]
            .into(),
        )
        .build()?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("tempest")
                .build(),
        )
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(Some(provider))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

fn parse_trace_id(hex: &str) -> anyhow::Result<[u8; 16]> {
    let hex = hex.trim();
    anyhow::ensure!(
        hex.len() == 32,
        "a trace id is 32 hex digits, got {}",
        hex.len()
    );
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16)
            .with_context(|| format!("{hex:?} is not hex"))?;
    }
    Ok(id)
}

/// The configuration a CLI tool runs with: the file given (or none), then the environment,
/// then `--storage`.
fn tool_config(file: &Option<PathBuf>, storage: &Option<String>) -> anyhow::Result<Config> {
    let mut config = match file {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    config.apply_env(std::env::vars())?;
    if let Some(s) = storage {
        config.traces.storage = Some(s.clone());
    }
    Ok(config)
}

async fn compact(args: CompactArgs) -> anyhow::Result<()> {
    let mut config = tool_config(&args.config, &args.storage)?;
    if let Some(budget) = &args.time_budget {
        config.traces.compaction.time_budget =
            tempest_core::config::parse_duration("--time-budget", budget)?;
    }
    let storage = config.traces_storage();
    let compactor = tempest_catalog::compactor(&storage, &config.traces.compaction)?;
    let tenants = args
        .tenants
        .iter()
        .map(|t| tempest_core::TenantId::parse(Some(t)))
        .collect::<Result<Vec<_>, _>>()?;
    let pb = indicatif::ProgressBar::new(0);
    pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} merges")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = |p: tempest_blocks::compact::Progress<'_>| match p {
        tempest_blocks::compact::Progress::Planned { tenant, jobs } => {
            pb.set_message(format!("tenant {tenant}"));
            pb.set_length(jobs as u64);
            pb.set_position(0);
        }
        tempest_blocks::compact::Progress::Merged { .. } => pb.inc(1),
    };
    let reports = compactor
        .run(
            (!tenants.is_empty()).then_some(tenants.as_slice()),
            &progress,
        )
        .await?;
    pb.finish_and_clear();
    for r in &reports {
        if args.json {
            println!("{}", serde_json::to_string(r)?);
        } else if let Some(holder) = &r.busy_with {
            println!("{:<20} skipped: {holder} is compacting it", r.tenant);
        } else {
            println!(
                "{:<20} merged {} blocks in {} jobs ({} spans), retention marked {}, deleted {} \
                 (+{} partial), {} jobs left, index of {} blocks",
                r.tenant,
                r.input_blocks,
                r.merged_jobs,
                r.spans_written,
                r.marked_retention,
                r.deleted_blocks,
                r.deleted_partial,
                r.jobs_left,
                r.indexed_blocks
            );
        }
    }
    eprintln!("compacted {} tenants in {storage}", reports.len());
    Ok(())
}

async fn blocks(args: BlocksArgs) -> anyhow::Result<()> {
    use tempest_blocks::{reader, store::Location};
    let storage = tool_config(&args.config, &args.storage)?.traces_storage();
    let loc = Location::open(&storage)?;
    let tenant = tempest_core::TenantId::parse(Some(&args.tenant))?;
    match args.what {
        BlocksCmd::List => {
            let metas = reader::list_blocks(&loc, &tenant).await?;
            let pb = indicatif::ProgressBar::new(metas.len() as u64);
            pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            for m in &metas {
                println!(
                    "{}  level {}  spans {:>8}  traces {:>7}  {:>10} B  {}",
                    m.block_id,
                    m.compaction_level,
                    m.span_count,
                    m.trace_count,
                    m.data_size,
                    m.created_at
                );
                pb.inc(1);
            }
            pb.finish_and_clear();
            eprintln!("{} blocks for tenant {tenant} in {storage}", metas.len());
        }
        BlocksCmd::Meta { block_id } => {
            let metas = reader::list_blocks(&loc, &tenant).await?;
            let meta = metas
                .iter()
                .find(|m| m.block_id == block_id)
                .with_context(|| format!("no committed block {block_id} for tenant {tenant}"))?;
            println!("{}", serde_json::to_string_pretty(meta)?);
        }
        BlocksCmd::Trace { trace_id } => {
            let id = parse_trace_id(&trace_id)?;
            let spans = reader::find_trace(&loc, &tenant, &id).await?;
            anyhow::ensure!(
                !spans.is_empty(),
                "trace {trace_id} not found for tenant {tenant}"
            );
            for s in spans {
                let hex = tempest_core::hex::encode;
                let line = serde_json::json!({
                    "traceId": hex(&s.trace_id),
                    "spanId": hex(&s.span_id),
                    "parentSpanId": s.parent_span_id.map(|p| hex(&p)),
                    "name": s.name,
                    "kind": s.kind as i32,
                    "service": s.resource.service_name(),
                    "startTimeUnixNano": s.start_unix_nano.to_string(),
                    "endTimeUnixNano": s.end_unix_nano.to_string(),
                    "status": {"code": s.status_code, "message": s.status_message},
                    "attributes": tempest_blocks::attrs::encode(&s.attributes),
                });
                println!("{line}");
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Freed memory stays for the next call instead of being faulted in again (BENCHMARKS.md).
    tempest_blocks::malloc::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TEMPEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Blocks(args) => blocks(args).await,
        Command::Compact(args) => compact(args).await,
        Command::Functions => {
            for f in tempest_catalog::CATALOG {
                println!(
                    "{:<10} {:<8} {}",
                    f.name,
                    format!("{:?}", f.trigger).to_lowercase(),
                    f.summary
                );
            }
            Ok(())
        }
    }
}
