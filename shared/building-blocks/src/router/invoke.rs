//! `/v1.0/invoke/{app-id}/method/{method}` and the `dapr-app-id` header form.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::Extensions;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::{header, read_body};
use crate::invoke::{InvokeRequest, invoke};
use crate::{ApiError, Runtime};

/// The caller's address, when the host serves with connection info.
#[cfg(not(target_arch = "wasm32"))]
fn client_addr(extensions: &Extensions) -> Option<std::net::IpAddr> {
    use axum::extract::ConnectInfo;
    extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
}

/// A WebAssembly component is told no peer address by its host.
#[cfg(target_arch = "wasm32")]
fn client_addr(_extensions: &Extensions) -> Option<std::net::IpAddr> {
    None
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    rt: &Runtime,
    method: Method,
    app_id: String,
    path: String,
    uri: &Uri,
    headers: HeaderMap,
    client: Option<std::net::IpAddr>,
    body: Body,
) -> Response {
    let body = match read_body(rt, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let req = InvokeRequest {
        method,
        app_id,
        path,
        query: uri.query().map(str::to_owned),
        headers,
        client,
        body,
    };
    match invoke(rt, req).await {
        Ok(resp) => (resp.status, resp.headers, resp.body).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Any verb on `/v1.0/invoke/{app_id}/method/{*method}`.
pub(super) async fn by_path(
    State(rt): State<Arc<Runtime>>,
    Path((app_id, method_path)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
    body: Body,
) -> Response {
    forward(
        &rt,
        method,
        app_id,
        method_path,
        &uri,
        headers,
        client_addr(&extensions),
        body,
    )
    .await
}

/// Any request no other route matched: an invocation when it carries `dapr-app-id`
/// (the whole path is the method), otherwise 404.
pub(super) async fn by_header(
    State(rt): State<Arc<Runtime>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
    body: Body,
) -> Response {
    let Some(app_id) = header(&headers, "dapr-app-id").map(str::to_owned) else {
        if uri.path().starts_with("/v1.0/invoke/") {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                "ERR_DIRECT_INVOKE",
                "failed getting app id either from the URL path or the header dapr-app-id",
            )
            .into_response();
        }
        return (StatusCode::NOT_FOUND, "404 page not found").into_response();
    };
    let path = uri.path().trim_start_matches('/').to_owned();
    forward(
        &rt,
        method,
        app_id,
        path,
        &uri,
        headers,
        client_addr(&extensions),
        body,
    )
    .await
}
