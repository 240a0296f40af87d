"""metrics.k8s.io: quantities, NodeMetrics/PodMetrics from summaries, the cache, the routes."""

import datetime
import types

import falcon.testing
import pytest

from agent.server import AgentServer, server_context
from cli.pki import CertificateAuthority
from control import errors
from control.api import metrics_api, metrics_scrape
from control.api.app import create_app
from control.api.subresources import NO_KUBELET_CLIENT, kubelet_client_context
from tests.support.fake_store import FakeStore

BASE = "/apis/metrics.k8s.io/v1beta1"
STAMP = "2026-12-04T21:00:00Z"


@pytest.mark.parametrize("nanocores, text", [
    (0, "0"), (1, "1n"), (123456789, "123456789n"), (1_000_000, "1m"), (1_500_000_000, "1500m"),
    (2_000_000_000, "2"), (250_000, "250u"), (10_000, "10u"), (12_000_000_000_000, "12k")])
def test_cpu_quantities_are_canonical(nanocores, text):
    assert metrics_api.cpu_quantity(nanocores) == text


@pytest.mark.parametrize("size, text", [
    (0, "0"), (1000, "1k"), (1023, "1023"), (1024, "1Ki"), (1_264_640, "1235Ki"),
    (1_234_567, "1234567"), (4 * 2**20, "4Mi"), (3 * 2**30, "3Gi"), (1536 * 2**20, "1536Mi")])
def test_memory_quantities_are_canonical(size, text):
    assert metrics_api.memory_quantity(size) == text


def cpu(rate=None, total=10):
    out = {"time": STAMP, "usageCoreNanoSeconds": total}
    if rate is not None:
        out["usageNanoCores"] = rate
    return out


def summary(node_rate=5_000_000, pods=()):
    return {"node": {"nodeName": "n1", "cpu": cpu(node_rate),
                     "memory": {"time": STAMP, "workingSetBytes": 2**30}},
            "pods": list(pods)}


def pod_stats(name, uid, containers, namespace="default"):
    return {"podRef": {"name": name, "namespace": namespace, "uid": uid},
            "cpu": cpu(sum(c[1] or 0 for c in containers)),
            "memory": {"time": STAMP, "workingSetBytes": sum(c[2] for c in containers)},
            "containers": [{"name": n, "cpu": cpu(rate), "memory": {"workingSetBytes": size}}
                           for n, rate, size in containers]}


