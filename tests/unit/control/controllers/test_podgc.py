"""Pod GC: finished pods beyond the threshold, pods of deleted nodes, unscheduled terminating."""

import datetime

import pytest

from control.client import RateLimitingQueue
from control.controllers import manager, podgc
from control.controllers.podgc import PodGCController
from control.objects import kinds
from tests.unit.control.controllers.fakes import FakeClock, FakeInformer, FakeRest

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


class Rest(FakeRest):
    """Records deletes with their options; nodes answer GET by name."""

    def __init__(self, nodes=()):
        super().__init__()
        self.live_nodes = {n["metadata"]["name"] if isinstance(n, dict) else n for n in nodes}

    def get(self, resource, namespace, name):
        if resource.kind == "Node" and name in self.live_nodes:
            return {"metadata": {"name": name}}
        return super().get(resource, namespace, name)

    def delete(self, resource, namespace, name, grace_period_seconds=None, preconditions=None,
               propagation_policy=None):
        self.actions.append(("delete", name, grace_period_seconds, preconditions))


def pod(name, phase="Running", node="n1", created=0, deleting=False, reason=None):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "3",
            "creationTimestamp": f"2026-01-01T00:00:{created:02d}Z"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T11:00:00Z"
    status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]}
    if reason:
        status["reason"] = reason
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node} if node else {}, "status": status}


def node(name, ready=True, taints=()):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"taints": list(taints)},
            "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}


@pytest.mark.parametrize("pods, threshold, expected", [
    pytest.param([pod("a", "Succeeded"), pod("b", "Failed")], 2, [], id="at threshold"),
    pytest.param([pod("a", "Succeeded", created=3), pod("b", "Failed", created=1),
                  pod("c", "Succeeded", created=2), pod("r", created=0)], 1, ["b", "c"],
                 id="oldest finished first; running pods never"),
    pytest.param([pod("a", "Succeeded", created=1), pod("e", "Failed", created=5,
                                                       reason="Evicted")], 1, ["e"],
                 id="evicted first"),
    pytest.param([pod("a", "Succeeded")], 0, [], id="threshold 0 disables"),
])
def test_terminated_to_delete(pods, threshold, expected):
    assert [p["metadata"]["name"] for p in podgc.terminated_to_delete(pods, threshold)] == \
        expected


class Harness:
    def __init__(self, pods, nodes=("n1",), live_nodes=None, threshold=12500):
        self.clock = FakeClock()
        self.rest = Rest(nodes if live_nodes is None else live_nodes)
        self.pod_inf = FakeInformer(pods)
        self.node_inf = FakeInformer([n if isinstance(n, dict) else node(n) for n in nodes])
        self.queue = RateLimitingQueue(clock=self.clock)
        self.gc = PodGCController(self.rest, self.pod_inf, self.node_inf, queue=self.queue,
                                  clock=self.clock, wall_clock=lambda: NOW, threshold=threshold)

    def sync(self):
        self.rest.actions.clear()
        self.gc.sync(podgc.KEY)
        return self.rest.actions


def test_terminated_pods_beyond_threshold_force_deleted():
    h = Harness([pod("a", "Succeeded", created=1), pod("b", "Succeeded", created=2)], threshold=1)
    assert h.sync() == [("delete", "a", 0, {"uid": "uid-a"})]


def test_pods_of_a_deleted_node_after_quarantine():
    h = Harness([pod("a", node="gone"), pod("b", "Succeeded", node="gone"), pod("c")],
                nodes=["n1"])
    assert h.sync() == []               # quarantined
    h.clock.advance(39)
    assert h.sync() == []
    h.clock.advance(1)
    actions = h.sync()
    statuses = {a[3]["metadata"]["name"]: a[3]["status"] for a in actions
                if a[0] == "update_status"}
    assert statuses["a"]["phase"] == "Failed"
    assert statuses["b"]["phase"] == "Succeeded"
    cond = statuses["a"]["conditions"][-1]
    assert (cond["type"], cond["status"], cond["reason"]) == ("DisruptionTarget", "True",
                                                              "DeletionByPodGC")
    assert sorted(a[1:] for a in actions if a[0] == "delete") == [
        ("a", 0, {"uid": "uid-a"}), ("b", 0, {"uid": "uid-b"})]


def test_node_missing_from_cache_but_alive_is_spared():
    h = Harness([pod("a", node="late")], nodes=["n1"], live_nodes=["n1", "late"])
    h.sync()
    h.clock.advance(40)
    assert h.sync() == []
    assert h.gc._missing_since == {}


def test_quarantine_restarts_when_the_node_comes_back():
    h = Harness([pod("a", node="n2")], nodes=["n1"])
    h.sync()
    h.clock.advance(30)
    h.node_inf.put(node("n2"))
    h.sync()
    h.node_inf.remove(node("n2"))
    h.clock.advance(30)
    assert h.sync() == []           # only 30 s since it went missing again


def test_out_of_service_node_terminating_pods_force_deleted():
    h = Harness([pod("a", deleting=True), pod("b")], nodes=[node("n1", False, [OUT])])
    assert h.sync() == [("delete", "a", 0, {"uid": "uid-a"})]


def test_unscheduled_terminating_force_deleted():
    h = Harness([pod("a", node=None, deleting=True), pod("b", deleting=True), pod("c", node=None)])
    assert h.sync() == [("delete", "a", 0, {"uid": "uid-a"})]


OUT = {"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}


@pytest.mark.parametrize("nodes, expected", [
    pytest.param([node("n1", ready=False, taints=[OUT])], ["a"], id="not ready, out of service"),
    pytest.param([node("n1", ready=True, taints=[OUT])], [], id="ready"),
    pytest.param([node("n1", ready=False)], [], id="no taint"),
])
def test_terminating_out_of_service(nodes, expected):
    pods = [pod("a", deleting=True), pod("b")]
    cache = {n["metadata"]["name"]: n for n in nodes}
    assert [p["metadata"]["name"] for p in
            podgc.terminating_out_of_service(pods, cache.get)] == expected


def test_requeues_itself_sooner_during_a_quarantine():
    h = Harness([pod("a", node="gone")], nodes=[])
    h.sync()
    assert h.queue.get(0) is None
    h.clock.advance(20)
    assert h.queue.get(0) == podgc.KEY


def test_manager_builds_the_cleanup_controllers_with_their_flags():
    args = manager.parse_args(["--api-server", "http://127.0.0.1:1", "--controllers",
                               "endpoint,namespace,garbagecollector,podgc",
                               "--terminated-pod-gc-threshold", "5",
                               "--podgc-check-period", "2", "--podgc-quarantine", "3"])
    built = manager.Manager(FakeRest(), args.controllers, 1, args)
    by_name = {c.name: c for c in built.controllers}
    assert sorted(by_name) == ["endpoint", "garbagecollector", "namespace", "podgc"]
    gc = by_name["podgc"]
    assert (gc.threshold, gc.period, gc.quarantine) == (5, 2.0, 3.0)
    defaults = manager.parse_args(["--api-server", "http://127.0.0.1:1"])
    assert defaults.terminated_pod_gc_threshold == 12500
    # One informer per resource, shared: the collector's pods are the endpoint controller's.
    assert built.informers.informer(kinds.PODS) in by_name["garbagecollector"].informers
