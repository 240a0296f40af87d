"""Taint eviction: (taints, tolerations, elapsed time) -> delete now, later or never."""

import datetime

import falcon.testing
import pytest

from control.api.app import create_app
from control.controllers.taintmanager import TaintEvictionController, eviction_delay
from control.objects import defaults
from tests.support.fake_store import FakeStore
from tests.unit.control.controllers.fakes import FakeClock, FakeInformer, FakeRest

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def taint(key, effect="NoExecute", value=None, added=None):
    out = {"key": key, "effect": effect}
    if value is not None:
        out["value"] = value
    if added is not None:
        out["timeAdded"] = added
    return out


def toleration(key=None, seconds=None, effect="NoExecute", operator="Exists", value=None):
    out = {"operator": operator}
    if key is not None:
        out["key"] = key
    if effect is not None:
        out["effect"] = effect
    if seconds is not None:
        out["tolerationSeconds"] = seconds
    if value is not None:
        out["value"] = value
    return out


UNREACHABLE_300 = toleration(UNREACHABLE, 300)
DELAY_CASES = {
    "no taints": ([], [], [], None),
    "untolerated taint: now": ([taint("dedicated")], [], [0], 0.0),
    "default toleration: 300 s": ([taint(UNREACHABLE)], [UNREACHABLE_300], [0], 300.0),
    "default toleration, 120 s in": ([taint(UNREACHABLE)], [UNREACHABLE_300], [120], 180.0),
    "default toleration, run out": ([taint(UNREACHABLE)], [UNREACHABLE_300], [301], 0.0),
    "tolerated forever": ([taint(UNREACHABLE)], [toleration(UNREACHABLE)], [9999], None),
    "tolerate everything": ([taint("x"), taint("y")], [toleration()], [0, 0], None),
    "zero seconds: now": ([taint(UNREACHABLE)], [toleration(UNREACHABLE, 0)], [0], 0.0),
    "negative seconds: now": ([taint(UNREACHABLE)], [toleration(UNREACHABLE, -5)], [0], 0.0),
    "one of two taints untolerated": ([taint(UNREACHABLE), taint("dedicated")],
                                      [UNREACHABLE_300], [0, 0], 0.0),
    "the shortest toleration wins": ([taint(UNREACHABLE), taint(NOT_READY)],
                                     [UNREACHABLE_300, toleration(NOT_READY, 60)],
                                     [0, 30], 30.0),
    "forever and timed: timed": ([taint(UNREACHABLE), taint(NOT_READY)],
                                 [toleration(UNREACHABLE), toleration(NOT_READY, 60)],
                                 [0, 0], 60.0),
    "Equal needs the value": ([taint("k", value="a")],
                              [toleration("k", operator="Equal", value="b")], [0], 0.0),
    "Equal with the value": ([taint("k", value="a")],
                             [toleration("k", 10, operator="Equal", value="a")], [0], 10.0),
    "NoSchedule toleration does not cover NoExecute": (
        [taint(UNREACHABLE)], [toleration(UNREACHABLE, effect="NoSchedule")], [0], 0.0),
    "a toleration without effect covers NoExecute": (
        [taint(UNREACHABLE)], [toleration(UNREACHABLE, 5, effect=None)], [0], 5.0),
    "first matching toleration is used": ([taint(UNREACHABLE)],
                                          [toleration(UNREACHABLE), UNREACHABLE_300], [0], None),
}


@pytest.mark.parametrize("taints, tolerations, elapsed, delay", DELAY_CASES.values(),
                         ids=DELAY_CASES)
def test_eviction_delay(taints, tolerations, elapsed, delay):
    assert eviction_delay(taints, tolerations, elapsed) == delay


class Recorder:
    def __init__(self):
        self.events = []

    def event(self, obj, event_type, reason, message):
        self.events.append((obj["metadata"]["name"], event_type, reason, message))


def node(name, taints=()):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "resourceVersion": "1"},
            "spec": {"taints": list(taints)} if taints else {}}


def pod(name, node_name="n1", tolerations=(), deleting=False):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "2"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node_name, "tolerations": list(tolerations)}}


