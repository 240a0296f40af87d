"""Drain a node under a PodDisruptionBudget: never two of four pods down at once.

A real store and API server, the controller manager (deployment, replicaset and
disruption controllers), the scheduler and two hollow nodes. A Deployment of 4
replicas is spread on both nodes, a PDB allows maxUnavailable 1, and a node is
drained by `steer drain` (then, in a second test, by the real kubectl) while a
watcher counts the Ready, not-terminating pods of the Deployment at every event:
never fewer than 3. The drain must finish and the pods end on the other node.
"""

import threading

import pytest

from control.client import NotFound
from control.objects import kinds
from tests.support.apiproc import eventually
from tests.support.controlplane import ControlPlane

NODES = ["drain-a", "drain-b"]
PDBS = kinds.lookup("policy", "v1", "poddisruptionbudgets")


@pytest.fixture(scope="module")
def plane(server, tmp_path_factory):
    with ControlPlane(server, tmp_path_factory.mktemp("eviction"),
                      "deployment,replicaset,disruption", nodes=NODES, cpu="4",
                      renew_interval=1.0) as running:
        yield running


def deployment(name):
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 4, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "c", "image": "busybox",
                          "resources": {"requests": {"cpu": "100m"}}}]}}}}


def budget(name):
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": name}}}}


def _up(pod):
    """Ready and not being deleted: what the budget counts as healthy."""
    if pod["metadata"].get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


class ReadyWatcher:
    """Count the app's healthy pods at every watch event; remember the lowest count."""

    def __init__(self, rest, app):
        items = rest.list(kinds.PODS, "default", label_selector=f"app={app}")
        self.state = {p["metadata"]["name"]: _up(p) for p in items["items"]}
        self.lowest = self.count()
        self.events = 0
        self.watch = rest.watch(kinds.PODS, "default",
                                resource_version=items["metadata"]["resourceVersion"],
                                label_selector=f"app={app}", timeout_seconds=600)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def count(self):
        return sum(self.state.values())

    def _run(self):
        try:
            for kind, pod in self.watch:
                if kind not in ("ADDED", "MODIFIED", "DELETED"):
                    continue
                name = pod["metadata"]["name"]
                if kind == "DELETED":
                    self.state.pop(name, None)
                else:
                    self.state[name] = _up(pod)
                self.events += 1
                self.lowest = min(self.lowest, self.count())
        except Exception:       # noqa: BLE001 - closed by stop(); the asserts tell the rest
            pass

    def stop(self):
        self.watch.close()
        self.thread.join(10)


def placed(rest, app):
    """node -> number of the app's healthy pods."""
    counts = {}
    for pod in rest.list(kinds.PODS, "default", label_selector=f"app={app}")["items"]:
        if _up(pod):
            node = pod["spec"].get("nodeName")
            counts[node] = counts.get(node, 0) + 1
    return counts


def start_app(rest, app):
    rest.create(kinds.DEPLOYMENTS, "default", deployment(app))
    rest.create(PDBS, "default", budget(app))
    spread = eventually(lambda: (lambda c: c if sum(c.values()) == 4 and len(c) == 2 else None)(
        placed(rest, app)), timeout=120, message="4 Ready pods on both nodes",
        logs=lambda: diagnostics(rest, app))
    eventually(lambda: rest.get(PDBS, "default", app).get("status", {}).get(
        "disruptionsAllowed") == 1, timeout=60, message="the PDB allows one disruption")
    return max(spread, key=spread.get)     # the node with the most pods is drained


def finish_app(rest, app, node):
    # No garbage collector runs here: the ReplicaSets go by hand, then their pods.
    rest.delete(kinds.DEPLOYMENTS, "default", app)
    for rs in rest.list(kinds.REPLICASETS, "default", label_selector=f"app={app}")["items"]:
        rest.delete(kinds.REPLICASETS, "default", rs["metadata"]["name"])
    rest.delete(PDBS, "default", app)
    for pod in rest.list(kinds.PODS, "default", label_selector=f"app={app}")["items"]:
        try:
            rest.delete(kinds.PODS, "default", pod["metadata"]["name"])
        except NotFound:
            pass
    rest.patch(kinds.NODES, None, node, {"spec": {"unschedulable": None}})
    eventually(lambda: not rest.list(kinds.PODS, "default",
                                     label_selector=f"app={app}")["items"],
               timeout=60, message="the app's pods gone")


