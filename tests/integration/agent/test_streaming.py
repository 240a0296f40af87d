"""exec, attach and port-forward through a real API server and a node agent.

Two set-ups share the module's API server (gunicorn, TLS, RBAC):

- an agent port served in this process (agent.server.AgentServer with
  agent/streaming.py) whose CRI client hands out the URLs of a fake stream server that
  answers any upgrade with a 101 and echoes: the splice across both hops, the headers
  passed on, the refusals, RBAC, and gunicorn's gthread worker (no containerd needed);
- a real steer-agent process (--runtime cri) on a real containerd in its own network
  namespace (tests/support/containerd.py) running a busybox pod: kubectl exec (output,
  exit code, stdin to EOF, -it on a pseudo-terminal), cp in and out, attach and
  port-forward, `steer exec` and `steer port-forward`, and the official Python client's
  websocket ``stream()`` and ``portforward()``.
"""

import json
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

from control.client import upgrade
from control.objects import kinds
from tests.integration.agent.conftest import AgentProcess
from tests.support import rawhttp
from tests.support.apiproc import ROOT, LocalApiServer, eventually
from tests.support.containerd import missing_requirements, running_containerd
from tests.support.kubectl import kubectl_argv, run_kubectl
from tests.support.streams import (
    SPDY_HEADERS,
    FakeCri,
    FakeStreamServer,
    Record,
    make_agent,
    read_exactly,
    register,
    upgrade_request,
)

NODE = "stream-node"


# -- the splice, against a fake stream server ------------------------------------------

@pytest.fixture(scope="module")
def fake(server, rest):
    upstream = FakeStreamServer()
    cri = FakeCri(upstream.port)
    found = []

    def find(namespace, pod, container):
        found.append((namespace, pod, container))
        if container == "missing":
            raise LookupError("container missing is not valid for pod echo")
        return Record("cid-1", "sid-1")
    agent = make_agent(server, NODE, find, cri)
    register(rest, NODE, agent.port, "echo", containers=("c", "d"))
    try:
        yield upstream, cri, found, agent
    finally:
        agent.stop()
        upstream.close()


def test_spdy_exec_is_spliced_both_ways(server, fake):
    upstream, cri, _, _ = fake
    sock, head = upgrade_request(
        server, "/api/v1/namespaces/default/pods/echo/exec?container=d&command=echo&"
                "command=a%20b&stdin=true&stdout=true&stderr=true")
    with sock:
        assert head.status == 101, head.rest
        assert head.get("X-Stream-Protocol-Version") == "v4.channel.k8s.io"
        assert head.get("X-Secret") is None
        sock.sendall(b"hello through two hops")
        assert read_exactly(sock, 22, head.rest) == b"hello through two hops"
    assert cri.calls[-1] == ("exec", "cid-1", ["echo", "a b"],
                             {"stdin": True, "stdout": True, "stderr": True, "tty": False})
    seen = upstream.heads[-1]
    assert seen.startswith("POST /exec/token1 HTTP/1.1")
    # Every protocol version on its own line, as SPDY servers read them.
    assert "X-Stream-Protocol-Version: v4.channel.k8s.io" in seen
    assert "X-Stream-Protocol-Version: channel.k8s.io" in seen
    assert "Authorization" not in seen


def test_websocket_v4_attach_and_port_forward_pass_through(server, fake):
    upstream, cri, found, _ = fake
    ws = ["Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
          "Sec-WebSocket-Protocol: v4.channel.k8s.io"]
    sock, head = upgrade_request(server, "/api/v1/namespaces/default/pods/echo/attach?"
                                         "container=c&stdin=1&tty=1", "GET", ws)
    sock.close()
    assert head.status == 101
    assert cri.calls[-1] == ("attach", "cid-1", {"stdin": True, "stdout": True,
                                                 "stderr": False, "tty": True})
    assert "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" in upstream.heads[-1]
    sock, head = upgrade_request(server, "/api/v1/namespaces/default/pods/echo/portforward?"
                                         "ports=8080,9090", "GET", ws)
    sock.close()
    assert head.status == 101
    assert cri.calls[-1] == ("portforward", "sid-1", [8080, 9090])
    assert found[-1] == ("default", "echo", None)


