//! `query` reaching `search-worker` by HTTP POST: native hosts only (`reqwest` has no client on
//! wasm32).

use std::sync::Arc;

/// Invokes a `search-worker` with an HTTP POST of the job.
pub(crate) struct HttpInvoker {
    client: reqwest::Client,
    url: String,
}

#[tempest_query::async_trait]
impl tempest_query::worker::Invoker for HttpInvoker {
    async fn invoke(&self, payload: Vec<u8>) -> Result<Vec<u8>, String> {
        let resp = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(payload)
            .send()
            .await
            .map_err(|e| format!("POST {}: {e}", self.url))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        crate::worker_answer(&self.url, status, &body)
    }
}

impl HttpInvoker {
    /// An invoker that POSTs jobs to the search worker at `url`.
    pub(crate) fn to(url: &str) -> Arc<dyn tempest_query::worker::Invoker> {
        Arc::new(HttpInvoker {
            client: reqwest::Client::new(),
            url: url.to_owned(),
        })
    }
}
