"""Sends a small trace with the OpenTelemetry Jaeger Thrift exporter to a Jaeger collector
endpoint (`POST /api/traces`, Thrift binary over HTTP).

Usage: jaeger_export.py COLLECTOR_URL
Prints the trace id; exits 0 only if the exporter reported success.
"""
import sys

from opentelemetry import trace
from opentelemetry.exporter.jaeger.thrift import JaegerExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

results = []
exporter = JaegerExporter(collector_endpoint=sys.argv[1])
inner_export = exporter.export


def recording_export(spans):
    result = inner_export(spans)
    results.append(result)
    return result


exporter.export = recording_export
provider = TracerProvider(resource=Resource.create({"service.name": "jaeger-py"}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("jaeger-test")
with tracer.start_as_current_span("checkout", kind=trace.SpanKind.SERVER) as root:
    root.set_attribute("http.request.method", "POST")
    with tracer.start_as_current_span("charge", kind=trace.SpanKind.CLIENT) as child:
        child.add_event("retry", {"attempt": 2})
    trace_id = root.get_span_context().trace_id
provider.shutdown()
print(format(trace_id, "032x"))
sys.exit(0 if results and all(r == SpanExportResult.SUCCESS for r in results) else 1)
