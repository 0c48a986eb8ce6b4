//! `/v1.0/secrets/{store}/{name}` and `/bulk`, filtered by the store's secret scope.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::request_metadata;
use crate::runtime::SecretComponent;
use crate::secrets::SecretError;
use crate::{ApiError, Runtime};

fn component<'a>(rt: &'a Runtime, name: &str) -> Result<&'a SecretComponent, ApiError> {
    if rt.secrets.is_empty() {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_SECRET_STORES_NOT_CONFIGURED",
            "secret store is not configured",
        ));
    }
    // Dapr's runtime answers 401 here (its docs say 400).
    rt.secrets.get(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "ERR_SECRET_STORE_NOT_FOUND",
            format!("failed finding secret store with key {name}"),
        )
    })
}

fn get_failed(store: &str, name: &str, e: SecretError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_SECRET_GET",
        format!("failed getting secret with key {name} from secret store {store}: {e}"),
    )
}

/// `GET /v1.0/secrets/{store}/{name}`.
pub(super) async fn get(
    State(rt): State<Arc<Runtime>>,
    Path((store, name)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let comp = component(&rt, &store)?;
    if !comp.scope.allows(&name) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ERR_PERMISSION_DENIED",
            format!("access denied by policy to get {name:?} from {store:?}"),
        ));
    }
    let secret = comp
        .store
        .get(&name, &request_metadata(&uri))
        .await
        .map_err(|e| get_failed(&store, &name, e))?;
    if secret.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok((StatusCode::OK, axum::Json(secret)).into_response())
}

/// `GET /v1.0/secrets/{store}/bulk`.
pub(super) async fn bulk(
    State(rt): State<Arc<Runtime>>,
    Path(store): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let comp = component(&rt, &store)?;
    let mut all = comp
        .store
        .bulk(&request_metadata(&uri))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_SECRET_GET",
                format!("failed getting secrets from secret store {store}: {e}"),
            )
        })?;
    all.retain(|name, _| comp.scope.allows(name));
    Ok((StatusCode::OK, axum::Json(all)).into_response())
}