@pytest.mark.parametrize("path, method, headers, code, message", [
    ("exec?container=nope&command=ls", "POST", SPDY_HEADERS, 400,
     "container nope is not valid for pod echo"),
    ("exec?container=c", "POST", SPDY_HEADERS, 400,
     "you must specify at least one command"),
    ("exec?container=c&command=ls", "POST", ["Connection: keep-alive"], 400,
     "Upgrade request required"),
    ("exec?command=ls", "POST", SPDY_HEADERS, 400, "a container name must be specified"),
    ("exec?container=c&command=ls&stdout=false&stderr=false", "POST", SPDY_HEADERS, 400,
     "at least 1 of stdin, stdout, stderr"),
    ("portforward?ports=99999", "POST", SPDY_HEADERS, 400, "invalid port"),
    # kubectl's first try: v5 only, which containerd cannot speak; it falls back to SPDY.
    ("exec?container=c&command=ls", "GET",
     ["Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Protocol: v5.channel.k8s.io"], 400, "v5.channel.k8s.io"),
    # The upstream's refusal comes back as a Status with its code.
    ("exec?container=c&command=refuse", "POST", SPDY_HEADERS, 403, "no such token"),
])
def test_refusals_are_statuses(server, fake, path, method, headers, code, message):
    sock, head = upgrade_request(server, f"/api/v1/namespaces/default/pods/echo/{path}",
                                 method, headers)
    with sock:
        body = upgrade.read_body(sock, head, 4096).decode()
    assert head.status == code, body
    assert message in body
    assert '"kind":"Status"' in body.replace(" ", "")


def test_agent_refuses_an_unknown_container(server, fake, rest):
    # The API server believes the container exists; the agent knows better (404).
    rest.create(kinds.PODS, "default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "echo2"},
        "spec": {"nodeName": NODE, "containers": [{"name": "missing", "image": "busybox"}]}})
    sock, head = upgrade_request(server, "/api/v1/namespaces/default/pods/echo2/exec?"
                                         "command=ls")
    with sock:
        body = upgrade.read_body(sock, head, 4096).decode()
    assert head.status == 404 and "container missing is not valid" in body


def test_the_agent_streams_only_for_the_api_server(server, fake):
    """Another node's certificate (or any non-kubelet-client) gets 403 from the agent."""
    agent = fake[3]
    other = server.issue_client("node-other", "system:node:other", ["system:nodes"])
    context = ssl.create_default_context(cafile=server.ca_file)
    context.load_cert_chain(other.cert, other.key)
    raw = socket.create_connection(("127.0.0.1", agent.port), timeout=30)
    with context.wrap_socket(raw, server_hostname=NODE) as sock:
        sock.sendall(upgrade.request_bytes("POST", "/exec/default/echo/c?command=id&output=1",
                                           NODE, [("Connection", "Upgrade"),
                                                  ("Upgrade", "SPDY/3.1")]))
        head = upgrade.read_response_head(sock, 30)
    assert head.status == 403
    assert fake[1].calls == [] or fake[1].calls[-1][2] != ["id"]


def test_rbac_websocket_upgrade_needs_create(server, fake, rest):
    """A user allowed only ``get`` on pods/exec may not exec over a WebSocket GET."""
    rest.create(kinds.lookup("rbac.authorization.k8s.io", "v1", "roles"), "default", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "exec-get-only"},
        "rules": [{"apiGroups": [""], "resources": ["pods", "pods/exec"],
                   "verbs": ["get"]}]})
    rest.create(kinds.lookup("rbac.authorization.k8s.io", "v1", "rolebindings"), "default", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "exec-get-only"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "exec-get-only"},
        "subjects": [{"kind": "User", "name": "viewer", "apiGroup": "rbac.authorization.k8s.io"}]})
    viewer = server.issue_client("viewer", "viewer")
    ws = ["Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
          "Sec-WebSocket-Protocol: v4.channel.k8s.io"]

    def answer(method, headers):
        sock, head = upgrade_request(server, "/api/v1/namespaces/default/pods/echo/exec?"
                                             "container=c&command=id", method, headers, viewer)
        with sock:
            body = upgrade.read_body(sock, head, 4096).decode()
            return head.status, json.loads(body)["message"]
    # Allowed to get (the role applies) but not to create: refused all the same.
    status, body = eventually(
        lambda: (s := answer("GET", ws)) and "cannot create" in s[1] and s,
        timeout=10, message="the role applies")
    assert status == 403 and 'cannot create resource "pods/exec"' in body
    status, body = answer("POST", SPDY_HEADERS)
    assert status == 403 and 'cannot create resource "pods/exec"' in body


