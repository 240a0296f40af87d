"""Prometheus metrics of a store node, served over HTTPS (or plain HTTP in tests) on the event loop.

Only what an operator needs to see a store's health: request counts and errors by
operation, request latency, and gauges read live from the node (term, leadership,
revisions, Raft indexes, watchers). No client library: the text format is simple.

With --metrics-cert-file/--metrics-key-file the port speaks TLS with the member's
certificate and requires a client certificate of --metrics-client-ca-file (the
CLUSTER CA, not the store CA: a store-CA certificate opens every key, so none is
handed to a scraper) whose subject has O=system:monitoring; anyone else gets 403.
"""

import asyncio
import bisect
import os
import ssl
import time
from collections import defaultdict

#: The group (certificate O) a scraper's client certificate must carry.
MONITORING_GROUP = "system:monitoring"
#: Seconds a caller has for the TLS handshake and for its request.
REQUEST_TIMEOUT = 5
#: Longest request head read; a longer one is answered 431.
MAX_REQUEST_HEAD = 8192

#: Latency histogram buckets in seconds, as Prometheus client libraries use.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LatencyHistogram:
    """One unlabelled histogram of seconds: the journal observes it, /metrics renders it."""

    def __init__(self, name, help_text):
        self.name, self.help = name, help_text
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds):
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds

    def render(self):
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        total = 0
        for bound, count in zip(BUCKETS + (float("inf"),), self.counts):
            total += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            lines.append(f'{self.name}_bucket{{le="{le}"}} {total}')
        lines += [f"{self.name}_sum {self.sum:.6f}", f"{self.name}_count {total}"]
        return lines


#: The journal's fdatasync latency, process-wide (etcd's etcd_disk_wal_fsync_duration_seconds):
#: store/journal.py observes every sync of appended Raft entries.
JOURNAL_FSYNC = LatencyHistogram("steer_store_journal_fsync_seconds",
                                 "Latency of the journal's fdatasync of appended Raft entries.")


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
        lines += JOURNAL_FSYNC.render()
        for name, (help_text, value) in sorted(self._gauges().items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
        return "\n".join(lines) + "\n"

    async def serve(self, host, port, context=None):
        """Serve GET /metrics and /healthz until cancelled (over TLS with ``context``)."""
        self._tls = context is not None
        extra = {"ssl": context, "ssl_handshake_timeout": REQUEST_TIMEOUT} if context else {}
        return await asyncio.start_server(self._handle, host, port, limit=MAX_REQUEST_HEAD,
                                          **extra)

    def decide(self, path, peercert):
        """(status line, body) for a GET of ``path`` by the holder of ``peercert``."""
        if getattr(self, "_tls", False) and MONITORING_GROUP not in certificate_groups(peercert):
            return "403 Forbidden", (f"Forbidden: the client certificate must be in group "
                                     f"{MONITORING_GROUP} (O={MONITORING_GROUP})\n")
        if path == "/metrics" or path.startswith("/metrics?"):
            return "200 OK", self.render()
        if path == "/healthz":
            return "200 OK", "ok\n"
        return "404 Not Found", "try /metrics or /healthz\n"

    async def _handle(self, reader, writer):
        try:
            try:
                request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"),
                                                  REQUEST_TIMEOUT)
            except (asyncio.LimitOverrunError, ValueError):
                status, body = "431 Request Header Fields Too Large", \
                    f"request head longer than {MAX_REQUEST_HEAD} bytes\n"
            else:
                parts = request.split(b" ", 2)
                path = parts[1].decode(errors="replace") if len(parts) > 2 else ""
                status, body = self.decide(path, writer.get_extra_info("peercert"))
            data = body.encode()
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n"
                         f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError,
                ssl.SSLError):
            pass
        finally:
            writer.close()


def certificate_groups(peercert):
    """The organizations (groups) in a verified client certificate's subject."""
    return [value for rdn in (peercert or {}).get("subject", ()) for key, value in rdn
            if key == "organizationName"]


def server_context(cert_file, key_file, client_ca_file):
    """TLS context of the metrics port: the member's certificate; clients of ``client_ca_file``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    _ReloadOnChange(context, cert_file, key_file)
    context.load_verify_locations(cafile=client_ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class _ReloadOnChange:
    """Load a renewed certificate pair into a server context, for new handshakes.

    Installed as the SNI callback, which OpenSSL calls in every handshake (SNI or not);
    it looks at the files at most once a second, so `steer up`'s renewals reach new
    connections without a restart (the handshake that notices still has the old pair:
    OpenSSL copied it into the connection). A half-written pair is tried again later.
    """

    def __init__(self, context, cert_file, key_file, clock=time.monotonic):
        self.context, self.files, self.clock = context, (cert_file, key_file), clock
        self.stamp, self.checked = self._stamp(), clock()
        context.sni_callback = self

    def _stamp(self):
        try:
            return tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in map(os.stat, self.files))
        except OSError:
            return None

    def __call__(self, ssl_socket, server_name, context):
        now = self.clock()
        if now - self.checked < 1.0:
            return None
        self.checked = now
        stamp = self._stamp()
        if stamp != self.stamp:
            try:
                self.context.load_cert_chain(*self.files)
                self.stamp = stamp
            except (OSError, ssl.SSLError):
                pass
        return None
