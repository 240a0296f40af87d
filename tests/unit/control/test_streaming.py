"""pods/exec, attach and portforward in the API server: options, targets, authorization,
and the upgrade relay helpers (control/client/upgrade.py) on socket pairs."""

import itertools
import socket
import threading
import urllib.parse

import falcon
import falcon.testing
import pytest

from control import errors
from control.api import guard, streaming
from control.api.auth import context
from control.api.auth.request_info import request_info
from control.client import upgrade
from control.objects import kinds


class Service:
    """The reads PodStreams makes: one pod and its node."""

    def __init__(self, pod_spec=None, phase="Running", node=True):
        spec = {"nodeName": "n1", "containers": [{"name": "app"}, {"name": "side"}],
                **(pod_spec or {})}
        self.pod = {"metadata": {"name": "web", "namespace": "ns"}, "spec": spec,
                    "status": {"phase": phase}}
        self.node = {"metadata": {"name": "n1"}, "status": {
            "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}} if node else None

    def get(self, kind, namespace, name):
        if kind is kinds.PODS and name == "web":
            return self.pod
        if kind is kinds.NODES and self.node is not None:
            return self.node
        raise errors.NotFound(f"{name} not found")


def query_of(path):
    return urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query)


# -- options ---------------------------------------------------------------------------

def test_exec_query_uses_kubelets_names():
    query = streaming.exec_query("exec", {"command": ["sh", "-c", "echo hi"], "stdin": "true"})
    assert query == [("command", "sh"), ("command", "-c"), ("command", "echo hi"),
                     ("input", "1"), ("output", "1"), ("error", "1")]


def test_a_terminal_has_no_stderr():
    query = streaming.exec_query("attach", {"stdin": "true", "tty": "true"})
    assert query == [("input", "1"), ("output", "1"), ("tty", "1")]


@pytest.mark.parametrize("sub, params, message", [
    ("exec", {}, "at least one command"),
    ("exec", {"command": "ls", "stdout": "false", "stderr": "false"}, "at least 1 of stdin"),
    ("exec", {"command": ["x"] * 2000}, "too long"),
    ("exec", {"command": "x" * 70000}, "too long"),
])
def test_bad_exec_options_are_400(sub, params, message):
    with pytest.raises(errors.BadRequest, match=message):
        streaming.exec_query(sub, params)


def test_portforward_ports():
    assert streaming.portforward_query({"ports": ["80,443", "8080"]}) == [
        ("port", "80"), ("port", "443"), ("port", "8080")]
    assert streaming.portforward_query({}) == []
    for bad in ("0", "65536", "http", "-1", "1e3"):
        with pytest.raises(errors.BadRequest, match="invalid port"):
            streaming.portforward_query({"ports": bad})


@pytest.mark.parametrize("sub, offered, ok", [
    ("exec", "v5.channel.k8s.io", False),               # kubectl 1.32: falls back to SPDY
    ("exec", "v4.channel.k8s.io", True),                # the official Python client
    ("exec", "v5.channel.k8s.io, v4.channel.k8s.io", True),
    ("exec", "", True),                                 # none offered: v1
    ("attach", "base64.channel.k8s.io", True),
    ("portforward", "SPDY/3.1+portforward.k8s.io", False),  # kubectl's tunnelling
    ("portforward", "v4.channel.k8s.io", True),
    ("portforward", "channel.k8s.io", False),
])
def test_websocket_subprotocols(sub, offered, ok):
    if ok:
        streaming.check_websocket_protocols(sub, offered)
    else:
        with pytest.raises(errors.BadRequest, match="SPDY"):
            streaming.check_websocket_protocols(sub, offered)


# -- targets ---------------------------------------------------------------------------

def test_exec_target_is_kubelets_path_on_the_nodes_address():
    target = streaming.PodStreams(Service()).target(
        "exec", "ns", "web", {"container": "side", "command": ["ls", "/a b"], "tty": "1"})
    assert (target.node_name, target.host, target.port) == ("n1", "10.0.0.5", 10250)
    assert target.path.startswith("/exec/ns/web/side?")
    assert query_of(target.path) == [("command", "ls"), ("command", "/a b"),
                                     ("output", "1"), ("tty", "1")]


def test_portforward_target_names_no_container():
    target = streaming.PodStreams(Service()).target("portforward", "ns", "web",
                                                    {"ports": "80"})
    assert target.path == "/portForward/ns/web?port=80"


@pytest.mark.parametrize("service, sub, params, error, message", [
    (Service(), "exec", {"container": "nope", "command": "ls"}, errors.BadRequest,
     "container nope is not valid for pod web"),
    (Service(), "exec", {"command": "ls"}, errors.BadRequest,
     "a container name must be specified"),
    (Service({"nodeName": None}), "exec", {"container": "app", "command": "ls"},
     errors.BadRequest, "pod web does not have a host assigned"),
    (Service(phase="Succeeded"), "exec", {"container": "app", "command": "ls"},
     errors.BadRequest, "cannot exec into a container in a completed pod"),
    (Service(phase="Failed"), "attach", {"container": "app"}, errors.BadRequest,
     "cannot attach to a container in a completed pod; current phase is Failed"),
    (Service(node=False), "portforward", {}, errors.ServiceUnavailable, "does not exist"),
])
def test_target_refusals(service, sub, params, error, message):
    with pytest.raises(error, match=message):
        streaming.PodStreams(service).target(sub, "ns", "web", params)


def test_an_unknown_pod_is_404():
    with pytest.raises(errors.NotFound):
        streaming.PodStreams(Service()).target("exec", "ns", "other", {"command": "ls"})


# -- requests through falcon ------------------------------------------------------------

class Recorder:
    """An authorizer that allows what ``allowed`` lists and records every check."""

    def __init__(self, allowed):
        self.allowed, self.checks = allowed, []

    def check(self, user, info):
        self.checks.append(info.verb)
        if info.verb not in self.allowed:
            raise errors.Forbidden(f"cannot {info.verb} {info.resource_and_sub}")


class AuthLike:
    """Sets what the auth middleware would: the request info and context.current."""

    def __init__(self, authorizer):
        self.authorizer = authorizer

    def process_request(self, req, resp):
        req.context.request_info = request_info(req.method, req.path, req.params)
        req.context.token = context.current.set(context.RequestAuth("someone", self.authorizer))

    def process_response(self, req, resp, resource, req_succeeded):
        context.current.reset(req.context.token)


def app_with(authorizer, streams):
    app = falcon.App(middleware=[AuthLike(authorizer)])
    app.add_error_handler(errors.ApiError, lambda req, resp, exc, params: (
        setattr(resp, "status", falcon.code_to_http_status(exc.code)),
        setattr(resp, "media", {"message": str(exc)})))

    class Resource:
        def on_get(self, req, resp, sub):
            streams.serve(req, resp, sub, "ns", "web")
        on_post = on_get
    app.add_route("/api/v1/namespaces/ns/pods/web/{sub}", Resource())
    return falcon.testing.TestClient(app)


UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket",
           "Sec-WebSocket-Protocol": "v4.channel.k8s.io"}


