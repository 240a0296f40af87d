"""End to end: `steer up --addons dns,monitoring` runs Prometheus, which scrapes the cluster.

One containers cluster (2 nodes) for the module, STEER_MONITORING_INTERVAL=2s (scrape
and rule interval; the NodeNotReady alert's ``for:`` is 8 s). Prometheus's port is reached
the way the other e2e tests reach pods: a TCP connection opened inside the node's network
namespace to the pod IP (agent/netns.py), TLS with the admin's client certificate;
nothing is added to this machine's own namespace. In order: the addon comes up and refuses
a caller without a certificate; every target (API server, both agents' /metrics and
/metrics/resource through nodes/proxy, the annotated DNS pods, the scheduler's and
controller manager's secure ports and the 3 store members' /metrics through their doors,
Prometheus itself) is up; a store member's door refuses a cluster-CA certificate outside
system:monitoring; the rules load; every dashboard panel (the store's too) returns series; `steer top pods` agrees with
Prometheus; NodeNotReady fires when an agent is SIGKILLed (its supervisor paused) and
clears when the supervisor brings it back.
"""

import http.client
import json
import os
import signal
import ssl
import urllib.parse

import pytest

from agent import netns
from cli import (
    local_containers,
    local_monitoring,
    local_monitoring_image,
    monitoring_dashboard,
    supervisor,
)
from control.objects import conditions, kinds
from tests.support.apiproc import eventually

from .conftest import E2ECluster

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(local_containers.unavailable_reason() is not None,
                                 reason=f"no containers here: "
                                        f"{local_containers.unavailable_reason()}"),
              pytest.mark.skipif(local_monitoring_image.unavailable_reason() is not None,
                                 reason=f"{local_monitoring_image.unavailable_reason()}")]

SELECTOR = "app.kubernetes.io/name=prometheus"
#: Tolerances of `steer top pods` against Prometheus at one moment: both read the same CRI
#: stats, but at different instants (the API server caches an agent's summary up to 10 s;
#: Prometheus keeps its last scrape, at most 2 s old), so a live pod's figures move a bit.
MEMORY_TOLERANCE = (0.15, 8 * 2**20)        # 15 % or 8 MiB, whichever is larger
CPU_TOLERANCE = 0.1                         # cores (top's window and rate[1m] differ)


class MonitoredCluster(E2ECluster):
    """An E2ECluster whose `steer up` also starts the monitoring addon."""

    def steer(self, *args, **kwargs):
        if args[:1] == ("up",):
            args = (*args, "--addons", "dns,monitoring")
        return super().steer(*args, **kwargs)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = MonitoredCluster(tmp_path_factory.mktemp("steer-home"), nodes=2, runtime="cri")
    c.env[local_monitoring.INTERVAL_ENV] = "2s"
    try:
        yield c.up()
    finally:
        c.stop()


class Prometheus:
    """Prometheus's HTTP API, from inside the namespace of the node its pod runs on."""

    def __init__(self, cluster, pod):
        self.cluster, self.pod = cluster, pod
        self.node = pod["spec"]["nodeName"]
        self.address = (pod["status"]["podIP"], 9090)
        self.netns = cluster.local.state["containerd"][self.node]["netns"]
        pki = os.path.join(cluster.home, "pki")
        self.context = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        self.context.load_cert_chain(os.path.join(pki, "admin.crt"),
                                     os.path.join(pki, "admin.key"))

    def request(self, path, context=None):
        """(status, body) of GET ``path``."""
        sock = netns.connect(self.netns, self.address, timeout=10)
        tls = (context or self.context).wrap_socket(
            sock, server_hostname="prometheus.monitoring.svc")
        conn = http.client.HTTPConnection("prometheus.monitoring.svc", timeout=10)
        conn.sock = tls
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def api(self, path, **query):
        status, body = self.request(f"/api/v1/{path}?{urllib.parse.urlencode(query)}")
        assert status == 200, f"{path}: {status} {body[:300]}"
        return json.loads(body)["data"]

    def query(self, expression):
        return self.api("query", query=expression)["result"]


