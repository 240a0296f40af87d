"""metrics.k8s.io end to end: API server, real agents (fake runtime), clients and kubectl top.

Three agents run in this process with the fake runtime (each fake container uses
1 millicore and 4 MiB); the API server scrapes their /stats/summary over mutual TLS.
"""

import pytest
from kubernetes import client as k8s
from kubernetes import config

from agent.main import Agent, parse_args
from control.objects.kinds import NAMESPACES, PODS, ROLEBINDINGS
from tests.support.apiproc import eventually

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
NODES = ("metrics-0", "metrics-1", "metrics-2")
BASE = f"/apis/{GROUP}/{VERSION}"


@pytest.fixture(scope="module")
def agents(server, tmp_path_factory):
    base = tmp_path_factory.mktemp("metrics-agents")
    started = {}
    try:
        for index, name in enumerate(NODES):
            args = parse_args(["--kubeconfig", server.kubeconfig, "--node-name", name,
                               *server.agent_tls_args(name), "--node-ip", "127.0.0.1",
                               "--port", "0", "--runtime", "fake",
                               "--data-dir", str(base / f"n{index}"),
                               "--heartbeat-interval", "1", "--sync-period", "0.2",
                               "--stats-interval", "0.3"])
            started[name] = Agent(args).start()
        yield started
    finally:
        for agent in started.values():
            agent.stop()


def _pod(name, node, labels, containers=("main",)):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": c, "image": "x",
                                                       "command": ["serve"]}
                                                      for c in containers]}}


def _has_rates(agent, pod_names=()):
    """Whether the agent's own summary has cpu rates for the node and these pods."""
    summary = agent.stats.summary()
    rated = {p["podRef"]["name"] for p in summary["pods"]
             if all("usageNanoCores" in c["cpu"] for c in p["containers"])}
    return "usageNanoCores" in summary["node"]["cpu"] and set(pod_names) <= rated


@pytest.fixture(scope="module")
def running(server, rest, agents):
    """Pods on the agents, Running, with cpu rates on their agents."""
    rest.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": "metrics-other"}})
    rest.create(PODS, "default", _pod("web", NODES[0], {"app": "web"}, ("a", "b")))
    rest.create(PODS, "default", _pod("api", NODES[1], {"app": "api"}))
    rest.create(PODS, "metrics-other", _pod("db", NODES[2], {"app": "db"}))
    for namespace, name in (("default", "web"), ("default", "api"), ("metrics-other", "db")):
        eventually(lambda n=name, ns=namespace: (rest.get(PODS, ns, n).get("status") or {})
                   .get("phase") == "Running", timeout=60, message=f"{name} running")
    for node, pods in ((NODES[0], ["web"]), (NODES[1], ["api"]), (NODES[2], ["db"])):
        eventually(lambda a=agents[node], p=pods: _has_rates(a, p), timeout=30,
                   message=f"cpu rates on {node}")
    return agents


@pytest.fixture(scope="module")
def custom(server):
    return k8s.CustomObjectsApi(config.new_client_from_config(config_file=server.kubeconfig))


def _names(listing):
    return sorted(item["metadata"]["name"] for item in listing["items"])


def test_python_client_lists_every_node_and_gets_one(custom, running):
    def listed():
        found = custom.list_cluster_custom_object(GROUP, VERSION, "nodes")
        return found if set(NODES) <= set(_names(found)) else None
    listing = eventually(listed, timeout=30, message="every node's metrics")
    assert listing["kind"] == "NodeMetricsList"
    one = custom.get_cluster_custom_object(GROUP, VERSION, "nodes", NODES[0])
    assert one["kind"] == "NodeMetrics" and one["window"] == "10s"
    assert one["usage"]["cpu"].endswith(("n", "u", "m")) or one["usage"]["cpu"].isdigit()
    assert one["usage"]["memory"]
    assert one["metadata"]["labels"]["kubernetes.io/hostname"] == NODES[0]


