//! How `query` on Lambda reaches `search-worker`: Lambda's Invoke API through the AWS SDK, one
//! synchronous invocation per job (the query side sends its jobs concurrently).

use aws_sdk_lambda::primitives::Blob;

/// Invokes the `search-worker` Lambda named by `function` (a name or ARN).
pub struct LambdaInvoker {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaInvoker {
    /// An invoker with the SDK's usual configuration: the Lambda's role credentials and region
    /// from its environment (`AWS_ENDPOINT_URL_LAMBDA` points it elsewhere, as in the tests).
    pub async fn new(function: String) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        LambdaInvoker {
            client: aws_sdk_lambda::Client::new(&config),
            function,
        }
    }
}

#[tempest_query::async_trait]
impl tempest_query::worker::Invoker for LambdaInvoker {
    async fn invoke(&self, payload: Vec<u8>) -> Result<Vec<u8>, String> {
        let out = self
            .client
            .invoke()
            .function_name(&self.function)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "invoking {}: {}",
                    self.function,
                    aws_sdk_lambda::error::DisplayErrorContext(&e)
                )
            })?;
        let body = out.payload.map(Blob::into_inner).unwrap_or_default();
        if let Some(kind) = out.function_error {
            return Err(format!(
                "{} failed ({kind}): {}",
                self.function,
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(body)
    }
}
