"""A real steer-apiserver: binding, logs (-f) through a fake node agent with steer
(and kubectl, where installed), graceful pod deletion, and /metrics."""

import json
import os
import subprocess
import urllib.request

import pytest

from tests.support.apiproc import ROOT
from tests.support.fake_agent import FakeAgent


@pytest.fixture(scope="module")
def agent(server):
    """A fake agent for node n1, serving mutual TLS with a certificate of the server's CA."""
    fake = FakeAgent.for_server(server, ["n1"])
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def api(server):
    return server


def call(api, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(api.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with api.urlopen(request, timeout=10) as response:
        raw = response.read()
        return response.status, (json.loads(raw) if raw.startswith(b"{") else raw.decode())


def create_pod(api, name):
    """What `kubectl run NAME --image=busybox --restart=Never` creates."""
    call(api, "POST", "/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"run": name}},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": name, "image": "busybox"}]}})


@pytest.fixture(scope="module")
def bound_pod(api, agent):
    """A node whose agent is the fake one, and a pod bound to it by a Binding."""
    call(api, "POST", "/api/v1/nodes", {"metadata": {"name": "n1"}})
    _, node = call(api, "GET", "/api/v1/nodes/n1")
    node["status"] = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                      "daemonEndpoints": {"kubeletEndpoint": {"Port": agent.port}}}
    call(api, "PUT", "/api/v1/nodes/n1/status", node)
    create_pod(api, "web")
    status, body = call(api, "POST", "/api/v1/namespaces/default/pods/web/binding",
                        {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web"},
                         "target": {"kind": "Node", "name": "n1"}})
    assert status == 201 and body["status"] == "Success"
    agent.logs[("default", "web", "web")] = ["hello", "world"]
    return "web"


def test_logs_and_tail(api, agent, bound_pod):
    assert api.steer("logs", bound_pod).stdout == "hello\nworld\n"
    assert api.steer("logs", bound_pod, "--tail=1").stdout == "world\n"
    # The server presented its kubelet client certificate (--kubelet-client-certificate).
    assert agent.requests[-1]["user"] == "kube-apiserver-kubelet-client"


@pytest.mark.kubectl
def test_kubectl_logs_and_tail(api, agent, bound_pod):
    assert api.kubectl("logs", bound_pod).stdout == "hello\nworld\n"
    assert api.kubectl("logs", bound_pod, "--tail=1").stdout == "world\n"


def test_logs_follow_streams(api, agent, bound_pod):
    proc = subprocess.Popen(api.steer_argv("logs", "-f", bound_pod), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": ROOT})
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
    create_pod(api, "pending")
    result = api.steer("logs", "pending", check=False)
    assert result.returncode != 0
    assert "pod pending is not scheduled to a node yet" in result.stderr


def test_graceful_pod_deletion(api, bound_pod):
    api.steer("delete", "pod", bound_pod, "--wait=false", "--grace-period=45")
    pod = json.loads(api.steer("get", "pod", bound_pod, "-o", "json").stdout)
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 45
    assert pod["metadata"]["deletionTimestamp"]
    # What the node agent does once the containers stopped.
    api.steer("delete", "pod", bound_pod, "--grace-period=0", "--force")
    gone = api.steer("get", "pod", bound_pod, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_metrics_page(api):
    with api.urlopen(api.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    assert 'apiserver_request_total{verb="GET",group="",resource="pods",subresource="log"' \
        in text
    assert "apiserver_request_duration_seconds_bucket" in text
    assert 'apiserver_current_inflight_requests{request_kind="readOnly"} 1' in text
