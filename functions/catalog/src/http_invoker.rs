//! `query` reaching `search-worker` by HTTP POST of the job, through the platform's client
//! (`reqwest` natively, `wasi:http` in a WebAssembly component).

use std::sync::Arc;

use tempest_http::HttpClient;

/// Invokes a `search-worker` with an HTTP POST of the job.
pub(crate) struct HttpInvoker {
    client: Arc<dyn HttpClient>,
    url: String,
}

#[tempest_query::async_trait]
impl tempest_query::worker::Invoker for HttpInvoker {
    async fn invoke(&self, payload: Vec<u8>) -> Result<Vec<u8>, String> {
        let post = axum::http::Request::post(&self.url).header("content-type", "application/json");
        // The client's error names the method and URL itself.
        let resp = self
            .client
            .call(post, payload.into())
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!(
                "POST {}: {status}: {}",
                self.url,
                tempest_http::text(&resp)
            ));
        }
        Ok(resp.into_body().to_vec())
    }
}

impl HttpInvoker {
    /// An invoker that POSTs jobs to the search worker at `url`.
    pub(crate) fn to(url: &str) -> Arc<dyn tempest_query::worker::Invoker> {
        Arc::new(HttpInvoker {
            client: tempest_http::client(),
            url: url.to_owned(),
        })
    }
}