class Harness:
    """A controller with a fake clock whose wall clock moves with it."""

    def __init__(self, nodes=(), pods=()):
        self.clock = FakeClock(1000.0)
        self.rest, self.recorder = FakeRest(), Recorder()
        self.nodes, self.pods = FakeInformer(nodes), FakeInformer(pods)
        self.controller = TaintEvictionController(
            self.rest, self.nodes, self.pods, clock=self.clock, wall_clock=self.wall,
            recorder=self.recorder)
        self.controller.queue.clock = self.clock

    def wall(self):
        return EPOCH + datetime.timedelta(seconds=self.clock() - 1000.0)

    def stamp(self, offset=0.0):
        return (self.wall() + datetime.timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def drain(self):
        """Sync every key that is due now."""
        while len(self.controller.queue):
            self.controller.process_next(timeout=0)

    def run_for(self, seconds, step=0.5):
        for _ in range(int(seconds / step)):
            self.clock.advance(step)
            self.drain()

    def deleted(self):
        return [a[3] for a in self.rest.of("delete")]


def test_untolerated_taint_deletes_at_once_with_condition_and_event():
    h = Harness([node("n1")], [pod("a"), pod("b", "n2")])
    h.nodes.put(node("n1", [taint("dedicated", added=h.stamp())]))
    h.drain()
    assert h.deleted() == ["a"]
    [patch] = h.rest.of("patch")
    assert patch[3] == "a"
    cond = patch[4]["status"]["conditions"][0]
    assert (cond["type"], cond["reason"]) == ("DisruptionTarget", "DeletionByTaintManager")
    assert h.recorder.events == [("a", "Normal", "TaintManagerEviction",
                                  "Marking for deletion Pod default/a")]


def test_a_pod_is_deleted_once_though_its_status_patch_comes_back_first():
    h = Harness([node("n1")], [pod("a")])
    h.nodes.put(node("n1", [taint("dedicated", added=h.stamp())]))
    h.drain()
    h.pods.put({**pod("a"), "status": {"conditions": [{"type": "DisruptionTarget"}]}})
    h.drain()
    assert h.deleted() == ["a"] and len(h.recorder.events) == 1
    h.pods.put(pod("a", deleting=True))
    h.drain()
    assert h.controller.evicted == set()


def test_toleration_seconds_count_from_the_taints_time_added():
    h = Harness([node("n1")], [pod("a", tolerations=[toleration(UNREACHABLE, 10)])])
    # Added 4 s ago (by another controller, before a restart): 6 s are left, plus the
    # second that timeAdded's whole-second precision may hide.
    h.nodes.put(node("n1", [taint(UNREACHABLE, added=h.stamp(-4))]))
    h.drain()
    assert h.deleted() == []
    h.run_for(6.5)
    assert h.deleted() == []
    h.run_for(1)
    assert h.deleted() == ["a"]


def test_a_fractional_time_added_is_taken_as_is():
    h = Harness([node("n1")], [pod("a", tolerations=[toleration(UNREACHABLE, 10)])])
    h.clock.advance(0.25)
    added = (h.wall() - datetime.timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    h.nodes.put(node("n1", [taint(UNREACHABLE, added=added)]))
    h.drain()
    assert h.controller.queue._due == {"default/a": h.clock() + 6.0}


def test_a_time_added_in_the_future_counts_from_first_sight():
    h = Harness([node("n1")], [pod("a", tolerations=[toleration(UNREACHABLE, 10)])])
    h.nodes.put(node("n1", [taint(UNREACHABLE, added=h.stamp(+3600))]))
    h.drain()
    h.run_for(9.5)
    assert h.deleted() == []
    h.run_for(1)
    assert h.deleted() == ["a"]


def test_the_deletion_is_planned_with_add_after_not_polled():
    h = Harness([node("n1")], [pod("a", tolerations=[toleration(UNREACHABLE, 10)])])
    h.nodes.put(node("n1", [taint(UNREACHABLE, added=h.stamp())]))
    h.drain()
    assert len(h.controller.queue) == 0 and h.controller.queue._due == {"default/a": 1010.0}


def test_tolerating_forever_keeps_the_pod():
    h = Harness([node("n1")], [pod("a", tolerations=[toleration(UNREACHABLE)])])
    h.nodes.put(node("n1", [taint(UNREACHABLE, added=h.stamp())]))
    h.run_for(1000, step=50)
    assert h.deleted() == [] and h.recorder.events == []


def test_a_taint_removed_in_time_cancels_the_eviction():
    h = Harness([node("n1")], [pod("a", tolerations=[toleration(UNREACHABLE, 10)])])
    h.nodes.put(node("n1", [taint(UNREACHABLE, added=h.stamp())]))
    h.drain()
    h.run_for(5)
    h.nodes.put(node("n1"))
    h.drain()
    assert h.recorder.events == [("a", "Normal", "TaintManagerEviction",
                                  "Cancelling deletion of Pod default/a")]
    h.run_for(20)
    assert h.deleted() == [] and h.controller._first_seen == {}


def test_a_pod_bound_to_a_tainted_node_is_judged_too():
    h = Harness([node("n1", [taint("dedicated", added="2026-01-01T00:00:00Z")])])
    h.pods.put(pod("late"))
    h.drain()
    assert h.deleted() == ["late"]


def test_pods_already_terminating_or_unbound_are_left_alone():
    h = Harness([node("n1")], [pod("going", deleting=True), pod("pending", node_name=None)])
    h.nodes.put(node("n1", [taint("dedicated", added=h.stamp())]))
    h.controller.queue.add("default/going")
    h.controller.queue.add("default/pending")
    h.drain()
    assert h.deleted() == []


def test_no_schedule_taints_do_not_evict():
    h = Harness([node("n1")], [pod("a")])
    h.nodes.put(node("n1", [taint(UNREACHABLE, effect="NoSchedule")]))
    h.controller.queue.add("default/a")
    h.drain()
    assert h.deleted() == []


# -- the API server's default tolerations are configurable --------------------------------
def default_tolerations(app):
    client = falcon.testing.TestClient(app)
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    result = client.simulate_post("/api/v1/namespaces/default/pods", json=body)
    assert result.status_code == 201, result.text
    return {t["key"]: t["tolerationSeconds"] for t in result.json["spec"]["tolerations"]}


def test_api_server_default_toleration_seconds():
    assert default_tolerations(create_app(FakeStore())) == {NOT_READY: 300, UNREACHABLE: 300}
    assert default_tolerations(create_app(FakeStore(), default_not_ready_toleration_seconds=7,
                                          default_unreachable_toleration_seconds=2)) == \
        {NOT_READY: 7, UNREACHABLE: 2}
    assert defaults.apply_defaults({"apiVersion": "v1", "kind": "Pod", "spec": {}})["spec"][
        "tolerations"][1]["tolerationSeconds"] == 300
