//! AWS SDK configuration from Dapr's AWS component metadata (`region`, `endpoint`,
//! `accessKey`, `secretKey`, `sessionToken`), shared by every AWS component. Natively, without
//! keys the SDK's default chain applies: a Lambda's role, the environment, a profile. In a
//! WebAssembly component (`wasi`) the SDK sends through the host's `wasi:http` and takes its keys
//! from the metadata or the environment, the only sources a component has.

use aws_credential_types::Credentials;

use crate::ComponentError;
use crate::metadata::Metadata;

#[cfg(target_arch = "wasm32")]
mod wasi;

/// The SDK configuration one component's metadata describes.
#[cfg(not(target_arch = "wasm32"))]
pub async fn sdk_config(md: &Metadata) -> Result<aws_types::SdkConfig, ComponentError> {
    use aws_config::BehaviorVersion;
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = md.get("region") {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    if let Some(endpoint) = md.get("endpoint") {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(credentials) = metadata_credentials(md)? {
        loader = loader.credentials_provider(credentials);
    }
    Ok(loader.load().await)
}

/// The SDK configuration one component's metadata describes.
#[cfg(target_arch = "wasm32")]
pub async fn sdk_config(md: &Metadata) -> Result<aws_types::SdkConfig, ComponentError> {
    wasi::sdk_config(md)
}

/// The keys in the metadata, if any: both of `accessKey` and `secretKey`, or neither.
fn metadata_credentials(md: &Metadata) -> Result<Option<Credentials>, ComponentError> {
    match (md.get("accessKey"), md.get("secretKey")) {
        (Some(key), Some(secret)) => Ok(Some(Credentials::new(
            key,
            secret,
            md.get("sessionToken").map(str::to_owned),
            None,
            "dapr-component-metadata",
        ))),
        (None, None) => Ok(None),
        _ => Err(ComponentError::Invalid {
            component: md.component.clone(),
            message: "accessKey and secretKey are set together or not at all".into(),
        }),
    }
}

/// The service's error code and message, for errors the caller sees.
pub fn describe<E, R>(e: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("error"),
            service.message().unwrap_or("")
        ),
        None => aws_smithy_types::error::display::DisplayErrorContext(e).to_string(),
    }
}