def test_pod_metrics_by_namespace_everywhere_and_label(custom, running):
    def web():
        found = custom.list_namespaced_custom_object(GROUP, VERSION, "default", "pods")
        return found if _names(found) == ["api", "web"] else None
    listing = eventually(web, timeout=30, message="the default namespace's pod metrics")
    by_name = {item["metadata"]["name"]: item for item in listing["items"]}
    # The fake runtime: 1 millicore and 4 MiB per container.
    assert [(c["name"], c["usage"]["memory"]) for c in by_name["web"]["containers"]] == [
        ("a", "4Mi"), ("b", "4Mi")]
    assert by_name["web"]["containers"][0]["usage"]["cpu"] == "1m"
    everywhere = eventually(
        lambda: (lambda f: f if {"db", "web", "api"} <= set(_names(f)) else None)(
            custom.list_cluster_custom_object(GROUP, VERSION, "pods")),
        timeout=30, message="pod metrics in every namespace")
    assert {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere["items"]} \
        >= {("metrics-other", "db"), ("default", "web")}
    labelled = custom.list_cluster_custom_object(GROUP, VERSION, "pods",
                                                 label_selector="app=db")
    assert _names(labelled) == ["db"]
    got = custom.get_namespaced_custom_object(GROUP, VERSION, "metrics-other", "pods", "db")
    assert got["metadata"]["namespace"] == "metrics-other"
    with pytest.raises(k8s.exceptions.ApiException) as missing:
        custom.get_namespaced_custom_object(GROUP, VERSION, "default", "pods", "nope")
    assert missing.value.status == 404


def test_steer_top(server, running):
    nodes = eventually(lambda: (lambda out: out if all(n in out for n in NODES) else None)(
        server.steer("top", "nodes").stdout), timeout=30, message="steer top nodes")
    assert nodes.splitlines()[0].split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)",
                                             "MEMORY(%)"]
    pods = server.steer("top", "pods", "-A", "--containers").stdout.splitlines()
    assert pods[0].split() == ["NAMESPACE", "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert ["default", "web", "a", "1m", "4Mi"] in [line.split() for line in pods]
    labelled = server.steer("top", "pods", "-l", "app=web").stdout.splitlines()
    assert [line.split() for line in labelled[1:]] == [["web", "2m", "8Mi"]]


@pytest.mark.kubectl
def test_kubectl_top(server, running):
    nodes = eventually(lambda: (lambda r: r.stdout if r.returncode == 0 and
                                all(n in r.stdout for n in NODES) else None)(
        server.kubectl("top", "nodes", check=False)), timeout=30, message="kubectl top nodes")
    header, *rows = nodes.splitlines()
    assert header.split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    assert {row.split()[0] for row in rows} >= set(NODES)
    pods = server.kubectl("top", "pods", "-A").stdout.splitlines()
    assert pods[0].split() == ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert ["default", "web", "2m", "8Mi"] in [line.split() for line in pods]
    containers = server.kubectl("top", "pods", "-n", "default", "--containers",
                                "-l", "app=web").stdout.splitlines()
    assert [line.split() for line in containers[1:]] == [["web", "a", "1m", "4Mi"],
                                                         ["web", "b", "1m", "4Mi"]]


def test_rbac_view_reads_metrics_and_a_stranger_gets_403(server, rest, running):
    stranger = k8s.CustomObjectsApi(config.new_client_from_config(
        config_file=server.kubeconfig_for("metrics-stranger", "stranger")))
    with pytest.raises(k8s.exceptions.ApiException) as refused:
        stranger.list_cluster_custom_object(GROUP, VERSION, "nodes")
    assert refused.value.status == 403
    with pytest.raises(k8s.exceptions.ApiException) as refused:
        stranger.list_namespaced_custom_object(GROUP, VERSION, "default", "pods")
    assert refused.value.status == 403
    # view (aggregating system:aggregated-metrics-reader) in one namespace: its pods' metrics.
    rest.create(ROLEBINDINGS, "default", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "viewer-view", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "view"},
        "subjects": [{"kind": "User", "name": "viewer", "apiGroup": "rbac.authorization.k8s.io"}]})
    viewer = k8s.CustomObjectsApi(config.new_client_from_config(
        config_file=server.kubeconfig_for("metrics-viewer", "viewer")))

    def allowed():
        try:
            return viewer.list_namespaced_custom_object(GROUP, VERSION, "default", "pods")
        except k8s.exceptions.ApiException as exc:
            if exc.status != 403:
                raise
            return None
    assert eventually(allowed, timeout=30, message="view grants pod metrics")["kind"] == \
        "PodMetricsList"
    with pytest.raises(k8s.exceptions.ApiException) as refused:
        viewer.list_namespaced_custom_object(GROUP, VERSION, "metrics-other", "pods")
    assert refused.value.status == 403


def test_a_node_whose_agent_is_down_is_left_out(server, custom, running):
    down = running[NODES[2]]
    down.server.stop()                  # the agent's port is gone; the Node still says Ready

    def left_out():
        try:
            names = _names(custom.list_cluster_custom_object(GROUP, VERSION, "nodes"))
        except k8s.exceptions.ApiException:
            return None
        return names if NODES[2] not in names and {NODES[0], NODES[1]} <= set(names) else None
    eventually(left_out, timeout=40, message="the dead agent's node left out")
    pods = custom.list_cluster_custom_object(GROUP, VERSION, "pods")
    assert "db" not in _names(pods) and "web" in _names(pods)
