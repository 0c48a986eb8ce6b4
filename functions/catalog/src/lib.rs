//! The Tempest function catalogue: every function once, named, with its trigger, built from the
//! shared crates. Hosts (local, aws, azure, spin) only translate their triggers into these.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;

mod dapr;
mod http_invoker;
pub use dapr::{dapr_http, pushed_delivery, runtime, start_delivery};

/// How a function is triggered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// An HTTP request.
    Http,
    /// Messages from a queue or stream.
    Queue,
    /// A timer.
    Schedule,
    /// A direct call from another function.
    Invoked,
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Function {
    /// Function name, as in DESIGN.md.
    pub name: &'static str,
    /// Its trigger.
    pub trigger: Trigger,
    /// What it does.
    pub summary: &'static str,
}

/// The functions built so far.
pub const CATALOG: &[Function] = &[
    Function {
        name: "invoke",
        trigger: Trigger::Http,
        summary: "Dapr service invocation",
    },
    Function {
        name: "state",
        trigger: Trigger::Http,
        summary: "Dapr state API",
    },
    Function {
        name: "publish",
        trigger: Trigger::Http,
        summary: "Dapr publish API",
    },
    Function {
        name: "secrets",
        trigger: Trigger::Http,
        summary: "Dapr secrets API",
    },
    Function {
        name: "metadata",
        trigger: Trigger::Http,
        summary: "Dapr metadata and health API",
    },
    Function {
        name: "deliver",
        trigger: Trigger::Queue,
        summary: "pub/sub delivery to subscribed apps",
    },
    Function {
        name: "ingest",
        trigger: Trigger::Http,
        summary: "OTLP/HTTP and Zipkin spans to committed blocks",
    },
    Function {
        name: "query",
        trigger: Trigger::Http,
        summary: "Tempo query API: trace by ID, TraceQL search, tags",
    },
    Function {
        name: "compact",
        trigger: Trigger::Schedule,
        summary: "merges blocks, applies retention, rewrites the tenant index",
    },
    Function {
        name: "search-worker",
        trigger: Trigger::Invoked,
        summary: "one search job over a slice of blocks (JSON)",
    },
];

/// The HTTP function `name` alone, as a function host serves it: the Dapr API for `invoke`,
/// `state`, `publish`, `secrets` and `metadata` (one router; each function's host is given only
/// its own path by its HTTP endpoint), the OTLP/HTTP, Zipkin and Jaeger receivers for `ingest`
/// (a block committed per call), Tempo's query API for `query`, and `search-worker` over HTTP.
pub async fn http_function(name: &str, config: &tempest_core::Config) -> anyhow::Result<Router> {
    let storage = config.traces_storage();
    Ok(match name {
        name if DAPR_FUNCTIONS.contains(&name) => dapr_http(runtime(config).await?),
        "ingest" => {
            let r = ingest_receivers(&storage, config.traces.max_body_size, false)?;
            tenant_gate(
                r.otlp_http.merge(r.zipkin).merge(r.jaeger),
                &config.traces.allowed_tenants,
            )
        }
        "query" => tenant_gate(
            query_http(&storage, config.traces.search_worker_url.as_deref())?,
            &config.traces.allowed_tenants,
        ),
        "search-worker" => search_worker_http(&storage)?,
        other => anyhow::bail!(
            "{other:?} is not an HTTP function ({})",
            names(Trigger::Http)
        ),
    })
}

/// Serves only the `allowed` tenants (all when empty): a request whose `X-Scope-OrgID` names
/// another tenant is refused before it reaches the receiver or the query API, with 403, or
/// with gRPC's PERMISSION_DENIED for an OTLP/gRPC call. Invalid ids pass on, to be refused
/// with the receiver's own 400.
pub fn tenant_gate(router: Router, allowed: &[String]) -> Router {
    use axum::extract::Request;
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::middleware::Next;
    use axum::response::{IntoResponse, Response};
    if allowed.is_empty() {
        return router;
    }
    let allowed: Arc<[String]> = allowed.into();
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let allowed = allowed.clone();
            async move {
                let raw = req
                    .headers()
                    .get("x-scope-orgid")
                    .and_then(|v| v.to_str().ok());
                let tenant = match tempest_core::tenant::TenantId::parse(raw) {
                    Ok(t) if !allowed.iter().any(|a| a == t.as_str()) => t,
                    _ => return next.run(req).await,
                };
                let message = format!("tenant {tenant} is not allowed here");
                let grpc = req
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/grpc"));
                if grpc {
                    let mut resp = Response::new(axum::body::Body::empty());
                    let h = resp.headers_mut();
                    h.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/grpc"),
                    );
                    h.insert("grpc-status", HeaderValue::from_static("7"));
                    if let Ok(v) = HeaderValue::from_str(&message) {
                        h.insert("grpc-message", v);
                    }
                    return resp;
                }
                (StatusCode::FORBIDDEN, message).into_response()
            }
        },
    ))
}

/// The functions that together are the Dapr HTTP API: one router serves them all.
pub const DAPR_FUNCTIONS: &[&str] = &["invoke", "state", "publish", "secrets", "metadata"];

/// Where a function host keeps blocks and embedded stores when no storage is configured: on
/// Lambda and in Azure Functions only `/tmp` is local and writable.
pub const FUNCTION_HOST_DATA_DIR: &str = "/tmp/tempest";

/// A function host's configuration: the `TEMPEST_*` environment (set by Terraform as Lambda
/// variables or app settings) over the defaults, with [`FUNCTION_HOST_DATA_DIR`] as the data
/// folder, which is created.
pub fn function_host_config() -> anyhow::Result<tempest_core::Config> {
    let config = host_config(FUNCTION_HOST_DATA_DIR)?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", config.data_dir.display()))?;
    Ok(config)
}