def test_a_plain_request_is_told_to_upgrade():
    client = app_with(Recorder({"get", "create"}), streaming.PodStreams(Service()))
    answer = client.simulate_post("/api/v1/namespaces/ns/pods/web/exec",
                                  params={"command": "ls", "container": "app"})
    assert answer.status_code == 400 and "Upgrade request required" in answer.text


def test_a_websocket_get_must_also_be_allowed_create():
    authorizer = Recorder({"get"})
    client = app_with(authorizer, streaming.PodStreams(Service()))
    answer = client.simulate_get("/api/v1/namespaces/ns/pods/web/exec", headers=UPGRADE,
                                 params={"command": "ls", "container": "app"},
                                 extras={"gunicorn.socket": object()})
    assert answer.status_code == 403 and "cannot create pods/exec" in answer.text
    assert authorizer.checks == ["create"]


def test_a_spdy_post_is_not_checked_again():
    authorizer = Recorder({"create"})
    client = app_with(authorizer, streaming.PodStreams(Service(), kubelet_tls=None))
    answer = client.simulate_post("/api/v1/namespaces/ns/pods/web/exec",
                                  headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1"},
                                  params={"command": "ls", "container": "app"},
                                  extras={"gunicorn.socket": object()})
    # Authorized, then refused for want of the kubelet client certificate.
    assert answer.status_code == 503 and "--kubelet-client-certificate" in answer.text
    assert authorizer.checks == []


