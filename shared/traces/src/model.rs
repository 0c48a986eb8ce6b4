//! Tempest's span model: everything OTLP carries, so no receiver loses a field.

use std::sync::Arc;

/// An attribute value (OTLP `AnyValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum AnyValue {
    /// UTF-8 string.
    Str(String),
    /// Boolean.
    Bool(bool),
    /// 64-bit integer.
    Int(i64),
    /// 64-bit float.
    Double(f64),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// Array of values.
    Array(Vec<AnyValue>),
    /// Nested key/value list.
    KvList(Vec<KeyValue>),
}

/// One attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    /// Attribute name.
    pub key: String,
    /// Its value.
    pub value: AnyValue,
}

impl KeyValue {
    /// A string attribute.
    pub fn str(key: &str, value: &str) -> Self {
        KeyValue {
            key: key.into(),
            value: AnyValue::Str(value.into()),
        }
    }
}

/// The entity that produced spans (OTLP `Resource`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    /// Resource attributes (`service.name`, …).
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer dropped.
    pub dropped_attributes_count: u32,
}

impl Resource {
    /// `service.name`, if set as a string.
    pub fn service_name(&self) -> Option<&str> {
        self.attributes
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match &kv.value {
                AnyValue::Str(s) => Some(s.as_str()),
                _ => None,
            })
    }
}

/// The instrumentation scope (OTLP `InstrumentationScope`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// Scope name.
    pub name: String,
    /// Scope version.
    pub version: String,
    /// Scope attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer dropped.
    pub dropped_attributes_count: u32,
}

/// Span kind, with OTLP's numeric values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SpanKind {
    /// Not specified.
    #[default]
    Unspecified = 0,
    /// Internal operation.
    Internal = 1,
    /// Server side of a call.
    Server = 2,
    /// Client side of a call.
    Client = 3,
    /// Message producer.
    Producer = 4,
    /// Message consumer.
    Consumer = 5,
}

impl SpanKind {
    /// From OTLP's number; unknown numbers are unspecified.
    pub fn from_i32(v: i32) -> Self {
        match v {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }
}

/// A timed event within a span.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When, in Unix nanoseconds.
    pub time_unix_nano: u64,
    /// Event name.
    pub name: String,
    /// Attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer dropped.
    pub dropped_attributes_count: u32,
}

/// A link to another span.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// Linked trace.
    pub trace_id: [u8; 16],
    /// Linked span.
    pub span_id: [u8; 8],
    /// W3C tracestate of the link.
    pub trace_state: String,
    /// Attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer dropped.
    pub dropped_attributes_count: u32,
    /// W3C trace flags of the link.
    pub flags: u32,
}

/// One span, with its resource and scope shared among the spans of a batch. The default is an
/// empty span (zero ids, empty resource and scope), for building spans field by field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Span {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// Span id.
    pub span_id: [u8; 8],
    /// Parent span id; `None` for a root span.
    pub parent_span_id: Option<[u8; 8]>,
    /// W3C tracestate.
    pub trace_state: String,
    /// W3C trace flags.
    pub flags: u32,
    /// Operation name.
    pub name: String,
    /// Kind.
    pub kind: SpanKind,
    /// Start, Unix nanoseconds.
    pub start_unix_nano: u64,
    /// End, Unix nanoseconds.
    pub end_unix_nano: u64,
    /// Span attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer dropped.
    pub dropped_attributes_count: u32,
    /// Events.
    pub events: Vec<Event>,
    /// Events the producer dropped.
    pub dropped_events_count: u32,
    /// Links.
    pub links: Vec<Link>,
    /// Links the producer dropped.
    pub dropped_links_count: u32,
    /// Status code: 0 unset, 1 ok, 2 error (OTLP numbers).
    pub status_code: i32,
    /// Status message.
    pub status_message: String,
    /// The producing resource.
    pub resource: Arc<Resource>,
    /// The instrumentation scope.
    pub scope: Arc<Scope>,
}

impl Span {
    /// Duration in nanoseconds (0 when the end precedes the start).
    pub fn duration_nano(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }
}
