"""Prometheus metrics of a store node, served over plain HTTP on the event loop.

Only what an operator needs to see a store's health: request counts and errors by
operation, request latency, and gauges read live from the node (term, leadership,
revisions, Raft indexes, watchers). No client library: the text format is simple.
"""

import asyncio
import bisect
from collections import defaultdict

#: Latency histogram buckets in seconds, as Prometheus client libraries use.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class StoreMetrics:
    """Count requests and render every metric in the Prometheus text format."""

    def __init__(self, gauges):
        self._gauges = gauges                   # () -> {name: (help, value)}
        self._requests = defaultdict(int)       # (op, code) -> count
        self._latency = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self._latency_sum = defaultdict(float)

    def observe(self, op, code, seconds):
        """Record one answered request."""
        self._requests[(op, code)] += 1
        self._latency[op][bisect.bisect_left(BUCKETS, seconds)] += 1
        self._latency_sum[op] += seconds

    def render(self):
        lines = ["# HELP steer_store_requests_total Requests answered, by op and result code.",
                 "# TYPE steer_store_requests_total counter"]
        for (op, code), count in sorted(self._requests.items()):
            lines.append(f'steer_store_requests_total{{op="{op}",code="{code}"}} {count}')
        lines += ["# HELP steer_store_request_seconds Request latency by op.",
                  "# TYPE steer_store_request_seconds histogram"]
        for op, counts in sorted(self._latency.items()):
            total = 0
            for bound, count in zip(BUCKETS + (float("inf"),), counts):
                total += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                lines.append(f'steer_store_request_seconds_bucket{{op="{op}",le="{le}"}} {total}')
            lines.append(f'steer_store_request_seconds_sum{{op="{op}"}} {self._latency_sum[op]:.6f}')
            lines.append(f'steer_store_request_seconds_count{{op="{op}"}} {total}')
        for name, (help_text, value) in sorted(self._gauges().items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
        return "\n".join(lines) + "\n"

    async def serve(self, host, port):
        """Serve GET /metrics and /healthz until cancelled."""
        return await asyncio.start_server(self._handle, host, port)

    async def _handle(self, reader, writer):
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = request.split(b" ", 2)[1].decode(errors="replace") if b" " in request else ""
            if path.startswith("/metrics"):
                status, body = "200 OK", self.render()
            elif path.startswith("/healthz"):
                status, body = "200 OK", "ok\n"
            else:
                status, body = "404 Not Found", "try /metrics or /healthz\n"
            data = body.encode()
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n"
                         f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        finally:
            writer.close()