def test_node_and_pod_metrics_objects():
    now = datetime.datetime(2026, 12, 4, 21, 0, 5, tzinfo=datetime.timezone.utc)
    node = {"metadata": {"name": "n1", "labels": {"zone": "a"}}}
    got = metrics_api.node_metrics(node, summary(), now)
    assert got == {"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                   "metadata": {"name": "n1", "creationTimestamp": "2026-12-04T21:00:05Z",
                                "labels": {"zone": "a"}},
                   "timestamp": STAMP, "window": "10s",
                   "usage": {"cpu": "5m", "memory": "1Gi"}}
    assert metrics_api.node_metrics(node, summary(node_rate=None), now) is None
    pod = {"metadata": {"name": "web", "namespace": "default", "uid": "u1"}}
    stats = summary(pods=[pod_stats("web", "u1", [("a", 1_000_000, 4096), ("b", 0, 2048)])])
    entry = metrics_api.find_pod_stats(stats, pod)
    got = metrics_api.pod_metrics(pod, entry, now)
    assert got["metadata"] == {"name": "web", "namespace": "default",
                               "creationTimestamp": "2026-12-04T21:00:05Z"}
    assert got["containers"] == [{"name": "a", "usage": {"cpu": "1m", "memory": "4Ki"}},
                                 {"name": "b", "usage": {"cpu": "0", "memory": "2Ki"}}]
    # Another pod with the same name (a new uid) is not this one.
    assert metrics_api.find_pod_stats(stats, {"metadata": {**pod["metadata"], "uid": "u2"}}) \
        is None
    # One container without a rate yet: the pod waits for it.
    partial = pod_stats("web", "u1", [("a", 1_000_000, 4096), ("b", None, 2048)])
    assert metrics_api.pod_metrics(pod, partial, now) is None


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def ready_node(name, port=10250, ready=True):
    return {"metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_summaries_are_cached_and_failures_left_out():
    calls = []

    def fetch(context, name, host, port):
        calls.append(name)
        if name == "down":
            raise OSError("connection refused")
        return summary()
    clock = Clock()
    cache = metrics_scrape.Summaries(object(), fetch=fetch, clock=clock, ttl=10)
    nodes = [ready_node("n1"), ready_node("down", 10251), ready_node("sick", ready=False),
             {"metadata": {"name": "unregistered"}, "status": {}}]
    assert set(cache.for_nodes(nodes)) == {"n1"}
    assert sorted(calls) == ["down", "n1"]
    clock.now += 5
    assert set(cache.for_nodes(nodes)) == {"n1"}
    assert len(calls) == 2                      # both answers (and the failure) reused
    clock.now += 6
    cache.for_nodes(nodes[:1])
    assert calls[2:] == ["n1"]


def test_without_a_kubelet_client_the_api_says_what_to_do():
    cache = metrics_scrape.Summaries(None)
    with pytest.raises(errors.ServiceUnavailable) as refused:
        cache.for_nodes([ready_node("n1")])
    assert refused.value.message == NO_KUBELET_CLIENT


# -- through the API server's routes ------------------------------------------------------------
@pytest.fixture
def summaries(monkeypatch):
    by_node = {}

    def fetch(context, name, host, port):
        if name not in by_node:
            raise OSError("connection refused")
        return by_node[name]
    monkeypatch.setattr(metrics_scrape, "fetch_summary", fetch)
    return by_node


@pytest.fixture
def client(summaries):
    return falcon.testing.TestClient(create_app(FakeStore(), kubelet_tls=object()))


def add_node(client, name, port, labels=None):
    client.simulate_post("/api/v1/nodes", json={"metadata": {"name": name,
                                                             "labels": labels or {}}})
    node = client.simulate_get(f"/api/v1/nodes/{name}").json
    node["status"] = ready_node(name, port)["status"]
    assert client.simulate_put(f"/api/v1/nodes/{name}/status", json=node).status_code == 200


def add_pod(client, name, node, namespace="default", labels=None, containers=("c",)):
    if namespace != "default":
        client.simulate_post("/api/v1/namespaces", json={"metadata": {"name": namespace}})
    path = f"/api/v1/namespaces/{namespace}/pods"
    made = client.simulate_post(path, json={
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"nodeName": node, "containers": [{"name": c, "image": "x"}
                                                  for c in containers]}})
    assert made.status_code == 201, made.text
    pod = made.json
    pod["status"] = {"phase": "Running"}
    assert client.simulate_put(f"{path}/{name}/status", json=pod).status_code == 200
    return pod["metadata"]["uid"]


def test_discovery_lists_the_group(client):
    groups = {g["name"]: g for g in client.simulate_get("/apis").json["groups"]}
    assert groups["metrics.k8s.io"]["preferredVersion"]["version"] == "v1beta1"
    assert client.simulate_get("/apis/metrics.k8s.io").json["kind"] == "APIGroup"
    listing = client.simulate_get(BASE).json
    assert {(r["name"], r["kind"], r["namespaced"]) for r in listing["resources"]} == {
        ("nodes", "NodeMetrics", False), ("pods", "PodMetrics", True)}
    assert all(r["verbs"] == ["get", "list"] for r in listing["resources"])


def test_node_metrics_list_get_and_selector(client, summaries):
    add_node(client, "n1", 10250, {"role": "web"})
    add_node(client, "n2", 10251)
    add_node(client, "dead", 10252)
    summaries["n1"] = summary(3_000_000)
    summaries["n2"] = summary(2_000_000_000)
    listing = client.simulate_get(f"{BASE}/nodes")
    assert listing.status_code == 200 and listing.json["kind"] == "NodeMetricsList"
    assert [(m["metadata"]["name"], m["usage"]["cpu"]) for m in listing.json["items"]] == [
        ("n1", "3m"), ("n2", "2")]
    one = client.simulate_get(f"{BASE}/nodes/n1").json
    assert one["kind"] == "NodeMetrics" and one["metadata"]["labels"] == {"role": "web"}
    selected = client.simulate_get(f"{BASE}/nodes", params={"labelSelector": "role=web"}).json
    assert [m["metadata"]["name"] for m in selected["items"]] == ["n1"]
    for missing in ("dead", "nope"):
        answer = client.simulate_get(f"{BASE}/nodes/{missing}")
        assert answer.status_code == 404
        assert answer.json["message"] == f'nodes.metrics.k8s.io "{missing}" not found'


