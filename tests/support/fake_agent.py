"""A stand-in node agent serving kubelet's /containerLogs path on a loopback port.

Logs are lists of lines per (namespace, pod, container). ``follow=true`` answers
chunked: the lines so far, then each line ``append`` adds, until ``finish``.
It speaks mutual TLS as the real agent does: a serving certificate for the node names
it stands in for, from a cluster CA (``for_server``: a LocalApiServer's), and only a
client certificate of that CA gets a session; only kube-apiserver-kubelet-client (or
system:masters) is answered, others get 403. Every request is recorded (path,
parameters, the client certificate's CN) for assertions.
"""

import http.server
import queue
import threading
import urllib.parse

from agent.server import ALLOWED_GROUPS, ALLOWED_USERS, identity, server_context

STAMP = "2026-11-22T10:00:00.000000000Z "


class FakeAgent:
    """Serve container logs until ``stop``; ``port`` is known once constructed."""

    def __init__(self, cert_file, key_file, client_ca_file):
        self.logs = {}
        self.requests = []
        self.follow_queues = []
        agent = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                agent._serve(self)

        self.server = _TlsServer(("127.0.0.1", 0), Handler)
        self.server.ssl_context = server_context(cert_file, key_file, client_ca_file)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @classmethod
    def for_server(cls, server, node_names=("n1",)):
        """A fake agent of ``server`` (LocalApiServer): a certificate of its CA for the nodes."""
        return cls(*serving_certificate(server.ca, server.pki_dir, node_names), server.ca_file)

    def append(self, line):
        """Send ``line`` to every follower (and keep it for later readers)."""
        for key in self.logs:
            self.logs[key].append(line)
        for q in list(self.follow_queues):
            q.put(line)

    def finish(self):
        """End every followed stream."""
        for q in list(self.follow_queues):
            q.put(None)

    def stop(self):
        self.finish()
        self.server.shutdown()
        self.server.server_close()

    def _serve(self, handler):
        url = urllib.parse.urlsplit(handler.path)
        params = dict(urllib.parse.parse_qsl(url.query))
        user, groups = identity(handler.connection.getpeercert())
        self.requests.append({"path": url.path, "params": params, "user": user})
        parts = url.path.strip("/").split("/")
        if user not in ALLOWED_USERS and not ALLOWED_GROUPS.intersection(groups):
            return _reply(handler, 403, f'Forbidden: user "{user}" may not use the agent\n')
        key = tuple(urllib.parse.unquote(p) for p in parts[1:])
        if parts[0] != "containerLogs" or key not in self.logs:
            return _reply(handler, 404, f"container {'/'.join(key)} not found\n")
        lines = list(self.logs[key])
        if "tailLines" in params:
            lines = lines[-int(params["tailLines"]):] if int(params["tailLines"]) else []
        prefix = STAMP if params.get("timestamps") == "true" else ""
        if params.get("follow") != "true":
            return _reply(handler, 200, "".join(prefix + line + "\n" for line in lines))
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        q = queue.Queue()
        self.follow_queues.append(q)
        try:
            for line in lines:
                _chunk(handler, prefix + line + "\n")
            while True:
                line = q.get()
                if line is None:
                    break
                _chunk(handler, prefix + line + "\n")
            handler.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass        # the reader went away
        finally:
            self.follow_queues.remove(q)


def serving_certificate(ca, directory, node_names=("n1",)):
    """(cert, key) of ``ca`` (cli.pki.CertificateAuthority) serving ``node_names`` on 127.0.0.1."""
    issued = ca.issue(directory, "fake-agent-" + "-".join(node_names),
                      f"system:node:{node_names[0]}", dns_names=list(node_names),
                      ip_addresses=["127.0.0.1"], server=True)
    return issued.cert, issued.key


class _TlsServer(http.server.ThreadingHTTPServer):
    """HTTPS with each connection's handshake in its own thread (as agent/server.py)."""

    ssl_context = None

    def finish_request(self, request, client_address):
        try:
            request = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError):
            request.close()
            return
        try:
            super().finish_request(request, client_address)
        finally:
            super().shutdown_request(request)


def _reply(handler, code, text):
    data = text.encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _chunk(handler, text):
    data = text.encode()
    handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    handler.wfile.flush()
