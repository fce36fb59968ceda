#!/usr/bin/env python3
"""Times N sequential status commands on one model over one keep-alive connection.

    bench-write-path.py PORT TOKEN MODEL N   -> "MODEL: N commands, p50 .. ms, p99 .. ms, ../s"
"""
import http.client
import json
import sys
import time

port, token, model, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
conn = http.client.HTTPConnection("127.0.0.1", int(port))
headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
latencies = []
started = time.time()
for i in range(n):
    status = "degraded" if i % 2 == 0 else "operational"
    sent = time.perf_counter()
    conn.request("PUT", f"/v1/models/{model}/status", json.dumps({"status": status}), headers)
    response = conn.getresponse()
    response.read()
    latencies.append(time.perf_counter() - sent)
    if response.status != 200:
        sys.exit(f"{model}: command {i} answered {response.status}")
latencies.sort()
print(
    f"{model}: {n} commands, p50 {latencies[n // 2] * 1000:.2f} ms, "
    f"p99 {latencies[int(n * 0.99)] * 1000:.2f} ms, {n / (time.time() - started):.0f}/s"
)
