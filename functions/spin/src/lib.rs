//! Tempest on Spin: one WebAssembly HTTP component (`wasm32-wasip2`, exporting
//! `wasi:http/incoming-handler`) for the HTTP functions. As on Lambda, `TEMPEST_FUNCTION` names
//! the function a component runs (each `[component.*]` of `spin.toml` sets it), and the rest of
//! the configuration is the `TEMPEST_*` environment. This host only translates: a Spin request
//! becomes an `http::Request` for the same router the other hosts serve, and its answer goes
//! back as the Spin response.
//!
//! Every HTTP function is served: the Dapr API (`invoke`, `state`, `publish`, `secrets`,
//! `metadata`) with the components that reach their services over HTTP, and the trace functions
//! (`ingest`, `query`, `search-worker`). Outgoing calls (apps, Azure, S3, search workers) go
//! through the host's `wasi:http`.

#![cfg(target_arch = "wasm32")]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt;
use spin_sdk::http::{IntoResponse, Request, Response};
use tower::ServiceExt;

/// The router, built on the first request an instance serves (Spin may reuse an instance).
static ROUTER: OnceLock<Result<Router, String>> = OnceLock::new();

/// The function this component serves, over the configuration of its environment.
fn build() -> anyhow::Result<Router> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .without_time()
        .with_writer(std::io::stderr)
        .try_init();
    let function = std::env::var("TEMPEST_FUNCTION").map_err(|_| {
        anyhow::anyhow!(
            "TEMPEST_FUNCTION is not set: name the function this component runs ({})",
            tempest_catalog::names(tempest_catalog::Trigger::Http)
        )
    })?;
    // `/data` is where spin.toml mounts the data folder; with object storage there may be none.
    let config = tempest_catalog::host_config("/data")?;
    block_on(tempest_catalog::http_function(&function, &config))?
}

/// Runs a future to completion on a one-thread runtime with timers: the shared code's futures
/// wait only on tokio's own timers, locks and channels; files and outgoing HTTP are blocking
/// WASI calls.
fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    Ok(runtime.block_on(future))
}

/// The Spin request as the `http::Request` the routers take.
fn to_http(req: &Request) -> anyhow::Result<axum::http::Request<Body>> {
    let method = axum::http::Method::from(req.method().clone());
    let mut builder = axum::http::Request::builder()
        .method(method)
        .uri(req.path_and_query().unwrap_or("/"));
    for (name, value) in req.headers() {
        builder = builder.header(name, value.as_bytes());
    }
    Ok(builder.body(Body::from(req.body().to_vec()))?)
}

/// A plain-text answer for what went wrong before the router could answer.
fn failure(status: u16, message: impl std::fmt::Display) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(format!("{message}\n"))
        .build()
}

/// The component's export. `spin_sdk`'s macro writes the Component Model ABI glue, which is
/// `unsafe` code: allowed here and nowhere else in the crate.
#[allow(unsafe_code)]
mod export {
    use super::*;

    #[spin_sdk::http_component]
    fn handle(req: Request) -> Response {
        let router = match ROUTER.get_or_init(|| build().map_err(|e| format!("{e:#}"))) {
            Ok(router) => router.clone(),
            Err(e) => return failure(500, e),
        };
        let http_req = match to_http(&req) {
            Ok(r) => r,
            Err(e) => return failure(400, format!("cannot read the request: {e:#}")),
        };
        let answered = block_on(async move {
            let resp = router
                .oneshot(http_req)
                .await
                .unwrap_or_else(|e| match e {});
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes());
            body.map(|body| axum::http::Response::from_parts(parts, body))
        });
        match answered {
            Ok(Ok(resp)) => resp.into_response(),
            Ok(Err(e)) => failure(500, format!("cannot write the response: {e}")),
            Err(e) => failure(500, format!("{e:#}")),
        }
    }
}
