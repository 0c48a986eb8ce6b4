//! AWS SDK configuration from Dapr's AWS component metadata (`region`, `endpoint`,
//! `accessKey`, `secretKey`, `sessionToken`), shared by every AWS component. Without keys the
//! SDK's default chain applies: a Lambda's role, the environment, a profile.

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;

use crate::ComponentError;
use crate::metadata::Metadata;

/// The SDK configuration one component's metadata describes.
pub async fn sdk_config(md: &Metadata) -> Result<aws_config::SdkConfig, ComponentError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = md.get("region") {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    if let Some(endpoint) = md.get("endpoint") {
        loader = loader.endpoint_url(endpoint);
    }
    match (md.get("accessKey"), md.get("secretKey")) {
        (Some(key), Some(secret)) => {
            loader = loader.credentials_provider(Credentials::new(
                key,
                secret,
                md.get("sessionToken").map(str::to_owned),
                None,
                "dapr-component-metadata",
            ));
        }
        (None, None) => {}
        _ => {
            return Err(ComponentError::Invalid {
                component: md.component.clone(),
                message: "accessKey and secretKey are set together or not at all".into(),
            });
        }
    }
    Ok(loader.load().await)
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
