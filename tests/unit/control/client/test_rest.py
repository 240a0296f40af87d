"""RestClient against a scripted loopback HTTP server: URLs, headers, errors, retries."""

import http.server
import json
import socket
import threading
import time

import pytest

from control.client import errors
from control.client.rest import RestClient, _peer_closed, object_key, resource_for
from control.objects import kinds

PODS = kinds.lookup("", "v1", "pods")
NODES = kinds.lookup("", "v1", "nodes")
DEPLOYMENTS = kinds.lookup("apps", "v1", "deployments")


class Stub:
    """Answers requests from a script of (code, body, headers) or "reset"; records them."""

    def __init__(self):
        self.script = []
        self.requests = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"       # keep-alive, as a real API server

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                stub.requests.append((self.command, self.path, dict(self.headers),
                                      json.loads(body) if body else None))
                action = stub.script.pop(0) if stub.script else (200, {}, {})
                if action == "reset":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                code, payload, headers = action[:3]
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                if action[3:] == ("close",):
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def status(code, reason, message="no"):
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message}


@pytest.fixture
def stub():
    server = Stub()
    yield server
    server.close()


@pytest.fixture
def slept():
    return []


@pytest.fixture
def client(stub, slept):
    return RestClient(stub.url, token="s3cret", timeout=5, retries=3, sleep=slept.append)


def test_urls_for_core_group_namespaced_and_cluster_scoped_resources(client):
    assert client.path(PODS, "default") == "/api/v1/namespaces/default/pods"
    assert client.path(PODS) == "/api/v1/pods"
    assert client.path(PODS, "default", "web", "status") == \
        "/api/v1/namespaces/default/pods/web/status"
    assert client.path(DEPLOYMENTS, "ns", "d", "scale") == \
        "/apis/apps/v1/namespaces/ns/deployments/d/scale"
    assert client.path(NODES, None, "n1") == "/api/v1/nodes/n1"
    assert client.path(PODS, "a b", "x/y") == "/api/v1/namespaces/a%20b/pods/x%2Fy"
    with pytest.raises(ValueError):
        client.path(NODES, "default", "n1")
    with pytest.raises(ValueError):
        client.path(PODS, None, "web")
    with pytest.raises(TypeError):
        client.path("pods")
    prefixed = RestClient("http://127.0.0.1:1/k8s/")
    assert prefixed.path(NODES) == "/k8s/api/v1/nodes"


def test_helpers():
    assert resource_for({"apiVersion": "apps/v1", "kind": "Deployment"}) is DEPLOYMENTS
    with pytest.raises(ValueError):
        resource_for({"apiVersion": "v9", "kind": "Nope"})
    assert object_key({"metadata": {"namespace": "ns", "name": "a"}}) == "ns/a"
    assert object_key({"metadata": {"name": "node"}}) == "node"


def test_requests_carry_token_query_and_json(stub, client):
    stub.script = [(200, {"items": []}, {}), (201, {"metadata": {"name": "p"}}, {})]
    client.list(PODS, "default", label_selector="app=web,tier!=db", field_selector="a=b",
                limit=5, continue_="tok")
    client.create(PODS, "default", {"metadata": {"name": "p"}})
    (method, path, headers, _), (post, _, post_headers, body) = stub.requests
    assert method == "GET" and headers["Authorization"] == "Bearer s3cret"
    assert path == ("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb%2Ctier%21%3Ddb"
                    "&fieldSelector=a%3Db&limit=5&continue=tok")
    assert post == "POST" and post_headers["Content-Type"] == "application/json"
    assert body == {"metadata": {"name": "p"}}


def test_patch_types_and_delete_options(stub, client):
    for patch_type, media in (("merge", "application/merge-patch+json"),
                              ("json", "application/json-patch+json"),
                              ("strategic", "application/strategic-merge-patch+json")):
        client.patch(PODS, "ns", "p", {}, patch_type=patch_type)
        assert stub.requests[-1][2]["Content-Type"] == media
    with pytest.raises(ValueError):
        client.patch(PODS, "ns", "p", {}, patch_type="apply")
    client.delete(PODS, "ns", "p")
    assert stub.requests[-1][3] is None
    client.delete(PODS, "ns", "p", grace_period_seconds=0, propagation_policy="Foreground",
                  preconditions={"uid": "u1"})
    assert stub.requests[-1][3] == {"kind": "DeleteOptions", "apiVersion": "v1",
                                    "gracePeriodSeconds": 0, "propagationPolicy": "Foreground",
                                    "preconditions": {"uid": "u1"}}


def test_create_binding_posts_a_v1_binding(stub, client):
    stub.script = [(201, status(201, "", "ok"), {})]
    client.create_binding("ns", "web-1", "node-a")
    method, path, _, body = stub.requests[0]
    assert (method, path) == ("POST", "/api/v1/namespaces/ns/pods/web-1/binding")
    assert body == {"apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": "web-1", "namespace": "ns"},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}}


