"""The agent's HTTP port: /healthz and kubelet's /containerLogs for the API server.

/metrics (behind the token too) gives Prometheus text: pods, running containers,
restarts. GET /containerLogs/{namespace}/{pod}/{container} takes the query parameters the
API server passes on from ``kubectl logs`` (follow, previous, timestamps,
tailLines, sinceSeconds, sinceTime, limitBytes). A following response is sent
chunked, line by line, until the container exits or the client goes away. When
a token is configured every request but /healthz must carry
``Authorization: Bearer <token>`` (401 otherwise), as the API server does with
its --agent-token-file.
"""

import hmac
import http.server
import logging
import threading
import time
import urllib.parse

from agent import logs

log = logging.getLogger(__name__)


class AgentServer:
    """Serve on ``address``:``port`` (0 picks a free port; see ``port`` after start).

    ``find(namespace, pod, container, previous)`` returns (log path, is_running
    callable) or raises LookupError (a 404) or ValueError (a 400) with the message.
    """

    def __init__(self, address, port, find, token=None, clock=time.time, metrics=None):
        self.find, self.token, self.clock = find, token, clock
        self.metrics = metrics or (lambda: "")
        agent = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                log.debug("http %s", fmt % args)

            def do_GET(self):
                agent._handle(self)

        self.httpd = http.server.ThreadingHTTPServer((address, port), Handler)
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
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- requests -----------------------------------------------------------------------
    def _handle(self, req):
        url = urllib.parse.urlsplit(req.path)
        if url.path == "/healthz":
            return _reply(req, 200, "ok")
        if self.token and not _authorized(req.headers.get("Authorization"), self.token):
            return _reply(req, 401, "Unauthorized")
        if url.path == "/metrics":
            return _reply(req, 200, self.metrics().rstrip("\n"),
                          "text/plain; version=0.0.4; charset=utf-8")
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
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


def _authorized(header, token):
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


def _reply(req, code, text, content_type="text/plain; charset=utf-8"):
    body = (text + "\n").encode()
    req.send_response(code)
    req.send_header("Content-Type", content_type)
    req.send_header("Content-Length", str(len(body)))
    req.end_headers()
    req.wfile.write(body)