/// The `TEMPEST_*` environment over the defaults, with `data_dir` as the data folder unless
/// `TEMPEST_DATA_DIR` says otherwise. Nothing is created: a WebAssembly component may have no
/// writable folder at all when its blocks are in object storage.
pub fn host_config(data_dir: &str) -> anyhow::Result<tempest_core::Config> {
    let mut config = tempest_core::Config {
        data_dir: data_dir.into(),
        ..tempest_core::Config::default()
    };
    config.apply_env(std::env::vars())?;
    Ok(config)
}

/// The names of the functions with `trigger`, comma-separated.
pub fn names(trigger: Trigger) -> String {
    CATALOG
        .iter()
        .filter(|f| f.trigger == trigger)
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `ingest` function's receivers, all committing to the same block location.
pub struct Receivers {
    /// OTLP/HTTP (`POST /v1/traces`).
    pub otlp_http: Router,
    /// OTLP/gRPC (`TraceService/Export`); not on wasm32, which serves HTTP only.
    #[cfg(not(target_arch = "wasm32"))]
    pub otlp_grpc: Router,
    /// Zipkin v2 (`POST /api/v2/spans`).
    pub zipkin: Router,
    /// Jaeger Thrift over HTTP (`POST /api/traces`).
    pub jaeger: Router,
}

/// Builds the `ingest` receivers over the block storage at `storage`. A long-running host
/// (`group_commit`) groups concurrent requests into shared blocks; a function host commits a
/// block per call.
pub fn ingest_receivers(
    storage: &str,
    max_body: usize,
    group_commit: bool,
) -> anyhow::Result<Receivers> {
    use tempest_blocks::ingest::{BlockSink, GroupCommitSink};
    use tempest_traces::receivers;
    let loc = tempest_blocks::store::Location::open(storage)?;
    let sink: Arc<dyn receivers::SpanSink> = if group_commit {
        Arc::new(GroupCommitSink::start(
            loc,
            tempest_blocks::ingest::GROUP_COMMIT_MAX_SPANS,
        ))
    } else {
        Arc::new(BlockSink::new(loc))
    };
    Ok(Receivers {
        otlp_http: receivers::otlp_http_router(sink.clone(), max_body),
        #[cfg(not(target_arch = "wasm32"))]
        otlp_grpc: tonic::service::Routes::new(tempest_traces::grpc::service(
            sink.clone(),
            max_body,
        ))
        .into_axum_router(),
        zipkin: receivers::zipkin_router(sink.clone(), max_body),
        jaeger: receivers::jaeger_router(sink, max_body),
    })
}

/// The `query` function: Tempo's HTTP query API over the blocks at `storage`. Search jobs run
/// as tasks of this process, or, given a `search-worker` URL, each in a worker reached by an
/// HTTP POST of the job.
pub fn query_http(storage: &str, search_worker: Option<&str>) -> anyhow::Result<Router> {
    let invoker = search_worker.map(http_invoker::HttpInvoker::to);
    query_with_workers(storage, invoker)
}

/// The `query` function with its search jobs sent through `invoker` (a host's own way to call
/// `search-worker`, such as Lambda's Invoke API), or run in this process when `None`.
pub fn query_with_workers(
    storage: &str,
    invoker: Option<Arc<dyn tempest_query::worker::Invoker>>,
) -> anyhow::Result<Router> {
    let loc = tempest_blocks::store::Location::open(storage)?;
    let api = match invoker {
        None => tempest_query::QueryApi::new(loc),
        Some(invoker) => tempest_query::QueryApi::with_jobs(
            loc,
            Arc::new(tempest_query::worker::InvokedJobs::new(invoker)),
        ),
    };
    Ok(tempest_query::router(api))
}

/// The `search-worker` function over HTTP, at [`tempest_query::router::SEARCH_WORKER_PATH`].
pub fn search_worker_http(storage: &str) -> anyhow::Result<Router> {
    let loc = tempest_blocks::store::Location::open(storage)?;
    Ok(tempest_query::router::search_worker_router(loc))
}

/// The `compact` function over the blocks at `storage`, configured as Tempo's compactor is.
pub fn compactor(
    storage: &str,
    config: &tempest_core::config::CompactionConfig,
) -> anyhow::Result<tempest_blocks::compact::Compactor> {
    use tempest_blocks::compact::{CompactOptions, Compactor, PlanOptions, SystemClock};
    let loc = tempest_blocks::store::Location::open(storage)?;
    let opts = CompactOptions {
        plan: PlanOptions {
            window: config.window,
            max_input_blocks: config.max_input_blocks,
            max_block_bytes: config.max_block_bytes,
        },
        retention: config.retention,
        tenant_retention: config.tenant_retention.clone(),
        grace: config.compacted_block_retention,
        time_budget: config.time_budget,
        ..CompactOptions::default()
    };
    Ok(Compactor::new(loc, opts, Arc::new(SystemClock)))
}

/// Runs `compact` every `interval` until the process ends (the first run one interval after
/// start); a failed run is logged and retried at the next tick.
pub fn schedule_compaction(
    compactor: tempest_blocks::compact::Compactor,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match compactor.run(None, &|_| {}).await {
                Ok(reports) => {
                    for r in reports {
                        tracing::info!(
                            tenant = %r.tenant,
                            merged = r.merged_jobs,
                            spans = r.spans_written,
                            retention_marked = r.marked_retention,
                            deleted = r.deleted_blocks,
                            left = r.jobs_left,
                            busy_with = ?r.busy_with,
                            "compaction run"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "compaction run failed"),
            }
        }
    })
}