def test_gthread_worker_hands_over_the_connection_too(server, fake, tmp_path):
    """The same splice under gunicorn's gthread worker (a thread per connection)."""
    threaded = LocalApiServer(tmp_path / "gthread", store=server.store, ca=server.ca,
                              extra_args=["--worker-class", "gthread"])
    threaded.start()
    try:
        for _ in range(2):      # the worker's thread comes back for the next stream
            sock, head = upgrade_request(threaded, "/api/v1/namespaces/default/pods/echo/"
                                                   "exec?container=c&command=sh")
            with sock:
                assert head.status == 101
                sock.sendall(b"threaded")
                assert read_exactly(sock, 8, head.rest) == b"threaded"
        with threaded.urlopen(threaded.url + "/readyz") as answer:
            assert answer.status == 200
        assert "Traceback" not in threaded.logs()
    finally:
        threaded.stop()


# -- real containerd, kubectl and the Python client --------------------------------------

needs_containerd = pytest.mark.skipif(missing_requirements() is not None,
                                      reason=str(missing_requirements()))


@pytest.fixture(scope="module")
def busybox(server, rest, tmp_path_factory):
    """A real agent (--runtime cri) on a real containerd, running pod bb: a shell reading
    its stdin (for attach) and busybox httpd on 8080 (for port-forward)."""
    reason = missing_requirements()
    if reason is not None:
        pytest.skip(reason)
    from cli.local_images import BUSYBOX_IMAGE

    with running_containerd(tmp_path_factory.mktemp("ctd"), pod_cidr=POD_CIDR) as node:
        agent = AgentProcess(server, tmp_path_factory.mktemp("agent"), node_name=node.node_name,
                             extra_args=["--runtime", "cri", "--container-runtime-endpoint",
                                         node.endpoint, "--node-netns", node.netns_path,
                                         "--resolv-conf", ""])
        try:
            agent.start()
            rest.create(kinds.PODS, "default", {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bb"},
                "spec": {"nodeName": node.node_name, "terminationGracePeriodSeconds": 1,
                         "containers": [{
                             "name": "main", "image": BUSYBOX_IMAGE, "stdin": True,
                             "command": ["sh", "-c", BUSYBOX_SCRIPT]}]}})
            eventually(lambda: _running(rest, "bb"), timeout=60, message="bb running",
                       logs=agent.logs)
            yield node
        finally:
            try:
                rest.delete(kinds.PODS, "default", "bb", grace_period_seconds=0)
            except Exception:
                pass
            agent.stop()


BUSYBOX_SCRIPT = ("mkdir -p /www && echo hello-from-httpd > /www/index.html && "
                  "httpd -p 8080 -h /www && while read line; do echo \"got: $line\"; done")
POD_CIDR = "10.244.29.0/24"


def _running(rest, name):
    status = rest.get(kinds.PODS, "default", name).get("status") or {}
    return status.get("phase") == "Running" and all(
        "running" in (s.get("state") or {}) for s in status.get("containerStatuses") or [{}])


@pytest.mark.kubectl
@needs_containerd
def test_kubectl_exec_output_and_exit_code(server, busybox):
    result = run_kubectl(server.kubeconfig, "exec", "bb", "--", "sh", "-c",
                         "echo out; echo err >&2; exit 3", check=False)
    assert result.stdout == "out\n"
    assert "err" in result.stderr
    assert result.returncode == 3


@pytest.mark.kubectl
@needs_containerd
def test_kubectl_exec_with_stdin_ends_at_eof(server, busybox):
    result = run_kubectl(server.kubeconfig, "exec", "-i", "bb", "--", "wc", "-c",
                         input="x" * 100000)
    assert result.stdout.strip() == "100000"


@pytest.mark.kubectl
@needs_containerd
def test_kubectl_exec_interactive_terminal(server, busybox):
    """``kubectl exec -it`` on a pseudo-terminal: a shell with a tty, typed into."""
    master, slave = os.openpty()
    proc = subprocess.Popen(kubectl_argv(server.kubeconfig, "exec", "-it", "bb", "--", "sh"),
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                            start_new_session=True)
    os.close(slave)
    try:
        os.write(master, b"test -t 0 && echo is-a-$((6*7))-tty; exit 5\n")
        output = b""
        deadline = time.monotonic() + 30
        while b"is-a-42-tty" not in output and time.monotonic() < deadline:
            try:
                output += os.read(master, 4096)
            except OSError:
                break       # kubectl exited and closed the terminal
        assert b"is-a-42-tty" in output, output
        assert proc.wait(30) == 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)


