"""Reads committed Tempest blocks with DuckDB, as docs/block-format.md shows, and prints a JSON
summary: span count, services, and the root span names of error traces.

Usage: read_blocks.py TENANT_FOLDER
"""
import glob
import json
import os
import sys

import duckdb

folder = sys.argv[1]
files = [os.path.join(os.path.dirname(m), "data.parquet") for m in glob.glob(os.path.join(folder, "*", "meta.json"))]
con = duckdb.connect()
rel = f"read_parquet({files!r})"
spans = con.execute(f"SELECT count(*) FROM {rel}").fetchone()[0]
services = [r[0] for r in con.execute(f"SELECT DISTINCT service_name FROM {rel} ORDER BY 1").fetchall()]
errors = [r[0] for r in con.execute(f"SELECT name FROM {rel} WHERE status_code = 2 ORDER BY name").fetchall()]
methods = [r[0] for r in con.execute(f"SELECT http_request_method FROM {rel} WHERE http_request_method IS NOT NULL").fetchall()]
traces = con.execute(f"SELECT count(DISTINCT hex(trace_id)) FROM {rel}").fetchone()[0]
# A generic attribute, queried the way docs/block-format.md shows.
retries = [r[0] for r in con.execute(
    f"SELECT a->1 FROM (SELECT unnest(CAST(attributes AS JSON[])) AS a FROM {rel} WHERE attributes <> '') WHERE a->>0 = 'retries'"
).fetchall()]
print(json.dumps({"spans": spans, "services": services, "errors": errors, "methods": methods, "traces": traces, "retries": retries}))
