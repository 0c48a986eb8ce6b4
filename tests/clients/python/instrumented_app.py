"""A small shop instrumented the usual way: a WSGI app under OpenTelemetry's WSGI middleware,
calling its own backend routes with `requests` under OpenTelemetry's requests instrumentation,
exporting with the SDK's BatchSpanProcessor and OTLP/HTTP exporter at their default settings.
Serves and calls itself CHECKOUTS times, flushes, and prints the number of spans it ended.

Usage: instrumented_app.py OTLP_TRACES_URL CHECKOUTS
"""
import random
import sys
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

endpoint, checkouts = sys.argv[1], int(sys.argv[2])


class Counting(SpanExporter):
    """Counts what the real exporter sends successfully."""

    def __init__(self, inner):
        self.inner, self.sent = inner, 0

    def export(self, spans):
        result = self.inner.export(spans)
        if result.name == "SUCCESS":
            self.sent += len(spans)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return self.inner.force_flush(timeout_millis)


exporter = Counting(OTLPSpanExporter(endpoint=endpoint))
provider = TracerProvider(resource=Resource.create({"service.name": "shop", "deployment.environment": "bench"}))
provider.add_span_processor(BatchSpanProcessor(exporter))
trace.set_tracer_provider(provider)
RequestsInstrumentor().instrument()
tracer = trace.get_tracer("shop")
session = requests.Session()
base = ""


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/checkout":
        item = random.randint(1, 500)
        with tracer.start_as_current_span("load cart") as span:
            span.set_attribute("cart.items", random.randint(1, 5))
        # The handler runs on the server's thread: it calls the backend without the client's session.
        requests.get(f"{base}/inventory/{item}")
        requests.get(f"{base}/price/{item}")
        body = b'{"ok":true}'
    elif path.startswith("/inventory/") or path.startswith("/price/"):
        body = b'{"n":1}'
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


class Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", 0, OpenTelemetryMiddleware(app), server_class=Threading, handler_class=Quiet)
base = f"http://127.0.0.1:{server.server_port}"
threading.Thread(target=server.serve_forever, daemon=True).start()
random.seed(7)
for _ in range(checkouts):
    session.get(f"{base}/checkout").raise_for_status()
provider.force_flush()
provider.shutdown()
server.shutdown()
print(exporter.sent)
