"""The scheduler's and controller manager's --secure-port: /metrics behind delegated auth.

A ServiceAccount bound to a ClusterRole allowing nonResourceURL /metrics get reads
the metrics; another ServiceAccount gets 403, a caller with no credentials 401;
/healthz is open. The metrics carry the workqueue, leader-election, scheduler and
node-condition families.
"""

import http.client
import socket
import ssl

import pytest

from cli.local_store import free_ports
from control.objects import kinds
from tests.integration.control.test_scheduler import make_node, make_pod
from tests.support.apiproc import eventually
from tests.support.controlplane import create_namespace

NAMESPACE = "secure-port"


@pytest.fixture(scope="module")
def tokens(server):
    """{"reader": token allowed /metrics, "stranger": token of an SA with no such rule}."""
    rest = server.rest_client(timeout=10)
    create_namespace(rest, NAMESPACE)
    for name in ("reader", "stranger"):
        rest.create(kinds.SERVICEACCOUNTS, NAMESPACE, {
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
    rest.create(kinds.CLUSTERROLES, None, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "test-metrics-reader"},
        "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]})
    rest.create(kinds.CLUSTERROLEBINDINGS, None, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "test-metrics-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "test-metrics-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": NAMESPACE}]})
    found = {}
    for name in ("reader", "stranger"):
        answer = rest.request(
            "POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{name}/token",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                  "spec": {"expirationSeconds": 3600}})
        found[name] = answer["status"]["token"]
    make_node(rest, "metrics-node")
    yield found
    rest.close()


def _start(server, procs, name):
    port = free_ports(1)[0]
    serving = server.ca.issue(server.pki_dir, f"{name}-serving", name,
                              ip_addresses=["127.0.0.1"], server=True)
    procs.extra_args = ["--secure-port", str(port), "--tls-cert-file", serving.cert,
                        "--tls-private-key-file", serving.key, "--client-ca-file",
                        server.ca_file]
    procs.start(name)
    return port


def _get(server, port, path="/metrics", token=None):
    context = ssl.create_default_context(cafile=server.ca_file)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    except OSError:
        return None, ""
    finally:
        conn.close()


def _check_auth(server, port, tokens, logs):
    eventually(lambda: _get(server, port, "/healthz")[0] == 200, 60,
               "the secure port's /healthz", logs)
    assert _get(server, port)[0] == 401
    status, body = _get(server, port, token=tokens["stranger"])
    assert status == 403, body
    assert f"system:serviceaccount:{NAMESPACE}:stranger" in body
    status, body = _get(server, port, token="not-a-token")
    assert status == 401, body


def _metrics(server, port, token, wanted):
    def has_all():
        status, body = _get(server, port, token=token)
        return status == 200 and all(text in body for text in wanted) and body
    return has_all


def test_the_scheduler_serves_metrics_to_allowed_callers_only(server, schedulers, tokens):
    port = _start(server, schedulers, "kube-scheduler")
    _check_auth(server, port, tokens, schedulers.logs)
    rest = server.rest_client(timeout=10)
    make_pod(rest, NAMESPACE, "counted")
    eventually(_metrics(server, port, tokens["reader"], [
        'leader_election_master_status{name="steer-scheduler"} 1',
        'scheduler_schedule_attempts_total{result="scheduled",profile="default-scheduler"}',
        "scheduler_scheduling_attempt_duration_seconds_bucket",
        'scheduler_pending_pods{queue="active"}',
        'workqueue_adds_total{name="scheduler"}',
        "process_resident_memory_bytes"]), 60, "the scheduler's metrics", schedulers.logs)
    rest.close()


def test_the_controller_manager_serves_metrics_and_node_conditions(server, managers, tokens):
    port = _start(server, managers, "kube-controller-manager")
    _check_auth(server, port, tokens, managers.logs)
    eventually(_metrics(server, port, tokens["reader"], [
        'leader_election_master_status{name="steer-controller-manager"} 1',
        'workqueue_depth{name="replicaset"}',
        "workqueue_work_duration_seconds_bucket",
        'kube_node_status_condition{node="metrics-node",condition="Ready"',
        "process_cpu_seconds_total"]), 60, "the controller manager's metrics", managers.logs)
    # A caller that connects and stays silent does not block the others.
    silent = socket.create_connection(("127.0.0.1", port))
    try:
        assert _get(server, port, token=tokens["reader"])[0] == 200
    finally:
        silent.close()
