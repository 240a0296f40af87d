"""The agent's HTTP port: /healthz and kubelet's /containerLogs for the API server.

/metrics (behind the same check) gives Prometheus text: pods, running containers,
restarts; /stats/summary and /metrics/resource give cpu and memory of the node, its pods
and containers as kubelet's do (agent/stats.py). GET
/containerLogs/{namespace}/{pod}/{container} takes the query parameters the API server passes on from ``kubectl logs`` (follow, previous, timestamps,
tailLines, sinceSeconds, sinceTime, limitBytes). A following response is sent
chunked, line by line, until the container exits or the client goes away.
/exec/{ns}/{pod}/{container}, /attach/... and /portForward/{ns}/{pod} (GET or POST
upgrades) are kubelet's streaming paths, proxied to containerd (agent/streaming.py).

The port speaks TLS with the node's serving certificate (``ssl_context``, from
--tls-cert-file and --tls-private-key-file) and, as kubelet's does, requires a client
certificate signed by the cluster CA (--client-ca-file): no session without one. Every
request but /healthz is allowed only to the API server's kubelet client (CN
kube-apiserver-kubelet-client) or a member of system:masters (403 otherwise): another
node's certificate reads nothing here. Without ``ssl_context`` (only with the agent's
--insecure-plain-http) the port is plain HTTP and checks nobody.
"""

import http.server
import json
import logging
import ssl
import threading
import time
import urllib.parse

from agent import logs

log = logging.getLogger(__name__)

#: Who may use the agent's API over mutual TLS (kube-apiserver's kubelet client, admins).
ALLOWED_USERS = frozenset({"kube-apiserver-kubelet-client"})
ALLOWED_GROUPS = frozenset({"system:masters"})
HANDSHAKE_TIMEOUT = 10.0
#: kubelet's streaming paths (agent/streaming.py), served to the same callers as logs.
STREAM_PATHS = ("exec", "attach", "portForward")
REQUEST_HEAD_TIMEOUT = 60.0