def test_pod_metrics_by_namespace_everywhere_and_by_label(client, summaries):
    add_node(client, "n1", 10250)
    web = add_pod(client, "web", "n1", labels={"app": "web"}, containers=("a", "b"))
    db = add_pod(client, "db", "n1", namespace="data")
    add_pod(client, "new", "n1")            # no stats on the agent yet
    summaries["n1"] = summary(pods=[
        pod_stats("web", web, [("a", 2_000_000, 4096), ("b", 1_000_000, 1024)]),
        pod_stats("db", db, [("c", 5_000_000, 2**20)], namespace="data")])
    default = client.simulate_get(f"{BASE}/namespaces/default/pods").json
    assert default["kind"] == "PodMetricsList"
    [item] = default["items"]
    assert item["metadata"]["name"] == "web" and item["metadata"]["labels"] == {"app": "web"}
    assert [c["usage"] for c in item["containers"]] == [{"cpu": "2m", "memory": "4Ki"},
                                                         {"cpu": "1m", "memory": "1Ki"}]
    everywhere = client.simulate_get(f"{BASE}/pods").json["items"]
    assert [(m["metadata"]["namespace"], m["metadata"]["name"]) for m in everywhere] == [
        ("data", "db"), ("default", "web")]
    labelled = client.simulate_get(f"{BASE}/pods", params={"labelSelector": "app=web"}).json
    assert [m["metadata"]["name"] for m in labelled["items"]] == ["web"]
    assert client.simulate_get(f"{BASE}/namespaces/data/pods/db").json["kind"] == "PodMetrics"
    assert client.simulate_get(f"{BASE}/namespaces/default/pods/new").status_code == 404
    bad = client.simulate_get(f"{BASE}/pods", params={"labelSelector": "a in (b"})
    assert bad.status_code == 400


# -- one real scrape over mutual TLS ------------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("pki"))
    ca = CertificateAuthority.create(f"{base}/ca")
    return types.SimpleNamespace(
        ca=ca, serving=ca.issue(base, "kubelet", "system:node:n1", dns_names=["n1"],
                                ip_addresses=["127.0.0.1"], server=True),
        apiserver=ca.issue(base, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                           ["system:masters"], client=True))


def test_fetch_summary_from_a_real_agent_port(pki):
    class Collector:
        def summary(self):
            return summary()
    context = server_context(pki.serving.cert, pki.serving.key, pki.ca.cert_path)
    agent = AgentServer("127.0.0.1", 0, None, ssl_context=context, stats=Collector()).start()
    tls = kubelet_client_context(pki.ca.cert_path, pki.apiserver.cert, pki.apiserver.key)
    try:
        got = metrics_scrape.fetch_summary(tls, "n1", "127.0.0.1", agent.port)
        assert got["node"]["cpu"]["usageNanoCores"] == 5_000_000
        # An agent whose certificate names another node is not asked.
        with pytest.raises(OSError):
            metrics_scrape.fetch_summary(tls, "n2", "127.0.0.1", agent.port)
    finally:
        agent.stop()


def test_tables_for_kubectl_get(client, summaries):
    add_node(client, "n1", 10250)
    web = add_pod(client, "web", "n1", containers=("a", "b"))
    summaries["n1"] = summary(pods=[pod_stats("web", web, [("a", 1_500_000, 4096),
                                                            ("b", 500_000, 4096)])])
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    nodes = client.simulate_get(f"{BASE}/nodes", headers=accept)
    assert nodes.headers["content-type"].startswith("application/json;as=Table")
    assert [c["name"] for c in nodes.json["columnDefinitions"]] == ["Name", "cpu", "memory",
                                                                    "Window"]
    assert nodes.json["rows"][0]["cells"] == ["n1", "5m", "1Gi", "10s"]
    pods = client.simulate_get(f"{BASE}/namespaces/default/pods/web", headers=accept).json
    assert pods["rows"][0]["cells"] == ["web", "2m", "8Ki", "10s"]
    assert pods["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
