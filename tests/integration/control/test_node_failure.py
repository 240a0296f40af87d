"""A node dies and returns: node lifecycle, taint eviction, node IPAM, with real processes.

The store, API server (pods tolerate unreachable for 2 s instead of 300), the
controller manager (ReplicaSet, node lifecycle with a 4 s grace period, taint
eviction, node IPAM), the scheduler and three hollow nodes. How long each step
took is printed (run with -s to see it), never asserted.
"""

import time

import pytest

from control.objects.kinds import EVENTS, NAMESPACES, NODES, PODS, REPLICASETS
from tests.support.apiproc import eventually
from tests.support.controlplane import ControlPlane

UNREACHABLE = "node.kubernetes.io/unreachable"
NAMES = ["node-a", "node-b", "node-c"]


#: Pods get a 2 s unreachable toleration by default.
SERVER_ARGS = ["--default-unreachable-toleration-seconds", "2"]


@pytest.fixture(scope="module")
def cluster(server, tmp_path_factory):
    """Controller manager and scheduler processes, and three hollow nodes."""
    with ControlPlane(server, tmp_path_factory.mktemp("components"),
                      "replicaset,nodelifecycle,taint-eviction-controller,nodeipam",
                      manager_args=["--node-monitor-grace-period", "4s",
                                    "--node-monitor-period", "1s"],
                      nodes=NAMES, renew_interval=0.5) as plane:
        yield plane.nodes, plane.logs


class Steps:
    """Print how long each step took since the previous one."""

    def __init__(self):
        self.start = self.last = time.monotonic()

    def done(self, what):
        now = time.monotonic()
        print(f"  {what}: {now - self.last:.1f}s (total {now - self.start:.1f}s)")
        self.last = now


def ready(node):
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status")
    return None


def taints(node):
    return {(t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or ()}


def live_pods(rest, ns):
    """Pods not being deleted, as name -> (node, running and Ready)."""
    out = {}
    for pod in rest.list(PODS, ns)["items"]:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        status = pod.get("status") or {}
        is_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                       for c in status.get("conditions") or ())
        out[pod["metadata"]["name"]] = (pod["spec"].get("nodeName"),
                                        status.get("phase") == "Running" and is_ready)
    return out


def test_a_dead_node_is_tainted_its_pods_move_and_it_returns(rest, cluster):
    nodes, logs = cluster
    steps = Steps()
    print()

    def cidrs():
        found = [(rest.get(NODES, None, n).get("spec") or {}).get("podCIDR") for n in NAMES]
        return all(found) and found
    given = eventually(cidrs, timeout=60, message="a podCIDR on every node", logs=logs)
    assert len(set(given)) == 3
    assert all(c.startswith("10.244.") and c.endswith("/24") for c in given)
    steps.done(f"podCIDRs {given}")

    ns = "failover"
    rest.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": ns}})
    rest.create(REPLICASETS, ns, {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
        "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})

    def running():
        pods = live_pods(rest, ns)
        return len(pods) == 6 and all(ok for _, ok in pods.values()) and pods
    pods = eventually(running, timeout=60, message="6 running pods", logs=logs)
    per_node = {n: sum(1 for node, _ in pods.values() if node == n) for n in NAMES}
    assert all(per_node.values()), per_node      # spread over all three nodes
    tolerations = rest.get(PODS, ns, next(iter(pods)))["spec"]["tolerations"]
    assert {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": 2} in tolerations
    steps.done(f"6 pods running, per node {per_node}")

    victim = max(per_node, key=per_node.get)
    doomed = {name for name, (node, _) in pods.items() if node == victim}
    nodes.stop_node(victim)
    eventually(lambda: ready(rest.get(NODES, None, victim)) == "Unknown", timeout=60,
               message=f"{victim} Ready=Unknown", logs=logs)
    steps.done(f"{victim} stopped -> Ready=Unknown")
    eventually(lambda: (UNREACHABLE, "NoExecute") in taints(rest.get(NODES, None, victim)),
               timeout=60, message="the unreachable NoExecute taint", logs=logs)
    node = rest.get(NODES, None, victim)
    assert (UNREACHABLE, "NoSchedule") in taints(node)
    steps.done("unreachable:NoExecute taint")

    def evicted():
        gone = {p["metadata"]["name"] for p in rest.list(PODS, ns)["items"]
                if p["metadata"].get("deletionTimestamp")} | \
            (doomed - {p["metadata"]["name"] for p in rest.list(PODS, ns)["items"]})
        return doomed <= gone
    eventually(evicted, timeout=60, message=f"the pods of {victim} evicted", logs=logs)
    steps.done(f"{len(doomed)} pods evicted (toleration 2 s)")

    def replaced():
        pods = live_pods(rest, ns)
        return len(pods) == 6 and all(ok and node != victim for node, ok in pods.values()) \
            and pods
    pods = eventually(replaced, timeout=60, message="6 running pods on the live nodes",
                      logs=logs)
    assert not doomed & set(pods)
    steps.done("replacements running on the other nodes")
    reasons = {e.get("reason") for e in rest.list(EVENTS, ns)["items"]}
    assert {"TaintManagerEviction", "NodeNotReady"} <= reasons    # NodeNotReady: pods marked

    nodes.start_node(victim)

    def back():
        node = rest.get(NODES, None, victim)
        return ready(node) == "True" and not {k for k, _ in taints(node)} & \
            {UNREACHABLE, "node.kubernetes.io/not-ready"}
    eventually(back, timeout=60, message=f"{victim} Ready and untainted", logs=logs)
    steps.done(f"{victim} back: Ready, untainted")
    # Its Terminating pods are confirmed gone by the returning node.
    eventually(lambda: not doomed & {p["metadata"]["name"]
                                     for p in rest.list(PODS, ns)["items"]},
               timeout=60, message="the evicted pods gone for good", logs=logs)
    assert len(live_pods(rest, ns)) == 6
    steps.done("evicted pods deleted for good")


def test_every_node_down_is_full_disruption_and_nothing_stays_tainted(rest, cluster):
    """All nodes silent at once looks like the control plane's own network failing."""
    nodes, logs = cluster
    steps = Steps()
    print()
    for name in NAMES:
        nodes.stop_node(name)
    eventually(lambda: all(ready(rest.get(NODES, None, n)) == "Unknown" for n in NAMES),
               timeout=60, message="every node Ready=Unknown", logs=logs)
    steps.done("all nodes stopped -> Ready=Unknown")
    eventually(lambda: "full disruption" in logs(), timeout=60,
               message="the controller entering full disruption", logs=logs)

    def untainted():
        return not any((key, "NoExecute") in taints(rest.get(NODES, None, n))
                       for n in NAMES for key in (UNREACHABLE, "node.kubernetes.io/not-ready"))
    # A node found silent a pass before the others may have been tainted; entering
    # full disruption takes every NoExecute taint off again.
    eventually(untainted, timeout=60, message="no NoExecute taints", logs=logs)
    steps.done("full disruption: no NoExecute taints")
    for name in NAMES:
        nodes.start_node(name)
    eventually(lambda: all(ready(rest.get(NODES, None, n)) == "True" and untainted()
                           for n in NAMES), timeout=60, message="every node back", logs=logs)
    steps.done("all nodes back and Ready")
