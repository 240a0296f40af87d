"""A real steer-apiserver: binding, kubectl logs (-f) through a fake node agent,
graceful pod deletion with kubectl, and /metrics."""

import json
import shutil
import subprocess
import urllib.request

import pytest

from tests.support.apiproc import LocalApiServer
from tests.support.fake_agent import FakeAgent

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
TOKEN = "agent-token-123"


@pytest.fixture(scope="module")
def agent():
    fake = FakeAgent(token=TOKEN)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    base = tmp_path_factory.mktemp("api-sub")
    token_file = base / "agent-token"
    token_file.write_text(TOKEN + "\n")
    server = LocalApiServer(base, extra_args=["--agent-token-file", str(token_file)])
    try:
        server.start()
        yield server
    except Exception:
        print(server.logs())
        raise
    finally:
        server.stop()


def call(api, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(api.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
        return response.status, (json.loads(raw) if raw.startswith(b"{") else raw.decode())


@pytest.fixture(scope="module")
def bound_pod(api, agent):
    """A node whose agent is the fake one, and a pod bound to it by a Binding."""
    call(api, "POST", "/api/v1/nodes", {"metadata": {"name": "n1"}})
    _, node = call(api, "GET", "/api/v1/nodes/n1")
    node["status"] = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                      "daemonEndpoints": {"kubeletEndpoint": {"Port": agent.port}}}
    call(api, "PUT", "/api/v1/nodes/n1/status", node)
    api.kubectl("run", "web", "--image=busybox", "--restart=Never")
    status, body = call(api, "POST", "/api/v1/namespaces/default/pods/web/binding",
                        {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web"},
                         "target": {"kind": "Node", "name": "n1"}})
    assert status == 201 and body["status"] == "Success"
    agent.logs[("default", "web", "web")] = ["hello", "world"]
    return "web"


def test_kubectl_logs_and_tail(api, agent, bound_pod):
    assert api.kubectl("logs", bound_pod).stdout == "hello\nworld\n"
    assert api.kubectl("logs", bound_pod, "--tail=1").stdout == "world\n"
    assert agent.requests[-1]["authorization"] == f"Bearer {TOKEN}"


def test_kubectl_logs_follow_streams(api, agent, bound_pod):
    proc = subprocess.Popen(["kubectl", "--kubeconfig", api.kubeconfig, "logs", "-f",
                             bound_pod], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline() == "hello\n"
        assert proc.stdout.readline() == "world\n"
        agent.append("streamed")
        assert proc.stdout.readline() == "streamed\n"
        agent.finish()
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_unbound_pod_logs_error(api):
    api.kubectl("run", "pending", "--image=busybox", "--restart=Never")
    result = api.kubectl("logs", "pending", check=False)
    assert result.returncode != 0
    assert "pod pending is not scheduled to a node yet" in result.stderr


def test_graceful_pod_deletion_with_kubectl(api, bound_pod):
    api.kubectl("delete", "pod", bound_pod, "--wait=false", "--grace-period=45")
    pod = json.loads(api.kubectl("get", "pod", bound_pod, "-o", "json").stdout)
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 45
    assert pod["metadata"]["deletionTimestamp"]
    # What the node agent does once the containers stopped.
    api.kubectl("delete", "pod", bound_pod, "--grace-period=0", "--force")
    gone = api.kubectl("get", "pod", bound_pod, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_metrics_page(api):
    with urllib.request.urlopen(api.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    assert 'apiserver_request_total{verb="GET",group="",resource="pods",subresource="log"' \
        in text
    assert "apiserver_request_duration_seconds_bucket" in text
    assert 'apiserver_current_inflight_requests{request_kind="readOnly"} 1' in text
