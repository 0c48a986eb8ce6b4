//! The custom-handler payloads the Functions host exchanges for non-HTTP triggers
//! (<https://learn.microsoft.com/azure/azure-functions/functions-custom-handlers>): a request
//! with `Data` (by binding name) and `Metadata`, answered with `Outputs`, `Logs` and
//! `ReturnValue`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the host POSTs to `/<function name>`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationRequest {
    /// Trigger and input binding data, by binding name.
    pub data: HashMap<String, Value>,
    /// Trigger metadata (`sys.MethodName`, `sys.UtcNow`, …).
    #[serde(default)]
    pub metadata: HashMap<String, Value>,
}

/// A timer trigger's data (`Data.timer`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimerInfo {
    /// Set when the host runs an invocation it missed.
    #[serde(default)]
    pub is_past_due: bool,
}

/// What the handler answers.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationResponse {
    /// Output binding values, by binding name.
    pub outputs: HashMap<String, Value>,
    /// Lines for the invocation log (Application Insights).
    pub logs: Vec<String>,
    /// The `$return` binding's value.
    pub return_value: Value,
}
