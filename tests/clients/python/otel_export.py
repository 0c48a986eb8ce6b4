"""Exports a small trace with the real OpenTelemetry Python SDK over OTLP/HTTP (protobuf) or
OTLP/gRPC.

Usage: otel_export.py http|grpc ENDPOINT TENANT
Prints the trace id (32 hex digits) and exits 0 only if the exporter reported success.
"""
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import Status, StatusCode

protocol, endpoint, tenant = sys.argv[1], sys.argv[2], sys.argv[3]
results = []
if protocol == "grpc":
    exporter = GrpcExporter(endpoint=endpoint, insecure=True, headers=(("x-scope-orgid", tenant),))
else:
    exporter = HttpExporter(endpoint=endpoint, headers={"X-Scope-OrgID": tenant})
inner_export = exporter.export


def recording_export(spans):
    result = inner_export(spans)
    results.append(result)
    return result


exporter.export = recording_export
provider = TracerProvider(resource=Resource.create({"service.name": "py-checkout", "deployment.environment": "test"}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("tempest-test", "1.2.3")

with tracer.start_as_current_span("GET /orders", kind=trace.SpanKind.SERVER) as root:
    root.set_attribute("http.request.method", "GET")
    root.set_attribute("http.response.status_code", 200)
    root.set_attribute("retries", [1, 2, 3])
    with tracer.start_as_current_span("SELECT orders", kind=trace.SpanKind.CLIENT) as child:
        child.set_attribute("db.system", "postgresql")
        child.add_event("rows", {"count": 3})
        child.set_status(Status(StatusCode.ERROR, "timeout"))
    trace_id = root.get_span_context().trace_id

provider.shutdown()
print(format(trace_id, "032x"))
sys.exit(0 if results and all(r == SpanExportResult.SUCCESS for r in results) else 1)
