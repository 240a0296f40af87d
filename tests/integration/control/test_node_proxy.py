"""nodes/proxy: an agent's metrics through the API server, for holders of nodes/proxy get.

One API server and one agent (fake runtime) serving TLS as its node: the proxy reaches it
over mutual TLS with the server's kubelet client certificate. What the monitoring addon's
Prometheus does (cli/monitoring_config.py): GET /api/v1/nodes/{node}/proxy/metrics.
"""

import ssl
import urllib.error
import urllib.request

import pytest

from agent.main import Agent, parse_args
from control.objects import kinds
from tests.support.apiproc import eventually

NODE = "proxied-0"


@pytest.fixture(scope="module")
def agent(server, tmp_path_factory):
    args = parse_args(["--kubeconfig", server.kubeconfig, "--node-name", NODE,
                       *server.agent_tls_args(NODE), "--node-ip", "127.0.0.1", "--port", "0",
                       "--runtime", "fake", "--data-dir", str(tmp_path_factory.mktemp("agent")),
                       "--heartbeat-interval", "1", "--stats-interval", "0.3"])
    started = Agent(args).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def registered(rest, agent):
    eventually(lambda: ((rest.get(kinds.NODES, None, NODE).get("status") or {})
                        .get("daemonEndpoints") or {}).get("kubeletEndpoint"),
               timeout=30, message="the agent to register its endpoint")
    return agent


def context_for(server, name=None, groups=()):
    """An SSLContext as the admin (no ``name``) or as the user ``name``."""
    context = ssl.create_default_context(cafile=server.ca_file)
    if name is None:
        context.load_cert_chain(server.cert_file, server.key_file)
    else:
        issued = server.issue_client(name, name, groups)
        context.load_cert_chain(issued.cert, issued.key)
    return context


def get(server, path, context):
    """(status, body text) of GET path on the API server."""
    try:
        with urllib.request.urlopen(server.url + path, context=context, timeout=15) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_agents_metrics_through_the_proxy(server, registered):
    admin = context_for(server)
    status, text = get(server, f"/api/v1/nodes/{NODE}/proxy/metrics", admin)
    assert status == 200 and "steer_agent_pods " in text
    status, text = eventually(
        lambda: (lambda r: r if "node_cpu_usage_seconds_total" in r[1] else None)(
            get(server, f"/api/v1/nodes/{NODE}/proxy/metrics/resource", admin)),
        timeout=20, message="the agent's resource metrics")
    assert status == 200


def test_only_the_monitoring_paths_are_passed_on(server, registered):
    admin = context_for(server)
    for path in ("containerLogs/default/web/c", "exec/default/web/c", "metrics/../healthz",
                 "run/x"):
        status, text = get(server, f"/api/v1/nodes/{NODE}/proxy/{path}", admin)
        assert status == 404, (path, status, text)
    status, text = get(server, f"/api/v1/nodes/{NODE}/proxy/containerLogs/default/web/c",
                       admin)
    assert "serves only" in text and "pods/log" in text
    # The server still answers after the refused requests.
    assert get(server, f"/api/v1/nodes/{NODE}/proxy/healthz", admin)[0] == 200


def test_a_missing_node_is_a_404(server, registered):
    status, text = get(server, "/api/v1/nodes/no-such-node/proxy/metrics", context_for(server))
    assert status == 404 and "no-such-node" in text


def test_rbac_needs_get_on_nodes_proxy(server, rest, registered):
    nobody = context_for(server, "proxy-nobody")
    status, text = get(server, f"/api/v1/nodes/{NODE}/proxy/metrics", nobody)
    assert status == 403 and "nodes/proxy" in text
    reader = context_for(server, "proxy-reader")
    rest.create(kinds.CLUSTERROLES, None, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "proxy-reader"},
        "rules": [{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}]})
    rest.create(kinds.CLUSTERROLEBINDINGS, None, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "proxy-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "proxy-reader"},
        "subjects": [{"kind": "User", "name": "proxy-reader",
                      "apiGroup": "rbac.authorization.k8s.io"}]})
    status, text = eventually(
        lambda: (lambda r: r if r[0] == 200 else None)(
            get(server, f"/api/v1/nodes/{NODE}/proxy/metrics", reader)),
        timeout=20, message="the binding to take effect")
    assert "steer_agent_pods " in text
