//! The Dapr HTTP API error body: `{"errorCode": "ERR_…", "message": "…"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered in Dapr's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Dapr `errorCode`, e.g. `ERR_STATE_STORE_NOT_FOUND`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `google.rpc.ErrorInfo` reason for Dapr's richer error model, e.g. `DAPR_STATE_NOT_FOUND`.
    pub reason: Option<&'static str>,
}

impl ApiError {
    /// An error with status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            reason: None,
        }
    }

    /// Adds the `ErrorInfo` reason shown in `details`.
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// 400 `ERR_MALFORMED_REQUEST`.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST", message)
    }

    /// The JSON body Dapr sends.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({"errorCode": self.code, "message": self.message});
        if let Some(reason) = self.reason {
            body["details"] = json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "domain": "dapr.io",
                "reason": reason,
                "metadata": {},
            }]);
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
