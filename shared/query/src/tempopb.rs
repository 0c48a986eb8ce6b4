//! Tempo's response messages (`pkg/tempopb/tempo.proto`, package `tempopb`), for the protobuf
//! answers Grafana asks for with `Accept: application/protobuf`. Tempo's trace protos are OTLP's
//! with the package renamed, so a `Trace` is OTLP's `TracesData` on the wire.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

/// `tempopb.Trace`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Trace {
    /// The trace's spans by resource and scope.
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `tempopb.TraceByIDMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdMetrics {
    /// Bytes read to answer.
    #[prost(uint64, tag = "1")]
    pub inspected_bytes: u64,
}

/// `tempopb.TraceByIDResponse` (`/api/v2/traces/{id}`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdResponse {
    /// The trace.
    #[prost(message, optional, tag = "1")]
    pub trace: Option<Trace>,
    /// What the lookup cost.
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<TraceByIdMetrics>,
    /// `COMPLETE` (0) or `PARTIAL` (1).
    #[prost(int32, tag = "3")]
    pub status: i32,
    /// Why the trace is partial.
    #[prost(string, tag = "4")]
    pub message: String,
}

/// `tempopb.Span` of a search result.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct SearchSpan {
    /// Span id, 16 hex digits.
    #[prost(string, tag = "1")]
    pub span_id: String,
    /// Span name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Start, Unix ns.
    #[prost(uint64, tag = "3")]
    pub start_time_unix_nano: u64,
    /// Duration, ns.
    #[prost(uint64, tag = "4")]
    pub duration_nanos: u64,
    /// The attributes the query touched or selected.
    #[prost(message, repeated, tag = "5")]
    pub attributes: Vec<KeyValue>,
}

/// `tempopb.SpanSet`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct SpanSet {
    /// Up to `spss` matched spans.
    #[prost(message, repeated, tag = "1")]
    pub spans: Vec<SearchSpan>,
    /// How many spans matched in all.
    #[prost(uint32, tag = "2")]
    pub matched: u32,
    /// Spanset attributes (`by()` keys, aggregates).
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
}

/// `tempopb.TraceSearchMetadata`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct TraceSearchMetadata {
    /// Trace id, hex without leading zeros (as Tempo prints it).
    #[prost(string, tag = "1")]
    pub trace_id: String,
    /// `service.name` of the root span.
    #[prost(string, tag = "2")]
    pub root_service_name: String,
    /// Name of the root span.
    #[prost(string, tag = "3")]
    pub root_trace_name: String,
    /// Earliest span start, Unix ns.
    #[prost(uint64, tag = "4")]
    pub start_time_unix_nano: u64,
    /// Trace duration, ms.
    #[prost(uint32, tag = "5")]
    pub duration_ms: u32,
    /// The first spanset (deprecated by Tempo, still read by Grafana).
    #[prost(message, optional, tag = "6")]
    pub span_set: Option<SpanSet>,
    /// Every spanset.
    #[prost(message, repeated, tag = "7")]
    pub span_sets: Vec<SpanSet>,
}

/// `tempopb.SearchMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchMetrics {
    /// Traces evaluated.
    #[prost(uint32, tag = "1")]
    pub inspected_traces: u32,
    /// Bytes read.
    #[prost(uint64, tag = "2")]
    pub inspected_bytes: u64,
    /// Blocks in the time range.
    #[prost(uint32, tag = "3")]
    pub total_blocks: u32,
    /// Jobs finished.
    #[prost(uint32, tag = "4")]
    pub completed_jobs: u32,
    /// Jobs planned.
    #[prost(uint32, tag = "5")]
    pub total_jobs: u32,
    /// Bytes of the blocks in the time range.
    #[prost(uint64, tag = "6")]
    pub total_block_bytes: u64,
    /// Spans evaluated.
    #[prost(uint64, tag = "7")]
    pub inspected_spans: u64,
}

/// `tempopb.SearchResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SearchResponse {
    /// Matching traces.
    #[prost(message, repeated, tag = "1")]
    pub traces: Vec<TraceSearchMetadata>,
    /// What the search cost.
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<SearchMetrics>,
}