@pytest.fixture(scope="module")
def prometheus(cluster):
    def ready():
        pods = cluster.rest.list(kinds.PODS, local_monitoring.NAMESPACE,
                                 label_selector=SELECTOR)["items"]
        return next((p for p in pods if conditions.is_ready(p)), None)
    pod = eventually(ready, timeout=150, message="the Prometheus pod to be ready",
                     logs=cluster.logs)
    server = Prometheus(cluster, pod)
    eventually(lambda: server.request("/-/ready")[0] == 200, timeout=60,
               message="Prometheus to answer /-/ready", logs=cluster.logs)
    return server


def test_the_addon_comes_up_and_asks_for_a_client_certificate(prometheus):
    anonymous = ssl.create_default_context(
        cafile=os.path.join(prometheus.cluster.home, "pki", "ca.crt"))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        prometheus.request("/-/ready", context=anonymous)
    # Still serving after the refused handshake.
    assert prometheus.request("/-/ready")[0] == 200


def test_every_component_is_scraped(prometheus):
    expected = {"apiserver": 1, "nodes": 2, "nodes-resource": 2, "pods": 2, "prometheus": 1,
                "scheduler": 1, "controller-manager": 1, "store": 3}

    def all_up():
        targets = prometheus.api("targets", state="active")["activeTargets"]
        jobs = {}
        for target in targets:
            jobs.setdefault(target["labels"]["job"], []).append(target["health"])
        counts = {job: len(health) for job, health in jobs.items()}
        healthy = all(h == "up" for health in jobs.values() for h in health)
        return (counts, targets) if counts == expected and healthy else None
    counts, targets = eventually(all_up, timeout=90, message="every target to be up",
                                 logs=prometheus.cluster.logs)
    nodes = {t["labels"]["node"] for t in targets if t["labels"]["job"] == "nodes"}
    assert nodes == {"node-1", "node-2"}
    pods = {t["labels"]["namespace"] for t in targets if t["labels"]["job"] == "pods"}
    assert pods == {"kube-system"}                # the steer-dns replicas (annotated)
    members = {t["labels"]["member"] for t in targets if t["labels"]["job"] == "store"}
    assert members == {"s1", "s2", "s3"}


def test_a_store_member_refuses_a_cluster_certificate_outside_system_monitoring(prometheus):
    """The admin's certificate (cluster CA, system:masters) gets 403 from a member's door."""
    cluster = prometheus.cluster
    network = cluster.local.state["network"]
    lan = os.path.join("/run/netns", network["lanNetns"])
    context = ssl.create_default_context(
        cafile=os.path.join(cluster.local.state["store"]["dir"], "pki", "ca.crt"))
    context.load_cert_chain(os.path.join(cluster.home, "pki", "admin.crt"),
                            os.path.join(cluster.home, "pki", "admin.key"))
    sock = netns.connect(lan, (network["gateway"], 2381), timeout=10)
    conn = http.client.HTTPConnection("localhost", timeout=10)
    conn.sock = context.wrap_socket(sock, server_hostname="localhost")
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 403, response.status
        assert "system:monitoring" in response.read().decode()
    finally:
        conn.close()


def test_the_rules_and_alerts_load(prometheus):
    groups = {g["name"]: g["rules"] for g in prometheus.api("rules")["groups"]}
    assert len(groups["steer.rules"]) == 7 and len(groups["steer.alerts"]) == 7
    assert all(r["health"] in ("ok", "unknown") for rules in groups.values() for r in rules)


def test_every_dashboard_panel_returns_series(prometheus):
    missing = []

    def answered():
        missing[:] = [(title, expr) for title, expr in monitoring_dashboard.expressions()
                      if not prometheus.query(expr)]
        return not missing
    try:
        eventually(answered, timeout=90, message="series for every panel")
    except AssertionError:
        raise AssertionError(f"panels without series: {missing}") from None


def _top_pods(cluster):
    """{(namespace, pod): (cpu cores, memory bytes)} from `steer top pods -A`."""
    out = cluster.steer("top", "pods", "-A", "--no-headers").stdout
    found = {}
    for line in out.splitlines():
        namespace, name, cpu, memory = line.split()
        found[(namespace, name)] = (int(cpu.rstrip("m")) / 1000,
                                    int(memory.rstrip("Mi")) * 2**20)
    return found