@pytest.mark.parametrize("code, reason, cls", [
    (404, "NotFound", errors.NotFound), (409, "Conflict", errors.Conflict),
    (409, "AlreadyExists", errors.AlreadyExists), (410, "Expired", errors.Gone),
    (422, "Invalid", errors.Invalid), (400, "BadRequest", errors.BadRequest),
    (403, "Forbidden", errors.Forbidden), (418, "Teapot", errors.ApiException),
])
def test_errors_are_typed_and_carry_the_status(stub, client, code, reason, cls):
    stub.script = [(code, status(code, reason, "why"), {})]
    with pytest.raises(cls) as raised:
        client.get(PODS, "ns", "p")
    assert type(raised.value) is cls
    assert (raised.value.status, raised.value.reason, raised.value.message) == \
        (code, reason, "why")
    assert raised.value.body["kind"] == "Status"
    assert len(stub.requests) == 1, "client errors are not retried"


def test_get_retries_5xx_with_backoff_then_succeeds(stub, client, slept):
    stub.script = [(503, status(503, "ServiceUnavailable"), {}),
                   (500, status(500, "InternalError"), {}), (200, {"ok": 1}, {})]
    assert client.get(PODS, "ns", "p") == {"ok": 1}
    assert len(stub.requests) == 3 and len(slept) == 2
    assert 0.1 <= slept[0] <= 0.2 and 0.2 <= slept[1] <= 0.4      # doubling, jittered


def test_retries_give_up_with_the_last_error(stub, client, slept):
    stub.script = [(503, status(503, "ServiceUnavailable"), {})] * 4
    with pytest.raises(errors.ServerError) as raised:
        client.get(PODS, "ns", "p")
    assert raised.value.status == 503 and len(stub.requests) == 4 and len(slept) == 3


def test_429_honours_retry_after_for_every_verb(stub, client, slept):
    stub.script = [(429, status(429, "TooManyRequests"), {"Retry-After": "3"}),
                   (201, {"metadata": {"name": "p"}}, {})]
    client.create(PODS, "ns", {"metadata": {"name": "p"}})
    assert [r[0] for r in stub.requests] == ["POST", "POST"] and slept == [3.0]


def test_5xx_is_not_retried_for_post_patch_or_unconditional_put(stub, client, slept):
    for call in (lambda: client.create(PODS, "ns", {"metadata": {"name": "p"}}),
                 lambda: client.patch(PODS, "ns", "p", {"a": 1}),
                 lambda: client.update(PODS, "ns", {"metadata": {"name": "p"}})):
        stub.script = [(503, status(503, "ServiceUnavailable"), {"Retry-After": "1"}),
                       (200, {}, {})]
        stub.requests.clear()
        with pytest.raises(errors.ServerError):
            call()
        assert len(stub.requests) == 1
    assert slept == []


def test_put_with_resource_version_and_delete_are_retried(stub, client, slept):
    stub.script = [(502, status(502, "BadGateway"), {}), (200, {"ok": 1}, {})]
    client.update(PODS, "ns", {"metadata": {"name": "p", "resourceVersion": "7"}})
    stub.script = [(504, status(504, "Timeout"), {}), (200, {"ok": 1}, {})]
    client.delete(PODS, "ns", "p")
    assert [r[0] for r in stub.requests] == ["PUT", "PUT", "DELETE", "DELETE"]


def test_connection_lost_after_sending_retries_get_but_not_post(stub, client, slept):
    stub.script = ["reset", (200, {"ok": 1}, {})]
    assert client.get(PODS, "ns", "p") == {"ok": 1}
    stub.script = ["reset", (201, {}, {})]
    with pytest.raises(errors.ConnectionFailed) as raised:
        client.create(PODS, "ns", {"metadata": {"name": "p"}})
    assert raised.value.status == 0
    assert [r[0] for r in stub.requests] == ["GET", "GET", "POST"]


def test_connection_refused_is_retried_even_for_post(slept):
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]         # bound, not listening: refused
        client = RestClient(f"http://127.0.0.1:{port}", retries=2, sleep=slept.append)
        with pytest.raises(errors.ConnectionFailed):
            client.create(PODS, "ns", {"metadata": {"name": "p"}})
    assert len(slept) == 2


def test_keep_alive_connection_is_reused_and_replaced_when_the_server_drops_it(stub, client):
    client.get(PODS, "ns", "a")
    client.get(PODS, "ns", "b")
    conn = client._local.conn
    assert conn.sock is not None, "the connection stays open between requests"
    stub.script = ["reset"]
    client.get(PODS, "ns", "c")          # dropped: retried on a new connection
    assert [r[1].rsplit("/", 1)[1] for r in stub.requests] == ["a", "b", "c", "c"]


def test_idle_connection_closed_by_the_server_is_not_used_for_a_post(stub, client, slept):
    stub.script = [(200, {}, {}, "close")]   # answer, then close without saying so
    client.get(PODS, "ns", "a")
    sock = client._local.conn.sock
    deadline = time.monotonic() + 5
    while not _peer_closed(sock):
        assert time.monotonic() < deadline, "the stub did not close the connection"
        time.sleep(0.005)
    stub.script = [(201, {"metadata": {"name": "p"}}, {})]
    client.create(PODS, "ns", {"metadata": {"name": "p"}})
    assert [r[0] for r in stub.requests] == ["GET", "POST"] and slept == []


def test_watch_reads_events_and_errors_raise(stub, client):
    stub.script = [(404, status(404, "NotFound"), {})]
    with pytest.raises(errors.NotFound):
        list(client.watch(PODS, "ns", resource_version="5", timeout_seconds=3))
    method, path, _, _ = stub.requests[0]
    assert path == ("/api/v1/namespaces/ns/pods?watch=true&resourceVersion=5&timeoutSeconds=3"
                    "&allowWatchBookmarks=true")
