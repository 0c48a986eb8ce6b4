//! The AWS SDK inside a WebAssembly component: requests go out through Tempest's HTTP client
//! (the host's `wasi:http`), retry back-off sleeps on the host's clock, and region and keys come
//! from the component's metadata or the `AWS_*` environment variables (a component has no
//! instance role, profile file or credential process to ask).

use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_async::rt::sleep::{AsyncSleep, SharedAsyncSleep, Sleep};
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource};
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_types::region::Region;
use aws_types::sdk_config::SdkConfig;

use crate::ComponentError;
use crate::metadata::{Metadata, env};

/// The SDK configuration one component's metadata describes, completed from the environment.
pub(super) fn sdk_config(md: &Metadata) -> Result<SdkConfig, ComponentError> {
    let invalid = |message: &str| ComponentError::Invalid {
        component: md.component.clone(),
        message: message.into(),
    };
    let region = md
        .get("region")
        .map(str::to_owned)
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .ok_or_else(|| invalid("no region: set `region` or AWS_REGION"))?;
    let credentials = match super::metadata_credentials(md)? {
        Some(credentials) => credentials,
        None => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(key), Some(secret)) => {
                Credentials::new(key, secret, env("AWS_SESSION_TOKEN"), None, "environment")
            }
            _ => {
                return Err(invalid(
                    "no keys: set `accessKey` and `secretKey`, or AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY (a WebAssembly component has no other credential source)",
                ));
            }
        },
    };
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(SharedHttpClient::new(Connector(tempest_http::client())))
        .sleep_impl(SharedAsyncSleep::new(HostSleep))
        .time_source(SharedTimeSource::new(SystemTimeSource::new()));
    if let Some(endpoint) = md.get("endpoint") {
        config = config.endpoint_url(endpoint);
    }
    Ok(config.build())
}

/// The SDK's HTTP connector over Tempest's client.
#[derive(Clone)]
struct Connector(Arc<dyn tempest_http::HttpClient>);

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connector(wasi:http)")
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(Box::new(e)))?;
            let (parts, body) = request.into_parts();
            // The SDK's requests to these services carry their whole body in memory.
            let body = body
                .bytes()
                .map(bytes::Bytes::copy_from_slice)
                .ok_or_else(|| {
                    ConnectorError::user("a streaming body cannot be sent from a component".into())
                })?;
            let answer = client
                .send(http::Request::from_parts(parts, body))
                .await
                .map_err(|e| {
                    if e.is_timeout() {
                        ConnectorError::timeout(Box::new(e))
                    } else {
                        ConnectorError::io(Box::new(e))
                    }
                })?;
            let (parts, body) = answer.into_parts();
            http::Response::from_parts(parts, SdkBody::from(body))
                .try_into()
                .map_err(|e| ConnectorError::other(Box::new(e), None))
        })
    }
}

impl HttpClient for Connector {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// Retry back-off on the host's clock. A component runs one request on one thread, so the
/// request simply waits.
#[derive(Debug)]
struct HostSleep;

impl AsyncSleep for HostSleep {
    fn sleep(&self, duration: Duration) -> Sleep {
        Sleep::new(async move { std::thread::sleep(duration) })
    }
}
