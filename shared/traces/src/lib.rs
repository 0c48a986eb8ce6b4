//! The span model every receiver maps into, and the receivers: OTLP (protobuf and JSON) and
//! Zipkin v2 JSON. Decoding only; storing spans is the block format's job.

#[cfg(not(target_arch = "wasm32"))]
pub mod grpc;
pub mod jaeger;
pub mod model;
pub mod otlp;
pub mod receivers;
pub mod thrift;
pub mod zipkin;

pub use model::{AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanKind};

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a valid message of the protocol.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// A field has a value the protocol forbids (e.g. a trace id of the wrong length).
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What was wrong.
        message: String,
    },
}