def test_steer_top_pods_agrees_with_prometheus(prometheus):
    """Both read the agents' CRI stats: memory within MEMORY_TOLERANCE, cpu CPU_TOLERANCE."""
    def compare():
        top = _top_pods(prometheus.cluster)
        memory = {(s["metric"]["namespace"], s["metric"]["pod"]): float(s["value"][1])
                  for s in prometheus.query("pod_memory_working_set_bytes")}
        cpu = {(s["metric"]["namespace"], s["metric"]["pod"]): float(s["value"][1])
               for s in prometheus.query("rate(pod_cpu_usage_seconds_total[1m])")}
        if not top or set(top) != set(memory) or set(top) != set(cpu):
            return None
        return top, memory, cpu
    top, memory, cpu = eventually(compare, timeout=90,
                                  message="the same pods in `steer top pods` and Prometheus")
    for key, (top_cpu, top_memory) in top.items():
        relative, absolute = MEMORY_TOLERANCE
        # top floors to whole MiB: compare with the same rounding.
        floored = memory[key] // 2**20 * 2**20
        assert abs(top_memory - floored) <= max(relative * floored, absolute), \
            (key, top_memory, memory[key])
        if key[0] == local_monitoring.NAMESPACE:
            # Prometheus's own cpu comes in bursts (11 scrapes and the rules every 2 s):
            # top's short window and rate[1m] see different shares of them.
            continue
        assert abs(top_cpu - cpu[key]) <= CPU_TOLERANCE, (key, top_cpu, cpu[key])


def test_steer_top_nodes_agrees_with_prometheus(prometheus):
    """`steer top nodes` and the node_* families: the same node readings (memory)."""
    def compare():
        rows = [line.split() for line in prometheus.cluster.steer(
            "top", "nodes", "--no-headers").stdout.splitlines()]
        top = {r[0]: (int(r[1].rstrip("m")) / 1000, int(r[3].rstrip("Mi")) * 2**20)
               for r in rows}
        memory = {s["metric"]["node"]: float(s["value"][1])
                  for s in prometheus.query("node_memory_working_set_bytes")}
        cpu = {s["metric"]["node"]: float(s["value"][1])
               for s in prometheus.query("node:cpu_usage_cores:rate1m")}
        return (top, memory, cpu) if set(top) == set(memory) == set(cpu) == \
            {"node-1", "node-2"} else None
    top, memory, cpu = eventually(compare, timeout=90,
                                  message="both nodes in `steer top nodes` and Prometheus")
    relative, absolute = MEMORY_TOLERANCE
    for node, (top_cpu, top_memory) in top.items():
        floored = memory[node] // 2**20 * 2**20
        assert abs(top_memory - floored) <= max(relative * floored, absolute), \
            (node, top_memory, memory[node])
        # A local node's cpu is the whole machine's (/proc/stat), which other work moves
        # within seconds: only its presence and sign are compared, not its value.
        assert top_cpu >= 0 and cpu[node] >= 0, (node, top_cpu, cpu[node])


def _node_alerts(prometheus, node):
    return [a for a in prometheus.api("alerts")["alerts"]
            if a["labels"]["alertname"] == "NodeNotReady" and a["labels"]["node"] == node]


def test_node_not_ready_fires_when_an_agent_dies_and_clears_when_it_returns(prometheus):
    cluster = prometheus.cluster
    victim = "node-1" if prometheus.node != "node-1" else "node-2"
    assert not _node_alerts(prometheus, victim)
    keeper = supervisor.running_pid(cluster.local)
    assert keeper, "the cluster's supervisor is not running"
    # Pause the supervisor (it would restart the agent within a second), kill the agent.
    os.kill(keeper, signal.SIGSTOP)
    try:
        os.kill(cluster.pid(victim), signal.SIGKILL)
        fired = eventually(lambda: [a for a in _node_alerts(prometheus, victim)
                                    if a["state"] == "firing"],
                           timeout=90, message=f"NodeNotReady to fire for {victim}",
                           logs=cluster.logs)
        assert fired[0]["labels"]["severity"] == "critical"
    finally:
        os.kill(keeper, signal.SIGCONT)
    eventually(lambda: not _node_alerts(prometheus, victim), timeout=120,
               message=f"NodeNotReady to clear once {victim}'s agent is back",
               logs=cluster.logs)
    eventually(lambda: cluster.node_ready(victim), timeout=60,
               message=f"{victim} to be Ready again")
