"""moto's server, with each request handled alone, as AWS's own services behave.

`moto_server` serves requests on threads, and its backends check a condition and then write
without a lock: two DynamoDB `PutItem`s with the same `ConditionExpression`, or two S3 PUTs with
the same `If-Match`, can both succeed. DynamoDB and S3 make such writes atomic, and the tests
rely on that (an ETag race must have exactly one winner), so this server runs requests one at a
time, except SQS's `ReceiveMessage`: a long poll would otherwise hold up the publish it is
waiting for.

Usage: python moto_atomic.py -H 127.0.0.1 -p PORT
"""

import argparse
import io
import os
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

_one_at_a_time = threading.Lock()


def _may_wait(environ):
    """An SQS `ReceiveMessage`, which may long-poll, in either of SQS's protocols: JSON
    (`X-Amz-Target`) or query (a form, put back after reading for moto to read)."""
    if environ.get("HTTP_X_AMZ_TARGET", "") == "AmazonSQS.ReceiveMessage":
        return True
    if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return False
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return b"Action=ReceiveMessage" in body


def serve(app):
    def serialised(environ, start_response):
        if _may_wait(environ):
            return app(environ, start_response)
        with _one_at_a_time:
            # The response is produced inside the lock: a WSGI body may be lazy.
            return list(app(environ, start_response))

    return serialised


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    # moto builds queue URLs from it, as `moto_server` does.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        serve(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