def server_context(cert_file, key_file, client_ca_file):
    """Return the agent port's TLS context: a client certificate of ``client_ca_file`` required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:       # None: a certificate requested by CSR is loaded later (certrotation)
        context.load_cert_chain(cert_file, key_file)
    context.load_verify_locations(cafile=client_ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def identity(cert):
    """Return (user, groups) of a peer certificate as ``getpeercert()`` gives it."""
    user, groups = "", []
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                user = value
            elif key == "organizationName":
                groups.append(value)
    return user, groups


class AgentServer:
    """Serve on ``address``:``port`` (0 picks a free port; see ``port`` after start).

    ``find(namespace, pod, container, previous)`` returns (log path, is_running
    callable) or raises LookupError (a 404) or ValueError (a 400) with the message.
    """

    def __init__(self, address, port, find, clock=time.time, metrics=None, ssl_context=None,
                 stats=None, streams=None):
        self.find, self.clock = find, clock
        self.streams = streams  # agent/streaming.py StreamServer: exec, attach, portForward
        self.metrics = metrics or (lambda: "")
        self.stats = stats      # agent/stats.py StatsCollector: /stats/summary, /metrics/resource
        self.ssl_context = ssl_context
        agent = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # A request head must arrive within this (a slow one holds a thread).
            timeout = REQUEST_HEAD_TIMEOUT

            def log_message(self, fmt, *args):
                log.debug("http %s", fmt % args)

            def do_GET(self):
                agent._handle(self)

            def do_POST(self):          # SPDY upgrades of exec, attach and portForward
                agent._handle(self)

        server_class = _TlsHTTPServer if ssl_context is not None else \
            http.server.ThreadingHTTPServer
        self.httpd = server_class((address, port), Handler)
        self.httpd.ssl_context = ssl_context
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = None
        self._stopping = threading.Event()

    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="agent-http",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        if self._thread is not None:    # never started (no serving certificate yet): no loop
            self.httpd.shutdown()
        self.httpd.server_close()

    # -- requests -----------------------------------------------------------------------
    def _handle(self, req):
        url = urllib.parse.urlsplit(req.path)
        if url.path == "/healthz":
            return _reply(req, 200, "ok")
        refusal = self._refusal(req)
        if refusal:
            return _reply(req, *refusal)
        if url.path == "/metrics":
            return _reply(req, 200, self.metrics().rstrip("\n"),
                          "text/plain; version=0.0.4; charset=utf-8")
        if url.path in ("/stats/summary", "/metrics/resource") and self.stats is not None:
            return self._stats(req, url.path)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        if parts[0] in STREAM_PATHS:
            return self._stream(req, parts, urllib.parse.parse_qs(url.query))
        if req.command != "GET":
            return _reply(req, 405, f"{req.command} is not allowed here")
        if len(parts) != 4 or parts[0] != "containerLogs":
            return _reply(req, 404, "404 page not found")
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        try:
            options = self._options(query)
        except ValueError as exc:
            return _reply(req, 400, str(exc))
        try:
            path, is_running = self.find(parts[1], parts[2], parts[3],
                                         query.get("previous") == "true")
        except LookupError as exc:
            return _reply(req, 404, str(exc))
        except ValueError as exc:
            return _reply(req, 400, str(exc))
        follow = query.get("follow") == "true"
        try:
            chunks = logs.read(path, follow=follow, is_running=is_running,
                               stopped=self._stopping.is_set, **options)
        except OSError as exc:
            return _reply(req, 500, f"cannot read the log: {exc}")
        req.send_response(200)
        req.send_header("Content-Type", "text/plain")
        req.send_header("Transfer-Encoding", "chunked")
        req.end_headers()
        try:
            for chunk in chunks:
                req.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                if follow:
                    req.wfile.flush()
            req.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass            # the client stopped following
        req.close_connection = True

    def _stats(self, req, path):
        try:
            if path == "/metrics/resource":
                return _reply(req, 200, self.stats.resource_metrics().rstrip("\n"),
                              "text/plain; version=0.0.4; charset=utf-8")
            body = json.dumps(self.stats.summary())
        except OSError as exc:
            return _reply(req, 500, f"cannot read node stats: {exc}")
        return _reply(req, 200, body, "application/json")

    def _stream(self, req, parts, query):
        if self.streams is None:
            return _reply(req, 400, f"{parts[0]} needs a container runtime with a streaming "
                                    "server: start the agent with --runtime cri")
        req.connection.settimeout(None)     # the head has arrived: the stream has no deadline
        self.streams.serve(req, parts, query)

    def _refusal(self, req):
        """Return (code, message) if the caller may not use the agent's API, else None."""
        if self.ssl_context is None:
            return None         # --insecure-plain-http: nobody is checked
        cert = req.connection.getpeercert()
        if not cert:
            return 401, "Unauthorized: a client certificate is required"
        user, groups = identity(cert)
        if user in ALLOWED_USERS or ALLOWED_GROUPS.intersection(groups):
            return None
        log.warning("event=agent_api_forbidden user=%s groups=%s path=%s", user,
                    ",".join(groups), req.path.split("?")[0])
        return 403, f'Forbidden: user "{user}" may not use the node agent\'s API'

    def _options(self, query):
        def number(name):
            value = query.get(name)
            if value in (None, ""):
                return None
            try:
                number = int(value)
            except ValueError:
                raise ValueError(f"{name} must be an integer, not {value!r}") from None
            if number < 0:
                raise ValueError(f"{name} must not be negative")
            return number
        since = None
        if number("sinceSeconds") is not None:
            since = self.clock() - number("sinceSeconds")
        elif query.get("sinceTime"):
            since = logs.parse_timestamp(query["sinceTime"])
        return {"tail_lines": number("tailLines"), "limit_bytes": number("limitBytes"),
                "timestamps": query.get("timestamps") == "true", "since": since}


class _TlsHTTPServer(http.server.ThreadingHTTPServer):
    """Serve HTTPS: each connection's handshake runs in its own thread, not in accept."""

    ssl_context = None

    def finish_request(self, request, client_address):
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            request = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError) as exc:
            log.info("event=tls_handshake_failed client=%s error=%s", client_address[0], exc)
            request.close()
            return
        request.settimeout(None)
        try:
            super().finish_request(request, client_address)
        finally:
            # The wrapped socket owns the connection now: shutdown_request only sees
            # the detached plain one.
            super().shutdown_request(request)


def _reply(req, code, text, content_type="text/plain; charset=utf-8"):
    body = (text + "\n").encode()
    req.send_response(code)
    req.send_header("Content-Type", content_type)
    req.send_header("Content-Length", str(len(body)))
    req.end_headers()
    req.wfile.write(body)
