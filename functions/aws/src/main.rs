//! `bootstrap`: Tempest on AWS Lambda (`provided.al2023`). One binary for every function;
//! `TEMPEST_FUNCTION` names the one this Lambda runs, and the rest of the configuration comes
//! from the `TEMPEST_*` variables Terraform sets. This host only translates Lambda events:
//!
//! - HTTP functions (`invoke`, `state`, `publish`, `secrets`, `metadata`, `ingest`, `query`)
//!   take function-URL and API Gateway requests through `lambda_http`;
//! - `deliver` takes SQS batches and answers partial-batch failures;
//! - `compact` takes EventBridge schedule events and runs within the invocation's deadline;
//! - `search-worker` takes a search job, invoked directly by `query` (which, given
//!   `TEMPEST_SEARCH_WORKER_FUNCTION`, sends each job there with the AWS SDK).

mod events;
mod invoker;
mod limits;

use lambda_runtime::Error;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // Freed memory stays for the next call instead of being faulted in again (BENCHMARKS.md).
    tempest_blocks::malloc::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .without_time() // CloudWatch stamps every line
        .with_writer(std::io::stderr)
        .init();
    let function = std::env::var("TEMPEST_FUNCTION").map_err(|_| {
        format!(
            "TEMPEST_FUNCTION is not set: name the function this Lambda runs ({})",
            tempest_catalog::CATALOG
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let config = tempest_catalog::function_host_config()?;
    match function.as_str() {
        "compact" => events::compact(config).await,
        "search-worker" => events::search_worker(config).await,
        "deliver" => events::deliver(config).await,
        name => {
            // On AWS, `query` reaches its search workers through Lambda's Invoke API.
            let router = match std::env::var("TEMPEST_SEARCH_WORKER_FUNCTION") {
                Ok(worker) if name == "query" && !worker.is_empty() => {
                    let invoker = invoker::LambdaInvoker::new(worker).await;
                    tempest_catalog::tenant_gate(
                        tempest_catalog::query_with_workers(
                            &config.traces_storage(),
                            Some(std::sync::Arc::new(invoker)),
                        )?,
                        &config.traces.allowed_tenants,
                    )
                }
                _ => tempest_catalog::http_function(name, &config).await?,
            }
            .layer(axum::middleware::from_fn(limits::response_size));
            lambda_http::run(router).await
        }
    }
}
