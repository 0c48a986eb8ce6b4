//! Lambda's payload limits, answered clearly. Requests over 6 MB never reach the function (the
//! function URL or API Gateway refuses them with 413); a response over Lambda's 6 MB would only
//! become an opaque invocation failure, so the host turns it into a 500 that says why.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Lambda's limit on a synchronous invocation's response, the JSON envelope included.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// Room kept for the envelope: status, headers, JSON quoting.
const ENVELOPE: usize = 64 * 1024;

/// Buffers the response (`lambda_http` does so anyway) and refuses it when its body, as the
/// envelope will carry it (base64 for binary types), would not fit.
pub async fn response_size(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let (parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_RESPONSE_BYTES).await {
        Ok(b) => b,
        Err(_) => return too_large(None),
    };
    let text = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/") || t.contains("json") || t.contains("xml"));
    let carried = if text {
        bytes.len()
    } else {
        bytes.len().div_ceil(3) * 4
    };
    if carried + ENVELOPE > MAX_RESPONSE_BYTES {
        return too_large(Some(bytes.len()));
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn too_large(size: Option<usize>) -> Response {
    let size = size.map_or_else(|| "more than 6 MB".to_owned(), |n| format!("{n} bytes"));
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "the response ({size}) does not fit AWS Lambda's 6 MB response limit: ask for less \
             (a narrower search, a smaller limit or time range)\n"
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn status_of(router: &Router, path: &str) -> (StatusCode, usize) {
        let resp = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, body.len())
    }

    #[tokio::test]
    async fn responses_that_cannot_fit_are_refused_clearly() {
        let router = Router::new()
            .route(
                "/json",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        "x".repeat(5 << 20),
                    )
                }),
            )
            .route(
                "/binary",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "application/x-protobuf")],
                        vec![0u8; 5 << 20],
                    )
                }),
            )
            .route(
                "/huge",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        "x".repeat(7 << 20),
                    )
                }),
            )
            .route(
                "/small",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "application/x-protobuf")],
                        vec![1u8; 1000],
                    )
                }),
            )
            .layer(axum::middleware::from_fn(response_size));
        // 5 MB of JSON fits; 5 MB of protobuf is 6.7 MB as base64 and does not.
        assert_eq!(status_of(&router, "/json").await, (StatusCode::OK, 5 << 20));
        assert_eq!(status_of(&router, "/small").await, (StatusCode::OK, 1000));
        for path in ["/binary", "/huge"] {
            let (status, len) = status_of(&router, path).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
            assert!(len < 1000, "{path}: a short explanation");
        }
    }
}
