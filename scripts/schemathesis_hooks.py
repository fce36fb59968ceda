"""Schemathesis hooks for scripts/schemathesis.sh: how to send an NDJSON request body.

`POST /v1/imports` takes `application/x-ndjson`, one JSON document per line, described by the
schema of one line. Schemathesis has no serializer for it: each generated value becomes one line
(a generated list, several lines); bytes are sent as they are.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, (bytes, bytearray)):
        return {"data": bytes(value)}
    items = value if isinstance(value, list) else [value]
    lines = (json.dumps(item, default=str) for item in items)
    return {"data": "\n".join(lines).encode()}
