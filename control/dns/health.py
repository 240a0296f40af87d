"""Serve /healthz, /readyz and /metrics over plain HTTP for the DNS server's probes.

/healthz answers 200 while the event loop runs (a liveness probe); /readyz
answers 200 only once the informers hold their first full list, so a
Deployment's Service sends no question to a copy that would answer NXDOMAIN
for a name it has not read yet; /metrics is Prometheus text.
"""

import asyncio

REQUEST_TIMEOUT = 5.0
MAX_REQUEST = 8192


def metrics_text(stats, ready):
    """The Prometheus text of a handler's counters and the readiness gauge."""
    lines = ["# TYPE steer_dns_ready gauge", f"steer_dns_ready {1 if ready else 0}",
             "# TYPE steer_dns_queries_total counter"]
    for transport in ("udp", "tcp"):
        lines.append(f'steer_dns_queries_total{{transport="{transport}"}} '
                     f'{stats.get("queries_" + transport, 0)}')
    lines.append("# TYPE steer_dns_responses_total counter")
    for key in sorted(k for k in stats if k.startswith("rcode_")):
        lines.append(f'steer_dns_responses_total{{rcode="{key[6:]}"}} {stats[key]}')
    for name in ("forwarded", "forward_failures", "truncated", "dropped"):
        lines += [f"# TYPE steer_dns_{name}_total counter",
                  f"steer_dns_{name}_total {stats.get(name, 0)}"]
    return "\n".join(lines) + "\n"


async def serve_health(host, port, ready, stats):
    """Start the probe server on host:port; ``ready()`` says whether caches are synced."""

    async def handle(reader, writer):
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            parts = request[:MAX_REQUEST].split(b" ", 2)
            path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
            status, body = "404 Not Found", "not found\n"
            if path.startswith("/healthz"):
                status, body = "200 OK", "ok\n"
            elif path.startswith("/readyz"):
                status, body = (("200 OK", "ok\n") if ready()
                                else ("503 Service Unavailable", "informers not synced\n"))
            elif path.startswith("/metrics"):
                status, body = "200 OK", metrics_text(stats, ready())
            data = body.encode()
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n"
                         f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                         + data)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError, OSError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, reuse_address=True,
                                      limit=MAX_REQUEST)
