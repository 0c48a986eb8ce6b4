//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` (Tempo's default
//! port 4317). The tenant comes from the `x-scope-orgid` metadata entry, as in Tempo.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tempest_core::TenantId;
use tonic::{Request, Response, Status};

use crate::otlp;
use crate::receivers::SpanSink;

/// The gRPC trace service.
pub struct OtlpGrpc {
    sink: Arc<dyn SpanSink>,
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let raw = request
            .metadata()
            .get("x-scope-orgid")
            .map(|v| {
                v.to_str()
                    .map_err(|_| Status::invalid_argument("x-scope-orgid is not text"))
            })
            .transpose()?;
        let tenant = TenantId::parse(raw).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let decoded = otlp::from_request(request.into_inner());
        if !decoded.spans.is_empty() {
            self.sink.commit(tenant, decoded.spans).await.map_err(|e| {
                Status::unavailable(format!("spans could not be stored, retry later: {e}"))
            })?;
        }
        let partial_success = (decoded.rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: decoded.rejected as i64,
            error_message: decoded.rejection.unwrap_or_default(),
        });
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success,
        }))
    }
}

/// The tonic service for `TraceService`, accepting gzip and messages up to `max_body` bytes.
pub fn service(sink: Arc<dyn SpanSink>, max_body: usize) -> TraceServiceServer<OtlpGrpc> {
    TraceServiceServer::new(OtlpGrpc { sink })
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(max_body)
}
