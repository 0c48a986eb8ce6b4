"""Exports a small trace with the real OpenTelemetry Python SDK over OTLP/HTTP (protobuf),
OTLP/gRPC or Zipkin v2 JSON (the SDK's Zipkin exporter).

Usage: otel_export.py http|grpc|zipkin ENDPOINT TENANT
Prints the trace id (32 hex digits) on the first line and, on the second, a JSON description of
every exported span as the SDK saw it, for a field-by-field comparison. Exits 0 only if the
exporter reported success.
"""
import json
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import Status, StatusCode

protocol, endpoint, tenant = sys.argv[1], sys.argv[2], sys.argv[3]
results = []
exported = []
if protocol == "grpc":
    exporter = GrpcExporter(endpoint=endpoint, insecure=True, headers=(("x-scope-orgid", tenant),))
elif protocol == "zipkin":
    exporter = ZipkinExporter(endpoint=endpoint)
else:
    exporter = HttpExporter(endpoint=endpoint, headers={"X-Scope-OrgID": tenant})
inner_export = exporter.export


def value(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def describe(span):
    ctx = span.get_span_context()
    return {
        "traceId": format(ctx.trace_id, "032x"),
        "spanId": format(ctx.span_id, "016x"),
        "parentSpanId": format(span.parent.span_id, "016x") if span.parent else None,
        "name": span.name,
        "kind": span.kind.value + 1,  # OTLP numbers SpanKind from 1 (internal)
        "start": span.start_time,
        "end": span.end_time,
        "attributes": {k: value(v) for k, v in span.attributes.items()},
        "events": [{"name": e.name, "time": e.timestamp, "attributes": {k: value(v) for k, v in e.attributes.items()}} for e in span.events],
        "status": {"code": span.status.status_code.value, "message": span.status.description or ""},
        "resource": {k: value(v) for k, v in span.resource.attributes.items()},
        "scope": {"name": span.instrumentation_scope.name, "version": span.instrumentation_scope.version or ""},
        "traceState": span.get_span_context().trace_state.to_header(),
        "flags": int(ctx.trace_flags),
    }


def recording_export(spans):
    result = inner_export(spans)
    results.append(result)
    exported.extend(describe(s) for s in spans)
    return result


exporter.export = recording_export
provider = TracerProvider(resource=Resource.create({"service.name": "py-checkout", "deployment.environment": "test"}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("tempest-test", "1.2.3")

with tracer.start_as_current_span("GET /orders", kind=trace.SpanKind.SERVER) as root:
    root.set_attribute("http.request.method", "GET")
    root.set_attribute("http.response.status_code", 200)
    root.set_attribute("retries", [1, 2, 3])
    root.set_attribute("ratio", 0.25)
    root.set_attribute("cached", False)
    with tracer.start_as_current_span("SELECT orders", kind=trace.SpanKind.CLIENT) as child:
        child.set_attribute("db.system", "postgresql")
        child.add_event("rows", {"count": 3})
        child.set_status(Status(StatusCode.ERROR, "timeout"))
    trace_id = root.get_span_context().trace_id

provider.shutdown()
print(format(trace_id, "032x"))
print(json.dumps(exported))
sys.exit(0 if results and all(r == SpanExportResult.SUCCESS for r in results) else 1)