@pytest.mark.kubectl
@needs_containerd
def test_kubectl_cp_in_and_out(server, busybox, tmp_path):
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(300000))
    run_kubectl(server.kubeconfig, "cp", str(source), "default/bb:/tmp/copied.bin")
    back = tmp_path / "out.bin"
    run_kubectl(server.kubeconfig, "cp", "default/bb:/tmp/copied.bin", str(back))
    assert back.read_bytes() == source.read_bytes()


@pytest.mark.kubectl
@needs_containerd
def test_kubectl_attach_reaches_the_main_process(server, busybox):
    proc = subprocess.Popen(kubectl_argv(server.kubeconfig, "attach", "-i", "bb"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write("ping-attach\n")
        proc.stdin.flush()
        line = _readline_until(proc.stdout, "got: ping-attach", 30)
        assert line is not None, proc.stderr.read() if proc.poll() is not None else ""
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.kubectl
@needs_containerd
def test_kubectl_port_forward_to_httpd(server, busybox):
    proc = subprocess.Popen(kubectl_argv(server.kubeconfig, "port-forward", "pod/bb",
                                         ":8080", "--address", "127.0.0.1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _readline_until(proc.stdout, "Forwarding from", 30)
        assert line is not None, proc.stderr.read() if proc.poll() is not None else ""
        port = int(line.split("->")[0].rsplit(":", 1)[1])
        for _ in range(2):      # a second connection over the same stream works too
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                assert b"hello-from-httpd" in rawhttp.get(sock)[1]
    finally:
        proc.kill()
        proc.wait(10)


@needs_containerd
def test_steer_exec_output_and_exit_code(server, busybox):
    result = server.steer("exec", "bb", "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                          check=False)
    assert (result.stdout, result.stderr, result.returncode) == ("out\n", "err\n", 3)
    assert server.steer("exec", "bb", "--", "true").returncode == 0
    refused = server.steer("exec", "bb", "-c", "nope", "--", "true", check=False)
    assert refused.returncode == 1 and "container nope is not valid" in refused.stderr


@needs_containerd
def test_steer_port_forward_to_httpd(server, busybox):
    proc = subprocess.Popen(server.steer_argv("port-forward", "bb", ":8080"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    try:
        line = _readline_until(proc.stdout, "Forwarding from", 30)
        assert line is not None, proc.stderr.read() if proc.poll() is not None else ""
        port = int(line.split("->")[0].strip().rsplit(":", 1)[1])
        for _ in range(2):      # each connection has its own stream
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                assert b"hello-from-httpd" in rawhttp.get(sock)[1]
    finally:
        proc.kill()
        proc.wait(10)


@needs_containerd
def test_python_client_websocket_stream(server, busybox):
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes.stream import stream

    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=server.kubeconfig,
                                       client_configuration=config)
    api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))
    out = stream(api.connect_get_namespaced_pod_exec, "bb", "default",
                 command=["sh", "-c", "echo via-websocket"], stderr=True, stdin=False,
                 stdout=True, tty=False)
    assert out.strip() == "via-websocket"

    from kubernetes.stream import portforward
    forward = portforward(api.connect_get_namespaced_pod_portforward, "bb", "default",
                          ports="8080")
    sock = forward.socket(8080)
    try:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        sock.settimeout(30)
        data = b""
        while b"hello-from-httpd" not in data and (chunk := sock.recv(4096)):
            data += chunk
        assert b"hello-from-httpd" in data
    finally:
        sock.close()
        forward.close()


def _readline_until(stream, wanted, timeout):
    """Read lines from ``stream`` (on a thread) until one contains ``wanted``."""
    found = []

    def read():
        for line in stream:
            if wanted in line:
                found.append(line)
                return
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while reader.is_alive() and time.monotonic() < deadline:
        reader.join(0.1)
    return found[0] if found else None


def test_a_client_leaving_mid_handshake_is_one_log_line(server, fake):
    # A client that hangs up before the TLS handshake is the client's doing, not a
    # server error: one line in the log, no traceback (checked by the next test).
    import socket
    for _ in range(3):
        socket.create_connection(("127.0.0.1", server.port), timeout=10).close()
    deadline = time.monotonic() + 20
    while "event=tls_handshake_failed" not in server.logs():
        assert time.monotonic() < deadline, server.logs()
        time.sleep(0.1)


def test_no_stream_left_a_traceback_in_the_server_log(server, fake):
    assert "Traceback" not in server.logs()
    assert "Error handling request" not in server.logs()
