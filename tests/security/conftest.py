"""Fixtures of the attack suite: a real store and `steer-apiserver`, and a raw HTTP client.

``server`` (or ``hostile_server``) is the integration suite's (a module's SERVER_ARGS
add flags); ``raw``
sends bytes exactly as given (over TLS when the server speaks it) and parses the answer.
"""

import http.client
import json
import socket

import pytest

from tests.integration import conftest as integration

# The integration suite's server: a real store and steer-apiserver per module, with
# the module's SERVER_ARGS.
server, server_args = integration.server, integration.server_args


class Answer:
    """A parsed HTTP response: status, headers (lower-case names), body bytes and JSON."""

    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"Answer({self.status}, {self.body[:300]!r})"


class RawClient:
    """Send requests byte for byte to a LocalApiServer, over TLS when it speaks TLS."""

    def __init__(self, server):
        self.server = server

    def connect(self, timeout=30):
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=timeout)
        context = self.server.ssl_context()
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
        return sock

    def send(self, data, timeout=30):
        """Send ``data`` (a whole request) on a new connection; return its Answer."""
        sock = self.connect(timeout)
        try:
            sock.sendall(data)
            return self.receive(sock)
        finally:
            sock.close()

    @staticmethod
    def receive(sock):
        response = http.client.HTTPResponse(sock)
        response.begin()
        headers = {}
        for name, value in response.getheaders():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return Answer(response.status, headers, response.read())

    def request(self, method, path, body=None, content_type="application/json", headers=None,
                timeout=30):
        """Send one ordinary request (a JSON-encoded body unless bytes are given)."""
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.server.port}",
                 "Connection: close"]
        if body is not None:
            lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        return self.send(data, timeout)


@pytest.fixture(scope="module")
def hostile_server(server):
    """The module's server (the name the attack tests use)."""
    return server


@pytest.fixture(scope="module")
def raw(hostile_server):
    """A RawClient of the module's server."""
    return RawClient(hostile_server)
