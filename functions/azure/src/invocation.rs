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

/// A Storage Queue message as the queue trigger hands it over (`Data.msg`, `Metadata.Id`,
/// `Metadata.DequeueCount`).
#[derive(Debug)]
pub struct QueueMessage {
    /// The message id.
    pub id: String,
    /// Its text as bytes; the host has already decoded base64 messages. A JSON message may
    /// arrive parsed, and is written back as JSON.
    pub data: bytes::Bytes,
    /// How many times it has been handed out, this time included.
    pub dequeue_count: u32,
}

impl QueueMessage {
    /// Reads the invocation the host POSTs for a queue trigger whose binding is named `msg`.
    pub fn from_invocation(body: &[u8]) -> Result<Self, String> {
        let inv: InvocationRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let data = match inv.data.get("msg") {
            Some(Value::String(text)) => text.clone().into_bytes(),
            Some(Value::Null) | None => return Err("the invocation has no Data.msg".into()),
            Some(other) => serde_json::to_vec(other).map_err(|e| e.to_string())?,
        };
        // Metadata values arrive as JSON, some as strings of JSON.
        let meta = |k: &str| inv.metadata.get(k).cloned().unwrap_or(Value::Null);
        let id = match meta("Id") {
            Value::String(s) => s.trim_matches('"').to_owned(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let dequeue_count = match meta("DequeueCount") {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1);
        Ok(QueueMessage {
            id,
            data: data.into(),
            dequeue_count,
        })
    }
}
