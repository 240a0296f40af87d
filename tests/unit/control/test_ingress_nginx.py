"""The rendered configuration in a real nginx on 127.0.0.1: matching, TLS, reloads, rejects.

nginx (Debian's) runs as a child with the controller's Nginx class; the backends
are HTTP servers in this process answering "<name> <path>". Everything listens
on 127.0.0.1 only.
"""

import http.client
import http.server
import os
import shutil
import socket
import ssl
import stat
import threading
import time

import pytest

from control.addons.ingress.nginx import ConfigRejected, Nginx
from control.addons.ingress.render import Settings, render
from tests.unit.control.ingress_objects import (
    backend,
    endpoint_slice,
    ingress,
    rule,
    self_signed,
    service,
    tls_secret,
)

NGINX = shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx")
pytestmark = pytest.mark.skipif(not NGINX, reason="nginx is not installed (Debian package "
                                                  "nginx: make deb-packages)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Named(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = f"{self.server.name} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def backends():
    """Three backends {name: port} on 127.0.0.1."""
    servers = {}
    for name in ("foo", "bar", "baz"):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Named)
        server.daemon_threads = True
        server.name = name
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[name] = server
    yield {name: s.server_address[1] for name, s in servers.items()}
    for server in servers.values():
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy(tmp_path):
    run = tmp_path / "run"
    settings = Settings(run_dir=str(run), tls_dir=str(run / "tls"), http_port=free_port(),
                        https_port=free_port(), status_port=free_port(),
                        listen_address="127.0.0.1", worker_processes=1)
    nginx = Nginx(NGINX, settings.run_dir, settings.tls_dir)
    yield nginx, settings
    nginx.stop(timeout=5)


def slices_for(backends, **which):
    """EndpointSlices: service name -> the backend names whose ports it holds."""
    return [endpoint_slice(svc, ["127.0.0.1"], port=backends[b]) for svc, b in which.items()]


def get(settings, path, host="a.example.com", deadline=10.0):
    end = time.monotonic() + deadline
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", settings.http_port, timeout=5)
        try:
            conn.request("GET", path, headers={"Host": host})
            response = conn.getresponse()
            return response.status, response.read().decode()
        except (ConnectionRefusedError, ConnectionResetError):
            if time.monotonic() > end:
                raise
            time.sleep(0.05)
        finally:
            conn.close()


def test_prefix_exact_and_default_backend_match_as_kubernetes_says(proxy, backends):
    nginx, settings = proxy
    ing = ingress(rules=[rule("a.example.com", ("/foo", "Prefix", "foo"),
                              ("/foo/exact", "Exact", "bar"), ("/impl", "ImplementationSpecific",
                                                               "bar")),
                         rule("b.example.com", ("/", "Prefix", "bar"))],
                  default=backend("baz"))
    services = [service("foo"), service("bar"), service("baz")]
    assert nginx.apply(render([ing], services, slices_for(backends, foo="foo", bar="bar",
                                                          baz="baz"), [], settings))
    assert get(settings, "/foo") == (200, "foo /foo")
    assert get(settings, "/foo/") == (200, "foo /foo/")
    assert get(settings, "/foo/bar?x=1") == (200, "foo /foo/bar?x=1")
    assert get(settings, "/foobar") == (200, "baz /foobar")          # not a prefix match
    assert get(settings, "/foo/exact") == (200, "bar /foo/exact")
    assert get(settings, "/foo/exact/more") == (200, "foo /foo/exact/more")
    assert get(settings, "/implementation") == (200, "bar /implementation")
    assert get(settings, "/x", host="b.example.com") == (200, "bar /x")
    assert get(settings, "/x", host="unknown.example.com") == (200, "baz /x")


def test_no_endpoints_is_503_and_an_endpoint_change_is_a_graceful_reload(proxy, backends):
    nginx, settings = proxy
    ing = ingress(rules=[rule("a.example.com", ("/", "Prefix", "foo"))])
    services = [service("foo")]
    nginx.apply(render([ing], services, [endpoint_slice("foo", [], not_ready=["127.0.0.1"])],
                       [], settings))
    assert get(settings, "/")[0] == 503
    master = nginx.process.pid
    changed = render([ing], services, slices_for(backends, foo="bar"), [], settings)
    assert nginx.apply(changed) and nginx.reloads == 1
    deadline = time.monotonic() + 60      # a reload under a loaded machine can take seconds
    while get(settings, "/")[1] != "bar /" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get(settings, "/") == (200, "bar /")
    assert nginx.process.pid == master          # reloaded, not restarted
    assert not nginx.apply(changed)             # same text: nothing to do
    assert nginx.reloads == 1


def test_tls_terminates_with_the_secret_for_its_sni_host(proxy, backends, tmp_path):
    nginx, settings = proxy
    cert, key = self_signed("a.example.com")
    ing = ingress(rules=[rule("a.example.com", ("/", "Prefix", "foo"))],
                  tls=[{"hosts": ["a.example.com"], "secretName": "a-tls"}])
    nginx.apply(render([ing], [service("foo")], slices_for(backends, foo="foo"),
                       [tls_secret("a-tls", cert, key)], settings))
    tls_dir = settings.tls_dir
    assert stat.S_IMODE(os.stat(tls_dir).st_mode) == 0o700
    [name] = os.listdir(tls_dir)
    assert stat.S_IMODE(os.stat(os.path.join(tls_dir, name)).st_mode) == 0o600
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert)
    context = ssl.create_default_context(cafile=str(ca))
    get(settings, "/")          # nginx is up
    with socket.create_connection(("127.0.0.1", settings.https_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="a.example.com") as tls:
            tls.sendall(b"GET /secure HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n")
            reply = b"".join(iter(lambda: tls.recv(4096), b""))
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"foo /secure")
    # Another name gets no certificate: the default server refuses the handshake.
    with socket.create_connection(("127.0.0.1", settings.https_port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(raw, server_hostname="b.example.com")


def test_a_rejected_configuration_keeps_the_running_one(proxy, backends):
    nginx, settings = proxy
    ing = ingress(rules=[rule("a.example.com", ("/", "Prefix", "foo"))],
                  tls=[{"hosts": ["a.example.com"], "secretName": "broken"}])
    services, slices = [service("foo")], slices_for(backends, foo="foo")
    nginx.apply(render([ing], services, slices, [], settings))
    assert get(settings, "/") == (200, "foo /")
    # PEM markers around garbage pass the renderer's check; nginx -t refuses it.
    junk = tls_secret("broken", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                      b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigRejected, match="(?i)ssl|pem|certificate"):
        nginx.apply(render([ing], services, slices, [junk], settings))
    assert nginx.running() and nginx.reloads == 0
    assert get(settings, "/") == (200, "foo /")
