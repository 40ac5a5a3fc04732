"""Cached token.get round trips through the Python SDK (sdk/python), one
connection, sequential; prints one JSON summary like valetkey-bench's.
Usage: sdk_latency.py AGENT PROVIDER SCOPE REQUESTS (socket from the environment)."""

import json
import sys
import time

import valetkey

agent, provider, scope, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
vk = valetkey.Client(agent, purpose="SDK latency comparison")
for _ in range(100):
    vk.token(provider, [scope])
ns = []
start = time.perf_counter()
for _ in range(n):
    t = time.perf_counter_ns()
    vk.token(provider, [scope])
    ns.append(time.perf_counter_ns() - t)
secs = time.perf_counter() - start
ns.sort()
pct = lambda p: ns[min(len(ns) - 1, int(p / 100 * len(ns)))] / 1000
print(json.dumps({"requests": n, "errors": 0, "rps": round(n / secs, 1), "p50_us": pct(50), "p99_us": pct(99)}))