def test_hijackable_closes_without_a_response():
    def app(environ, start_response):
        environ[streaming.HIJACKED] = environ.get("hijack", False)
        start_response("101 Switching Protocols", [])
        return [b""]
    wrapped = streaming.hijackable(app)
    assert wrapped({}, lambda *a: None) == [b""]
    with pytest.raises(StopIteration):
        wrapped({"hijack": True}, lambda *a: None)


# -- the relay helpers ---------------------------------------------------------------------

def test_upgrade_headers_split_protocol_versions():
    given = {"Connection": ["Upgrade"], "Upgrade": ["SPDY/3.1"],
             "X-Stream-Protocol-Version": ["v4.channel.k8s.io,v3.channel.k8s.io"],
             "Authorization": ["Bearer secret"]}
    headers = upgrade.upgrade_headers(lambda name: given.get(name, []))
    assert headers == [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                       ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
                       ("X-Stream-Protocol-Version", "v3.channel.k8s.io")]


def test_a_header_cannot_split_the_request():
    with pytest.raises(ValueError, match="line break"):
        upgrade.request_bytes("GET", "/x", "h", [("Upgrade", "websocket\r\nEvil: 1")])


def test_read_response_head_and_switch_bytes():
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: abc\r\nSet-Cookie: x\r\n\r\nEXTRA")
        head = upgrade.read_response_head(a, 5)
    assert (head.status, head.get("upgrade"), head.rest) == (101, "websocket", b"EXTRA")
    assert head.switch_bytes() == (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                   b"Connection: Upgrade\r\nSec-WebSocket-Accept: abc\r\n\r\n")


@pytest.mark.parametrize("answer, message", [
    (b"", "closed before"),
    (b"SSH-2.0-OpenSSH\r\n\r\n", "not HTTP"),
    (b"HTTP/1.1 101 OK\r\nno colon here\r\n\r\n", "malformed header"),
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 3000, "longer than"),
])
def test_bad_response_heads(answer, message):
    a, b = socket.socketpair()
    with a, b:
        b.sendall(answer)
        b.shutdown(socket.SHUT_WR)
        with pytest.raises(upgrade.UpgradeError, match=message):
            upgrade.read_response_head(a, 5)


def test_splice_copies_both_ways_until_a_side_closes():
    left, client = socket.socketpair()
    right, server = socket.socketpair()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault(
        "why", upgrade.splice(left, right)))
    thread.start()
    with client, server, left, right:
        client.sendall(b"to the server")
        assert server.recv(100) == b"to the server"
        server.sendall(b"to the client" * 10000)
        got = b""
        while len(got) < 130000:
            got += client.recv(65536)
        assert got == b"to the client" * 10000
        client.close()
        thread.join(10)
    assert result["why"] == "closed"


def test_splice_ends_an_idle_stream():
    left, client = socket.socketpair()
    right, server = socket.socketpair()
    ticks = itertools.chain([0.0], itertools.repeat(1000.0))
    with left, client, right, server:
        assert upgrade.splice(left, right, idle_timeout=60,
                              clock=lambda: next(ticks)) == "idle"


# -- the web-page guard and the Python client's Origin -----------------------------------

@pytest.mark.parametrize("origin, host, allowed", [
    ("https://127.0.0.1:6443", "127.0.0.1:6443", True),
    ("https://localhost:6443", "localhost:6443", True),
    ("https://evil.example:6443", "evil.example:6443", False),   # a rebound name
    ("https://127.0.0.1:6443", "127.0.0.1:7000", False),
    ("null", "127.0.0.1:6443", False),
])
def test_origin_naming_the_server_by_address(origin, host, allowed):
    assert guard._is_self(origin, host) is allowed
