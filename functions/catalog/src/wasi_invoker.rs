//! `query` reaching `search-worker` by HTTP POST from a WebAssembly component, through the
//! host's `wasi:http` (the component's client, `tempest_blocks::wasi_http`).

use std::sync::Arc;

/// Invokes a `search-worker` with an HTTP POST of the job.
pub(crate) struct WasiInvoker {
    url: String,
}

impl WasiInvoker {
    /// An invoker that POSTs jobs to the search worker at `url`.
    pub(crate) fn to(url: &str) -> Arc<dyn tempest_query::worker::Invoker> {
        Arc::new(WasiInvoker {
            url: url.to_owned(),
        })
    }
}

#[tempest_query::async_trait]
impl tempest_query::worker::Invoker for WasiInvoker {
    async fn invoke(&self, payload: Vec<u8>) -> Result<Vec<u8>, String> {
        let (parts, ()) = axum::http::Request::post(&self.url)
            .header("content-type", "application/json")
            .body(())
            .map_err(|e| format!("POST {}: {e}", self.url))?
            .into_parts();
        // The client's error names the method and URL itself.
        let resp = tempest_blocks::wasi_http::send(&parts, &payload).map_err(|e| e.to_string())?;
        crate::worker_answer(&self.url, resp.status(), resp.body())
    }
}
