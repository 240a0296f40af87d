"""The scheduler loop over hand-filled caches and a fake RestClient (no server)."""

import threading

import pytest

from control.client import Conflict, object_key
from control.scheduler.loop import Scheduler
from tests.unit.control.scheduler.test_placement import node, pod


class FakeRest:
    """Record the calls the loop makes; fail bindings on demand."""

    def __init__(self):
        self.bindings, self.created, self.patches, self.statuses = [], [], [], []
        self.bind_error = None
        self.lock = threading.Lock()

    def create_binding(self, namespace, name, node_name):
        if self.bind_error:
            raise self.bind_error
        with self.lock:
            self.bindings.append((namespace, name, node_name))

    def create(self, resource, namespace, body):
        with self.lock:
            self.created.append(body)
        return body

    def patch(self, resource, namespace, name, patch, patch_type="merge", subresource=None):
        with self.lock:
            self.patches.append((name, patch))

    def update_status(self, resource, namespace, body):
        with self.lock:
            self.statuses.append(body)
        return body


@pytest.fixture
def sched():
    scheduler = Scheduler(FakeRest(), backoff=(0.001, 0.01))
    yield scheduler
    scheduler._pool.shutdown()


def put(informer, obj):
    informer.store._put(object_key(obj), obj)


def test_assumed_pods_count_until_the_cache_sees_them_bound(sched):
    put(sched.nodes, node("a", cpu="1"))
    first, second = pod("p1", cpu="600m"), pod("p2", cpu="600m")
    put(sched.pods, first)
    put(sched.pods, second)
    sched.schedule_keys(["default/p1"])
    # The cache still shows p1 pending: without the assumed copy p2 would fit too.
    sched.schedule_keys(["default/p2"])
    assert sched.rest.bindings == [("default", "p1", "a")]
    assert sched.rest.created[0]["message"] == "0/1 nodes are available: 1 Insufficient cpu."
    # The bind comes back through the watch; then p1 is in the cache and no longer assumed.
    bound = {**first, "spec": {**first["spec"], "nodeName": "a"}}
    put(sched.pods, bound)
    sched._pod_updated(first, bound)
    assert not sched._assumed
    assert [p["metadata"]["name"] for p in sched.snapshot().pods_by_node["a"]] == ["p1"]


def test_repeated_failures_count_one_event_and_write_the_condition_once(sched):
    put(sched.nodes, node("a", cpu="1"))
    big = pod("big", cpu="2")
    put(sched.pods, big)
    sched.schedule_keys(["default/big"])
    event = sched.rest.created[0]
    assert (event["reason"], event["type"], event["count"]) == ("FailedScheduling", "Warning", 1)
    assert event["involvedObject"]["name"] == "big"
    condition = sched.rest.statuses[0]["status"]["conditions"][-1]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "PodScheduled", "False", "Unschedulable")
    put(sched.pods, sched.rest.statuses[0])     # the status write comes back
    sched.schedule_keys(["default/big"])
    assert len(sched.rest.created) == 1
    assert sched.rest.patches[0][0] == event["metadata"]["name"]
    assert sched.rest.patches[0][1]["count"] == 2
    assert len(sched.rest.statuses) == 1


def test_a_node_change_retries_unschedulable_pods(sched):
    small = node("a", cpu="1")
    put(sched.nodes, small)
    put(sched.pods, pod("big", cpu="2"))
    sched.schedule_keys(["default/big"])
    key = sched.queue.get(timeout=0)
    if key is not None:         # the backoff may already be due; drain it
        sched.queue.done(key)
    grown = node("a", cpu="4")
    put(sched.nodes, grown)
    sched._node_updated(small, grown)
    assert sched.queue.get(timeout=1) == "default/big"
    sched.queue.done("default/big")
    sched.schedule_keys(["default/big"])
    assert sched.rest.bindings == [("default", "big", "a")]


def test_a_conflicting_binding_is_not_retried(sched):
    put(sched.nodes, node("a"))
    put(sched.pods, pod("p"))
    sched.rest.bind_error = Conflict("pod p is already assigned to node b")
    sched.schedule_keys(["default/p"])
    assert sched.queue.get(timeout=0.05) is None


def test_only_pending_pods_for_this_scheduler_are_queued(sched):
    sched._pod_added(pod("mine"))
    sched._pod_added(pod("other", schedulerName="custom"))
    sched._pod_added(pod("bound", node_name="a"))
    assert sched.queue.get(timeout=0) == "default/mine"
    assert sched.queue.get(timeout=0) is None