def diagnostics(rest, app):
    """The budget's status and the app's pods, for a failing assertion."""
    lines = [f"pdb status: {rest.get(PDBS, 'default', app).get('status')}"]
    for pod in rest.list(kinds.PODS, "default", label_selector=f"app={app}")["items"]:
        lines.append(f"pod {pod['metadata']['name']} on {pod['spec'].get('nodeName')}: "
                     f"phase {(pod.get('status') or {}).get('phase')}, up {_up(pod)}, "
                     f"deleting {bool(pod['metadata'].get('deletionTimestamp'))}")
    return "\n".join(lines)


def check_drained(rest, plane, app, node, run_drain):
    other = next(n for n in NODES if n != node)
    watcher = ReadyWatcher(rest, app)
    try:
        result = run_drain(node)
    finally:
        watcher.stop()
    assert result.returncode == 0, (f"drain failed:\n{result.stdout}\n{result.stderr}\n"
                                    f"{diagnostics(rest, app)}\n{plane.logs()[-4000:]}")
    assert f"node/{node} drained" in result.stdout
    # Two pods stood on the node: the budget refused the second eviction at least
    # once... unless the first replacement was Ready before the second was asked.
    print(f"\n  drain output:\n{result.stdout}{result.stderr}\n  events seen: {watcher.events}, "
          f"lowest healthy count: {watcher.lowest}")
    assert watcher.events > 0
    assert watcher.lowest >= 3, f"{4 - watcher.lowest} pods were down at once"
    eventually(lambda: placed(rest, app) == {other: 4}, timeout=120,
               message=f"all 4 pods Ready on {other}", logs=lambda: diagnostics(rest, app))


def test_steer_drain_evicts_one_pod_at_a_time(server, rest, plane):
    app = "steer-drained"
    node = start_app(rest, app)
    try:
        check_drained(rest, plane, app, node, lambda n: server.steer(
            "drain", n, "--ignore-daemonsets", "--timeout", "240", timeout=300, check=False))
    finally:
        finish_app(rest, app, node)


@pytest.mark.kubectl
def test_kubectl_drain_evicts_one_pod_at_a_time(server, rest, plane):
    app = "kubectl-drained"
    node = start_app(rest, app)
    try:
        shown = server.kubectl("get", "pdb", app).stdout.split("\n")
        assert shown[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED",
                                    "DISRUPTIONS", "AGE"]
        assert shown[1].split()[:4] == [app, "N/A", "1", "1"]
        check_drained(rest, plane, app, node, lambda n: server.kubectl(
            "drain", n, "--ignore-daemonsets", "--timeout=240s", timeout=300, check=False))
    finally:
        finish_app(rest, app, node)


def test_an_eviction_the_budget_refuses_is_429_with_kubernetes_message(server, rest, plane):
    app = "refused"
    node = start_app(rest, app)
    try:
        pdb = rest.get(PDBS, "default", app)
        pdb["spec"] = {"minAvailable": 4, "selector": pdb["spec"]["selector"]}
        rest.update(PDBS, "default", pdb)
        eventually(lambda: (lambda s: s.get("observedGeneration") == 2 and
                            s.get("disruptionsAllowed") == 0)(
            rest.get(PDBS, "default", app).get("status", {})), timeout=60,
            message="the PDB allows nothing")
        result = server.steer("drain", node, "--timeout", "6", timeout=60, check=False)
        assert result.returncode != 0
        assert "Cannot evict pod as it would violate the pod's disruption budget." in \
            result.stderr
        assert "global timeout reached" in result.stderr
        assert sum(placed(rest, app).values()) == 4       # nothing was evicted
    finally:
        finish_app(rest, app, node)
